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

from .errors import IngurError
from .paths import repo_root
from .device import pick_device  # noqa: F401  (re-exported: runtime's callers pick devices here)
from .profiles import choose_profile


SEED_MAX = 2**32 - 1  # numpy's seed range


def check_seed(seed) -> int:
    """`seed` as an int in [0, 2**32 - 1], or IngurError naming the range."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= SEED_MAX:
        raise IngurError(f"Seed {seed!r} is not an integer in [0, 2**32 - 1]: pick one in that range.")
    return int(seed)


def check_seeds(seeds) -> tuple[int, ...]:
    """Distinct valid seeds: a repeated seed would count the same run twice in a mean and its s.e."""
    seeds = tuple(check_seed(s) for s in seeds)
    if not seeds:
        raise IngurError("No seeds given: pass at least one (e.g. --seeds 0 1 2).")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise IngurError(f"Seed(s) {', '.join(map(str, repeated))} given twice: pass distinct seeds "
                         "(a repeat would count one run twice).")
    return seeds


def env_seed(default: int | None = 0) -> int | None:
    """INGUR_SEED if set (CI and teachers run the notebooks under other seeds), else `default`."""
    raw = os.environ.get("INGUR_SEED", "").strip()
    if not raw:
        return default
    try:
        seed = int(raw)
    except ValueError:
        raise IngurError(f"INGUR_SEED={raw!r} is not an integer: set it to one in [0, 2**32 - 1].") from None
    return check_seed(seed)


def choose_seeds(given=None, given_by: str = "seed=...", defaults=(0,)) -> tuple[tuple[int, ...], str]:
    """(seeds, where they came from), the one rule for notebooks and `reproduce`: `given` (named `given_by`),
    else INGUR_SEED, else `defaults` (a notebook's 0, a chapter's own seeds). INGUR_SEED=s keeps the count
    of `defaults` and starts it at s (s, s+1, ...), so a chapter's run keeps the seeds its evidence needs."""
    if given:
        return check_seeds(given), f"from {given_by}"
    start = env_seed(None)
    if start is None:
        return check_seeds(defaults), "the default"
    seeds = tuple(range(start, start + len(defaults)))
    if seeds[-1] > SEED_MAX:
        raise IngurError(f"INGUR_SEED={start} leaves no room for this run's {len(seeds)} seeds: set it to at "
                         f"most {SEED_MAX - len(seeds) + 1}.")
    return seeds, "from INGUR_SEED" + (f", the run's {len(seeds)} seeds from there" if len(seeds) > 1 else "")


def seed_everything(seed: int) -> None:
    """Same seed + same machine = same numbers (deterministic kernels where torch has them)."""
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def machine(workers: int = 1) -> str:
    """The machine and how the run used it: its torch threads, or worker processes of one thread each."""
    cpu = platform.processor() or platform.machine()
    use = f"{workers} worker processes of 1 torch thread" if workers > 1 else f"{torch.get_num_threads()} torch threads"
    desc = f"{platform.system()} {cpu}, {os.cpu_count()} CPU cores, {use}"
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


def provenance(profile: str, seeds, wall_time_s: float, dataset: dict | None = None, config=None,
               workers: int = 1) -> dict:
    """Everything needed to tell where a number came from. `config` is the chapter's whole config (a dataclass,
    stored with `asdict`) or a dict; the load average tells whether the machine was shared during the run;
    `workers` > 1: the runs were spread over that many one-thread processes (`ingur_lib.pool`)."""
    import sys
    from .resume import earlier_attempts
    from . import dryrun
    earlier = earlier_attempts()   # a resumed run: the interrupted attempts' time counts too
    return {
        **git_state(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(workers),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "profile": profile,
        "seeds": list(check_seeds(seeds)),
        "wall_time_s": round(wall_time_s + earlier["seconds"], 1),
        **({"attempts": earlier["attempts"]} if earlier["attempts"] > 1 else {}),
        "dataset": dataset or {},
        "config": config_dict(config),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        # OMP_NUM_THREADS=1 on a shared machine: wall time is per core
        "threads": 1 if workers > 1 else torch.get_num_threads(),
        **({"workers": workers} if workers > 1 else {}),
        # a check of the code path (`ingur_lib.dryrun`): its numbers mean nothing
        **({"dry_run": {"steps": dryrun.STEPS, "batch": dryrun.BATCH}} if dryrun.active() else {}),
        "launch": _launch(),
        **({"overrides": _overrides()} if _overrides() else {}),
    }


def _overrides() -> dict:
    from .overrides import active
    return active()


def _launch() -> dict:
    """How the run was launched: processes, machines, devices, precision (`distributed.Engine.describe`)."""
    from .distributed import engine  # here: distributed imports this module
    return engine().describe()


@dataclass
class Context:
    """What a notebook's setup cell settles: profile, device, seed."""
    profile: str
    device: torch.device
    seed: int

    def __str__(self):
        return f"profile={self.profile}, device={self.device}, seed={self.seed}, torch {torch.__version__}"


def setup(profile: str | None = None, seed: int | None = None, device: str | None = None,
          quiet: bool = False) -> Context:
    """One call at the top of every notebook: check the profile, pick the device, seed, plot style.

    Profile and seed follow the command line's rule (`choose_profile`, `choose_seeds`): the argument, else
    INGUR_PROFILE / INGUR_SEED, else smoke / 0; the printed line says which decided."""
    from .viz import thesis_style
    profile, profile_from = choose_profile(profile, "PROFILE")
    seeds, seed_from = choose_seeds(None if seed is None else [seed], "seed=...")
    ctx = Context(profile, pick_device(device), seeds[0])
    seed_everything(ctx.seed)
    thesis_style()
    if not quiet:
        print(f"Ingur: profile {ctx.profile} ({profile_from}), seed {ctx.seed} ({seed_from}), "
              f"device {ctx.device}, torch {torch.__version__}")
    return ctx
