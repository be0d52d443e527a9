"""The book's one error type: every bad input is reported in one sentence that names the fix."""


class IngurError(ValueError):
    """Raised for bad input; the message says what to do instead."""


class DataUnavailableError(IngurError, RuntimeError):
    """A dataset has no offline copy here and the Hub could not be reached."""
