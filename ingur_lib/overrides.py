"""`reproduce ... --set key=value ...`: change fields of a chapter's config from the command line.

A cluster user sets the global batch size, gradient accumulation, learning rate, epochs or data size without
editing a chapter: `python -m ingur_lib reproduce 05_spt_lsa --profile full --set batch_size=512 lr=2e-3`.
A key names a field of the chapter's config or of a config inside it (`train.batch_size`); a bare name that
occurs once anywhere in the config is enough (`batch_size`), one that occurs in several places must be
written out (the error lists them). Values are numbers (512, 2e-3) or read as YAML (true, [0, 1]) and must have the
field's type. The CLI passes them to every process (and to notebooks) as JSON in INGUR_SET; `profiles.pick`
applies them to the config it returns, whose dataclass checks run again, and the results file records
them in its provenance (`overrides`) beside the config they changed.
"""
from __future__ import annotations

import json
import os
from dataclasses import fields, is_dataclass, replace

from .errors import IngurError

ENV = "INGUR_SET"


def parse(pairs) -> dict:
    """{key: value} from ["key=value", ...] (values read as YAML)."""
    import yaml
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise IngurError(f"--set {pair!r} is not key=value: write e.g. --set batch_size=512 lr=2e-3.")
        try:
            out[key.strip()] = _number(raw) if _number(raw) is not None else yaml.safe_load(raw)
        except yaml.YAMLError:
            raise IngurError(f"--set {pair!r}: {raw!r} is not a value; write a number, true/false, a word or "
                             "a list such as [0, 1].") from None
    return out


def _number(raw: str) -> int | float | None:
    """2e-3 as a number (YAML 1.1 reads it as text), None when `raw` is not one."""
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return None


def active() -> dict:
    """The overrides of this run (INGUR_SET, JSON), {} when none."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return {}
    try:
        found = json.loads(raw)
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise IngurError(f"{ENV}={raw!r} is not a JSON object: pass overrides as `reproduce ... --set key=value` "
                         f"or set {ENV}='{{\"batch_size\": 512}}'.")
    return found


def apply(config, overrides: dict | None = None):
    """`config` (a dataclass) with the overrides set; anything else is returned as it is."""
    overrides = active() if overrides is None else overrides
    if not overrides or not is_dataclass(config):
        return config
    for key, value in overrides.items():
        config = _set(config, key.split(".") if "." in key else _find(config, key), value, key)
    return config


def _paths(config, prefix=()):
    for f in fields(config):
        yield (*prefix, f.name)
        value = getattr(config, f.name)
        if is_dataclass(value):
            yield from _paths(value, (*prefix, f.name))


def _find(config, key: str) -> tuple:
    hits = [p for p in _paths(config) if p[-1] == key]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        known = ", ".join(sorted({p[-1] for p in _paths(config)}))
        raise IngurError(f"--set {key}: this chapter's config has no field {key!r}; use one of {known}.")
    raise IngurError(f"--set {key}: the config has {key!r} in several places; name one of "
                     f"{', '.join('.'.join(p) for p in hits)}.")


def _set(config, path, value, key: str):
    head, *rest = path
    declared = {f.name: str(f.type) for f in fields(config)} if is_dataclass(config) else {}
    if head not in declared:
        raise IngurError(f"--set {key}: {'.'.join(path)} is not a field of the config; bare names are looked "
                         "up for you (e.g. batch_size).")
    old = getattr(config, head)
    new = _set(old, rest, value, key) if rest else _typed(old, value, key, declared[head])
    return replace(config, **{head: new})


def _typed(old, value, key: str, declared: str):
    """`value` in the field's type: a list for a tuple, any number where the field is declared a float."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(old, tuple) and isinstance(value, list):
        return tuple(value)
    if number and (isinstance(old, float) or "float" in declared):
        return float(value) if isinstance(old, float) or not float(value).is_integer() else value
    if old is not None and (not isinstance(value, type(old)) or isinstance(value, bool) != isinstance(old, bool)):
        raise IngurError(f"--set {key}={value!r}: the field holds a {type(old).__name__} ({old!r}); give one.")
    return value
