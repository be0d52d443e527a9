"""Command line: `python -m ingur_lib {reproduce,figures,ledger,bench,student,pin}` (also installed as `ingur`)."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ingur_lib", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reproduce", help="run a chapter's experiments and record data/results/<chapter>/<profile>.json")
    r.add_argument("chapter")
    r.add_argument("--profile", default="standard")
    r.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the chapter's own")
    r.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="change fields of the chapter's "
                   "config, e.g. --set batch_size=512 lr=2e-3 (recorded in the results; `ingur_lib.overrides`)")
    r.add_argument("--dry-run", action="store_true", help="the profile's whole code path, a few steps on a tiny "
                   "slice of its data, written under the cache (INGUR_DRY_RUN=1; `ingur_lib.dryrun`)")
    f = sub.add_parser("figures", help="redraw every registered figure from recorded results (PDF + PNG)")
    f.add_argument("--out", default="figures")
    f.add_argument("--only", default=None, help="only figures whose name contains this")
    f.add_argument("--profile", default=None, help="draw from this profile's results instead of each figure's own")
    g = sub.add_parser("ledger", help="print the reported-vs-reproduced table")
    g.add_argument("--write", action="store_true", help="regenerate book/ledger.md")
    g.add_argument("--latex", default=None, help="also write a LaTeX table to this file")
    b = sub.add_parser("bench", help="time the book's ViT against a plain SDPA ViT of the same dims (a ratio)")
    b.add_argument("--batch", type=int, default=128)
    b.add_argument("--rounds", type=int, default=5, help="alternating rounds of the two models")
    s = sub.add_parser("student", help="write the classroom version of every notebook")
    s.add_argument("--out", default="student")
    s.add_argument("--teacher", action="store_true", help="keep the solutions and the answers to Think questions")
    sub.add_parser("pin", help="write _config.yml's repository address and version into every notebook's "
                              "Colab badge and setup cell")
    a = p.parse_args(argv)

    from .errors import IngurError
    try:
        _check(a)
        return _dispatch(a)
    except IngurError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _check(a) -> None:
    """Bad arguments answered before any work starts (IngurError: one line, exit code 2)."""
    from .paths import writable_dir
    from .profiles import get_profile
    from .runtime import check_seeds
    if getattr(a, "seeds", None):
        check_seeds(a.seeds)
    if getattr(a, "profile", None):
        get_profile(a.profile)
    if a.cmd == "reproduce":  # a launch that started 1 process of N stops before any data is loaded
        from .chapters import check_ready
        from .distributed import check_launch
        check_launch()
        check_ready(a.chapter, results=not a.dry_run)
        if a.set:  # checked now, on the chapter's config, so a typo stops before any training
            import json
            import os

            from .chapters import get
            from .overrides import ENV, parse
            os.environ[ENV] = json.dumps(parse(a.set))
            get(a.chapter).config(a.profile)
    if a.cmd in ("figures", "student"):
        writable_dir(a.out)
    if a.cmd == "ledger" and a.latex:
        from pathlib import Path
        writable_dir(Path(a.latex).parent, "pass --latex a file in a folder you can write to")


def _dispatch(a) -> int:
    if a.cmd == "reproduce":
        if a.dry_run:
            import os
            os.environ["INGUR_DRY_RUN"] = "1"
        from .chapters import get
        from .profiles import get_profile
        from .resume import resumable
        mod = get(a.chapter)
        kwargs = {"seeds": tuple(a.seeds)} if a.seeds else {}
        # every training checkpoints: a killed run, started again, resumes where it stopped
        with resumable(getattr(mod, "CHAPTER", a.chapter), get_profile(a.profile)):
            print("wrote", mod.reproduce(get_profile(a.profile), **kwargs))
    elif a.cmd == "figures":
        from .book import make_figures
        paths = make_figures(a.out, a.only, a.profile)
        print(f"{len(paths)} files in {a.out}")
    elif a.cmd == "ledger":
        from . import ledger
        df = ledger.table()
        print(df[["ref", "claim", "reported", "ours", "verdict"]].to_string(index=False))
        if a.write:
            from .book import write_ledger_page
            print("wrote", write_ledger_page())
        if a.latex:
            ledger.to_latex(df, a.latex)
            print("wrote", a.latex)
    elif a.cmd == "bench":
        from .bench import bench, report
        print(report(bench(a.batch, a.rounds)))
    elif a.cmd == "pin":
        from .book import pin_notebooks, source
        paths = pin_notebooks()
        print(f"{len(paths)} notebooks now install {'@'.join(source())}")
    elif a.cmd == "student":
        from .exercises import make_student
        paths = make_student(a.out, teacher=a.teacher)
        print(f"wrote {len(paths)} {'teacher' if a.teacher else 'student'} notebooks to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
