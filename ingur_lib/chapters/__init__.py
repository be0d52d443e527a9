"""The book's chapters in reading order. Each landed chapter has a module here holding its configs per
profile, its `run` (what the notebook calls) and its `reproduce` (what writes data/results/)."""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..errors import IngurError


@dataclass(frozen=True)
class Chapter:
    id: str            # notebook stem and data/results/<id>/
    ref: int | None    # the thesis's reference number
    paper: str | None  # data/reported/<paper>.yaml
    title: str
    module: str | None  # ingur_lib.chapters.<module>, once the chapter has landed
    short: str = ""     # the name in the book's one numbering: "Chapter 3 · CaiT [5]"

    @property
    def heading(self) -> str:
        """How every page names the chapter (title, sidebar, intro, reading paths): the chapter number in
        reading order, a short name, and the thesis's reference number."""
        return f"Chapter {int(self.id[:2])} · {self.short}" + (f" [{self.ref}]" if self.ref else "")


CHAPTERS = [
    Chapter("00_getting_started", None, None, "Getting started: a ViT on Fashion-MNIST", "getting_started",
            "Getting started"),
    Chapter("01_transformer", 6, "transformer", "Attention Is All You Need", "transformer", "Transformer"),
    Chapter("02_deit", 4, "deit", "DeiT: data-efficient image transformers", "deit", "DeiT"),
    Chapter("03_cait", 5, "cait", "CaiT: going deeper with image transformers", "cait", "CaiT"),
    Chapter("04_augreg", 3, "augreg", "How to train your ViT (AugReg)", "augreg", "AugReg"),
    Chapter("05_spt_lsa", 2, "spt_lsa", "ViT for small-size datasets: SPT and LSA", "spt_lsa", "SPT + LSA"),
    Chapter("06_cvit", 7, "cvit", "CViT: deepfake detection", "cvit", "CViT"),
    Chapter("07_vtp", 8, "vtp", "Visual Transformer Pruning", "vtp", "VTP"),
    Chapter("08_binaryvit", 1, "binaryvit", "BinaryViT: binary vision transformers", "binaryvit", "BinaryViT"),
    Chapter("09_matmul_free", 9, "matmul_free", "Scalable MatMul-free Language Modeling", "matmul_free",
            "MatMul-free LM"),
    Chapter("10_capstone", None, None, "Capstone: the book's techniques combined on one ViT", "capstone", "Capstone"),
]


def landed() -> list[Chapter]:
    return [c for c in CHAPTERS if c.module]


def get(chapter_id: str):
    """The module of a landed chapter, by id ("00_getting_started") or short name ("getting_started")."""
    for c in landed():
        if chapter_id in (c.id, c.module):
            return importlib.import_module(f"{__name__}.{c.module}")
    raise IngurError(f"Unknown chapter {chapter_id!r}: use one of {', '.join(c.id for c in landed())}.")


def check_ready(chapter_id: str, results: bool = True) -> None:
    """Before any training: the chapter exists, its paper's reported numbers load (a clone's data/reported, or
    the copy installed with the package) and, when it will record them, its results folder is writable."""
    from ..ledger import load_reported
    from ..paths import results_dir, writable_dir
    get(chapter_id)  # an unknown chapter: one sentence listing the known ones
    chapter = next((c for c in landed() if chapter_id in (c.id, c.module)), None)
    if chapter and chapter.paper:
        load_reported(chapter.paper)
    if results:
        writable_dir(results_dir(), "set INGUR_RESULTS to a folder you can write to")
