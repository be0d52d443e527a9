"""Which device a run uses: the best one here, or the one INGUR_DEVICE names (checked to exist).

Below `runtime` and `distributed`, which both need it (so neither imports the other at import time)."""
from __future__ import annotations

import os

import torch

from .errors import IngurError


def pick_device(prefer: str | None = None) -> torch.device:
    """cuda > mps > cpu, unless `prefer` or INGUR_DEVICE names one (checked: it must exist here)."""
    prefer = prefer or os.environ.get("INGUR_DEVICE")
    if prefer:
        return _checked_device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _checked_device(name: str) -> torch.device:
    """The named device, or IngurError when it is not a device name or this machine lacks it."""
    try:
        device = torch.device(name.strip().lower())
    except (RuntimeError, ValueError):
        raise IngurError(f"Unknown device {name!r}: use cpu, cuda or mps (INGUR_DEVICE or device=...), "
                         "or leave it unset to pick the best one here.") from None
    have = {"cpu": True, "cuda": torch.cuda.is_available(),
            "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())}
    if not have.get(device.type, False):
        raise IngurError(f"Device {name!r} is not available on this machine: unset INGUR_DEVICE (or "
                         f"device=...) to use {'cuda' if have['cuda'] else 'mps' if have['mps'] else 'cpu'}.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise IngurError(f"Device {name!r} does not exist: this machine has {torch.cuda.device_count()} "
                         "GPU(s), use cuda:0 to cuda:N-1.")
    return device
