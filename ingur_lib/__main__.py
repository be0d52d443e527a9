"""Command line: `python -m ingur_lib {reproduce,figures,ledger,bench,student,pin}` (also installed as `ingur`)."""
from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys

# Exit codes: 0 done; 1 the run failed (bad data, a full disk); 2 the command was wrong (nothing was run);
# 130 interrupted (Ctrl-C), as shells report a SIGINT.
FAILED, USAGE, INTERRUPTED = 1, 2, 130

ENVIRONMENT = """\
environment variables:
  INGUR_PROFILE            profile when --profile is not given (smoke, standard, full; default:
                           standard for reproduce, smoke for the notebooks)
  INGUR_SEED               first seed when --seeds is not given (a chapter keeps its number of seeds)
  INGUR_DEVICE             cpu, cuda or mps (default: the best one here)
  INGUR_RESULTS            folder of recorded results (default data/results; it must exist)
  INGUR_CACHE              folder of datasets and checkpoints (default data/cache)
  INGUR_FASHION_MNIST_DIR  folder of Fashion-MNIST's IDX files (default: the Debian package's)
  INGUR_OFFLINE=1          never use the Hugging Face Hub
  INGUR_WORKERS            worker processes for chapters that spread their trainings (08)
  INGUR_ROOT               the book's checkout (default: the one this library runs from)
  TQDM_DISABLE=1           one line per epoch instead of progress bars

exit codes: 0 done, 1 the run failed, 2 a usage error (nothing ran), 130 interrupted (Ctrl-C)"""


def _parser() -> argparse.ArgumentParser:
    from . import __version__
    from .chapters import landed
    from .profiles import PROFILES
    chapters, profiles = [c.id for c in landed()], "{" + ",".join(PROFILES) + "}"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true",
                        help="print only the result (no progress, data sources or settings) and errors")
    p = argparse.ArgumentParser(prog="python -m ingur_lib", description=__doc__, epilog=ENVIRONMENT,
                                formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common])
    p.add_argument("--version", action="version", version=f"ingur-lib {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    def command(name, help_):
        return sub.add_parser(name, help=help_, description=help_, parents=[common], epilog=ENVIRONMENT,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    r = command("reproduce", "run a chapter's experiments and record data/results/<chapter>/<profile>.json")
    r.add_argument("chapter", metavar="CHAPTER", help=f"one of: {', '.join(chapters)}")
    r.add_argument("--profile", metavar=profiles, default=None,
                   help="default: INGUR_PROFILE, else standard (the ledger's runs; smoke takes minutes)")
    r.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="default: the chapter's own (started at INGUR_SEED when set)")
    r.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="change fields of the chapter's "
                   "config, e.g. --set batch_size=512 lr=2e-3 (recorded in the results; `ingur_lib.overrides`)")
    r.add_argument("--dry-run", action="store_true", help="the profile's whole code path, a few steps on a tiny "
                   "slice of its data, written under the cache (INGUR_DRY_RUN=1; `ingur_lib.dryrun`)")
    f = command("figures", "redraw every registered figure from recorded results (PDF + PNG)")
    f.add_argument("--out", default="figures")
    f.add_argument("--only", default=None, help="only figures whose name contains this")
    f.add_argument("--profile", metavar=profiles, default=None,
                   help="draw from this profile's results instead of each figure's own")
    g = command("ledger", "print the reported-vs-reproduced table")
    g.add_argument("--write", action="store_true", help="regenerate book/ledger.md")
    g.add_argument("--latex", default=None, help="also write a LaTeX table to this file")
    b = command("bench", "time the book's ViT against a plain SDPA ViT of the same dims (a ratio)")
    b.add_argument("--batch", type=int, default=128)
    b.add_argument("--rounds", type=int, default=5, help="alternating rounds of the two models")
    s = command("student", "write the classroom version of every notebook")
    s.add_argument("--out", default="classroom", help="default: classroom/, the copies readers get (committed)")
    s.add_argument("--teacher", action="store_true", help="keep the solutions and the answers to Think questions")
    command("pin", "write _config.yml's repository address and version into every notebook's Colab badge "
                   "and setup cell")
    return p


def main(argv=None) -> int:
    _printable_streams()
    a = _parser().parse_args(argv)  # a malformed command line: argparse's usage message, exit 2
    with _command_environ():
        return _run(a)


# What a command sets for its own run (--set, --dry-run): gone when it returns, so a second command in the
# same process (a notebook, a test) does not inherit them.
_COMMAND_ENV = ("INGUR_SET", "INGUR_DRY_RUN")


@contextlib.contextmanager
def _command_environ():
    before = {k: os.environ.get(k) for k in _COMMAND_ENV}
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run(a) -> int:

    from .errors import IngurError
    try:
        _check(a)
    except IngurError as err:
        return _error(err, USAGE)
    try:
        with _quiet(a.quiet):
            result = _dispatch(a)
    except IngurError as err:
        return _error(err, FAILED)
    except OSError as err:
        if err.errno not in _DISK_ERRORS:
            raise
        return _error(f"could not use {err.filename or 'a file'} ({err.strerror}): free some space or point "
                      f"{_where_written(a)} at another folder, then run the command again"
                      f"{' (it resumes the trainings already checkpointed)' if a.cmd == 'reproduce' else ''}.",
                      FAILED)
    except KeyboardInterrupt:
        return _error(_interrupted(a), INTERRUPTED, "interrupted")
    print(result)
    return 0


def _printable_streams() -> None:
    """A terminal or pipe that cannot encode the book's characters (±, →, ü) gets escapes, not a
    UnicodeEncodeError after the work is done."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")


def _error(message, code: int, label: str = "error") -> int:
    print(f"{label}: {message}", file=sys.stderr)
    return code


_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _where_written(a) -> str:
    return {"reproduce": "INGUR_RESULTS or INGUR_CACHE", "figures": "--out", "student": "--out",
            "ledger": "--latex"}.get(a.cmd, "INGUR_CACHE")


def _interrupted(a) -> str:
    """What an interrupted command kept, and how to go on (every file is written whole, or not at all)."""
    if a.cmd == "reproduce":
        from .paths import shown
        from .resume import checkpoint_folder
        return (f"nothing recorded; the trainings finished so far are checkpointed in "
                f"{shown(checkpoint_folder(a.chapter_id, a.profile))}: run the same command again to resume them.")
    return "the files written so far are complete and the rest were not written: run the command again to finish."


@contextlib.contextmanager
def _quiet(quiet: bool):
    """--quiet: what the work prints (progress, data sources, settings) goes nowhere; the result still shows."""
    if not quiet:
        yield
        return
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        yield


def _check(a) -> None:
    """Bad arguments and settings answered before any work starts (IngurError: one line, exit code 2)."""
    from .errors import IngurError
    from .paths import results_dir, writable_dir
    from .profiles import get_profile
    if a.cmd == "reproduce":
        _settle_reproduce(a)
    elif getattr(a, "profile", None):
        get_profile(a.profile)
    if a.cmd in ("reproduce", "figures", "ledger"):
        results_dir()  # a misspelt INGUR_RESULTS stops here, not after the work
    if a.cmd in ("student", "pin"):  # they rewrite the book's notebooks: outside a clone there are none
        from .paths import book_path
        book_path("notebooks")
    if a.cmd == "figures" and not os.environ.get("INGUR_RESULTS") and not any(results_dir().glob("*/*.json")):
        raise IngurError(f"No recorded results in {results_dir()}: run inside a clone of the book, set "
                         "INGUR_RESULTS to a results folder, or record one with `python -m ingur_lib reproduce`.")
    if a.cmd == "reproduce":  # a launch that started 1 process of N stops before any data is loaded
        from .chapters import check_ready
        from .distributed import check_launch
        check_launch()
        check_ready(a.chapter_id, results=not a.dry_run)
        if a.set:  # checked now, on the chapter's config, so a typo stops before any training
            import json

            from .overrides import ENV, parse
            os.environ[ENV] = json.dumps(parse(a.set))
            a.module.config(a.profile)
    if a.cmd in ("figures", "student"):
        writable_dir(a.out)
    if a.cmd == "ledger" and a.latex:
        from pathlib import Path
        writable_dir(Path(a.latex).parent, "pass --latex a file in a folder you can write to")
    if a.cmd == "bench":
        from .bench import check_counts
        check_counts(batch=a.batch, rounds=a.rounds)


def _settle_reproduce(a) -> None:
    """The chapter, profile, seeds and device of a `reproduce`, each checked and said with where it came from
    (the same rule as the notebooks': `choose_profile`, `choose_seeds`); the folders it will write checked
    writable; all before any data loads."""
    from .chapters import get
    from .paths import cache_dir, results_dir, writable_dir
    from .profiles import choose_profile
    from .runtime import choose_seeds, pick_device
    if a.dry_run:  # before the config is read: the dry run shrinks data and steps (`ingur_lib.dryrun`)
        os.environ["INGUR_DRY_RUN"] = "1"
    a.module = get(a.chapter)
    a.chapter_id = a.module.CHAPTER
    a.profile, profile_from = choose_profile(a.profile, "--profile", default="standard")
    a.seeds, seeds_from = choose_seeds(a.seeds, "--seeds", a.module.config(a.profile).seeds)
    device = pick_device()
    writable_dir(results_dir() / a.chapter_id, "point INGUR_RESULTS at a folder you can write to")
    cache_dir()  # the checkpoints' folder
    a.settings = (f"reproduce {a.chapter_id}: profile {a.profile} ({profile_from}), seeds "
                  f"{', '.join(map(str, a.seeds))} ({seeds_from}), device {device}")


def _dispatch(a) -> str:
    """Run the command; returns its result line(s), which --quiet still prints."""
    if a.cmd == "reproduce":
        from .resume import resumable
        print(a.settings)
        # every training checkpoints: a killed run, started again, resumes where it stopped
        with resumable(a.chapter_id, a.profile):
            return f"wrote {a.module.reproduce(a.profile, seeds=a.seeds, progress=not a.quiet)}"
    if a.cmd == "figures":
        from .book import make_figures
        return f"{len(make_figures(a.out, a.only, a.profile))} files in {a.out}"
    if a.cmd == "ledger":
        return _ledger(a)
    if a.cmd == "bench":
        from .bench import bench, report
        return report(bench(a.batch, a.rounds))
    if a.cmd == "pin":
        from .book import pin_notebooks, source
        return f"{len(pin_notebooks())} notebooks now install {'@'.join(source())}"
    from .exercises import make_student
    paths = make_student(a.out, teacher=a.teacher)
    return f"wrote {len(paths)} {'teacher' if a.teacher else 'student'} notebooks to {a.out}"


def _ledger(a) -> str:
    from . import ledger
    df = ledger.table()
    out = [df[["ref", "claim", "reported", "ours", "verdict"]].to_string(index=False)]
    if a.write:
        from .book import write_ledger_page
        out.append(f"wrote {write_ledger_page()}")
    if a.latex:
        ledger.to_latex(df, a.latex)
        out.append(f"wrote {a.latex}")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
