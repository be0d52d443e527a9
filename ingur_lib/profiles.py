"""Run profiles: how big a run is. Chosen in one place (`choose_profile`), for the notebooks and the command
line alike: the explicit choice (a notebook's `PROFILE`, `--profile`), else `INGUR_PROFILE`, else smoke.

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


DEFAULT = "smoke"  # the cheapest: a notebook nobody asked to make long never is


def choose_profile(given: str | None = None, given_by: str = "profile=...",
                   default: str = DEFAULT) -> tuple[str, str]:
    """(profile, where it came from): `given` (named `given_by` in messages), else INGUR_PROFILE, else
    `default` (smoke; `reproduce`, whose job is recording the ledger's runs, passes standard). An explicit
    choice wins over the environment; the run prints which one decided (`Ingur: profile ...`)."""
    if given:
        return _checked(given, given_by), f"from {given_by}"
    env = os.environ.get("INGUR_PROFILE", "").strip()
    if env:
        return _checked(env, "INGUR_PROFILE"), "from INGUR_PROFILE"
    return default, "the default"


def _checked(name: str, given_by: str) -> str:
    key = name.strip().lower()
    if key not in PROFILES:
        raise IngurError(f"Unknown profile {name!r} (from {given_by}): use one of {', '.join(PROFILES)}.")
    return key


def get_profile(name: str | None = None) -> str:
    """Return the active profile name, checked (`choose_profile` without its origin)."""
    return choose_profile(name)[0]


def pick(configs: Mapping[str, T], profile: str | None = None) -> T:
    """Pick a chapter's config for the active profile from a {profile: config} mapping, with the run's
    `--set key=value` overrides applied (`ingur_lib.overrides`)."""
    from .overrides import apply
    profile = get_profile(profile)
    if profile not in configs:
        raise IngurError(f"This chapter has no {profile!r} config: use one of {', '.join(configs)}.")
    return apply(configs[profile])
