"""The thesis's figures: each registered with the recorded results it is drawn from.

This module is only the registry (low in the house: chapters import it). Drawing them all
(`python -m ingur_lib figures --out DIR`: every registered figure from data/results/, no retraining, PDF
and PNG in one print style) is a whole-book operation in `ingur_lib.book`.
"""
from __future__ import annotations

from typing import Callable

from .errors import IngurError

FIGURES: dict[str, tuple[str, str, Callable]] = {}


def figure(name: str, chapter: str, profile: str = "standard"):
    """Register `fn(results: dict) -> Figure` as figure `name`, drawn from chapter/profile results."""
    def deco(fn):
        if name in FIGURES:
            raise IngurError(f"Figure name {name!r} is registered twice: rename one.")
        FIGURES[name] = (chapter, profile, fn)
        return fn
    return deco
