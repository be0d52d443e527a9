"""Where and how a run happens: device choice, seeding, threads, and the run's provenance."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import platform
import random
import subprocess
from dataclasses import dataclass

import numpy as np
import torch

from .paths import repo_root
from .profiles import get_profile


def pick_device(prefer: str | None = None) -> torch.device:
    """cuda > mps > cpu, unless `prefer` or INGUR_DEVICE names one."""
    prefer = prefer or os.environ.get("INGUR_DEVICE")
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Same seed + same machine = same numbers (deterministic kernels where torch has them)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    desc = f"{platform.system()} {cpu}, {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads"
    if torch.cuda.is_available():
        desc += f", GPU {torch.cuda.get_device_name(0)}"
    return desc


def git_state() -> dict:
    """The commit the code ran from and whether the tree had uncommitted changes."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=repo_root(), capture_output=True, text=True, timeout=10)
    try:
        commit = git("rev-parse", "HEAD").stdout.strip() or "unknown"
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "unknown", None
    return {"commit": commit, "dirty": dirty}


def config_dict(config) -> dict:
    """A chapter's whole config as JSON-friendly data: dataclasses (nested too) via `asdict`, tuples as lists."""
    import json
    if dataclasses.is_dataclass(config):
        config = dataclasses.asdict(config)
    return json.loads(json.dumps(config or {}, default=str))


def provenance(profile: str, seeds, wall_time_s: float, dataset: dict | None = None, config=None) -> dict:
    """Everything needed to tell where a number came from. `config` is the chapter's whole config (a dataclass,
    stored with `asdict`) or a dict; the load average tells whether the machine was shared during the run."""
    import sys
    return {
        **git_state(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "profile": profile,
        "seeds": list(seeds),
        "wall_time_s": round(wall_time_s, 1),
        "dataset": dataset or {},
        "config": config_dict(config),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


@dataclass
class Context:
    """What a notebook's setup cell settles: profile, device, seed."""
    profile: str
    device: torch.device
    seed: int

    def __str__(self):
        return f"profile={self.profile}, device={self.device}, seed={self.seed}, torch {torch.__version__}"


def setup(profile: str | None = None, seed: int = 0, device: str | None = None, quiet: bool = False) -> Context:
    """One call at the top of every notebook: check the profile, pick the device, seed, plot style."""
    from .viz import thesis_style
    ctx = Context(get_profile(profile), pick_device(device), seed)
    seed_everything(seed)
    thesis_style()
    if not quiet:
        print(f"Ingur: {ctx}")
    return ctx
