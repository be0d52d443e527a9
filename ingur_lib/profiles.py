"""Run profiles: how big a run is. Chosen in one place: the argument, else `INGUR_PROFILE`, else smoke.

| profile  | where                 | budget                                   |
|----------|-----------------------|------------------------------------------|
| smoke    | CI, the default book  | <= 3 min per notebook on 2 CPU cores      |
| standard | a laptop / 2 CPU cores| <= 60 min per chapter, converged; the ledger |
| full     | a GPU (Colab)         | hours; paper-like datasets               |
"""
from __future__ import annotations

import os
from typing import Mapping, TypeVar

from .errors import IngurError

PROFILES = ("smoke", "standard", "full")
T = TypeVar("T")


def get_profile(name: str | None = None) -> str:
    """Return the active profile name, checked."""
    name = name or os.environ.get("INGUR_PROFILE") or "smoke"
    name = name.strip().lower()
    if name not in PROFILES:
        raise IngurError(
            f"Unknown profile {name!r}: use one of {', '.join(PROFILES)} "
            "(set INGUR_PROFILE or pass profile=...)."
        )
    return name


def pick(configs: Mapping[str, T], profile: str | None = None) -> T:
    """Pick a chapter's config for the active profile from a {profile: config} mapping, with the run's
    `--set key=value` overrides applied (`ingur_lib.overrides`)."""
    from .overrides import apply
    profile = get_profile(profile)
    if profile not in configs:
        raise IngurError(f"This chapter has no {profile!r} config: use one of {', '.join(configs)}.")
    return apply(configs[profile])
