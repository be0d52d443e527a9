"""Plots for the book and the thesis: one print style, sample grids, curves, attention over images.

Every function returns a matplotlib Figure (it never calls plt.show), so a notebook shows it and
`save_figure` writes it as PDF + PNG for the thesis.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.patches import Patch
import numpy as np
import torch

from .atomic import atomic_path
from .errors import IngurError

TEXT_WIDTH_IN = 6.3  # an A4 thesis text block (~455 pt); figures are sized as fractions of it
# A thesis figure is printed at its own size (never scaled in LaTeX), so that one font size holds across them:
# it is exactly one of two widths, the text block or half of it less a gutter (two side by side).
COLUMN_WIDTH_IN = 3.1
THESIS_WIDTHS_IN = (COLUMN_WIDTH_IN, TEXT_WIDTH_IN)
FONT_PT = 8  # every text of a figure in the book's style, titles and legends included


def thesis_style(context: str = "paper") -> None:
    """Seaborn's colour-blind palette, print-sized fonts, tight PDF output."""
    import seaborn as sns
    sns.set_theme(context=context, style="ticks", palette=list(PALETTE))
    matplotlib.rcParams.update({
        "legend.frameon": False, "svg.hashsalt": "ingur",
        "figure.dpi": 110, "savefig.dpi": 200, "savefig.bbox": "tight", "figure.figsize": (TEXT_WIDTH_IN, 3.2),
        "axes.spines.top": False, "axes.spines.right": False, "image.cmap": "viridis",
        "pdf.fonttype": 42, "font.size": FONT_PT, "axes.titlesize": FONT_PT, "axes.labelsize": FONT_PT,
        "legend.fontsize": FONT_PT, "legend.title_fontsize": FONT_PT, "figure.titlesize": FONT_PT,
        "xtick.labelsize": FONT_PT, "ytick.labelsize": FONT_PT,
    })
    _retina_inline()


def _retina_inline() -> None:
    """In a notebook, inline figures as PNGs at twice the pixels (sharp on HiDPI screens, same size on the page)."""
    try:
        from IPython import get_ipython
        if get_ipython() is not None:
            from matplotlib_inline.backend_inline import set_matplotlib_formats
            set_matplotlib_formats("retina")
    except ImportError:  # no IPython: nothing displays inline
        pass


# No creation date (and a fixed producer) in the files, so a rebuild from the same results is byte-identical.
_METADATA = {"pdf": {"CreationDate": None, "Producer": "ingur_lib.viz"}, "png": {"Software": "ingur_lib.viz"},
             "svg": {"Date": None}}


def _tight_width(fig) -> float:
    fig.canvas.draw()
    return fig.get_tightbbox(fig.canvas.get_renderer()).width


def thesis_width(fig) -> float:
    """The one of THESIS_WIDTHS_IN a figure is printed at: the column when its drawing fits in about 1.3 columns
    (so a half-width figure is not blown up to the text width), else the text width."""
    return COLUMN_WIDTH_IN if _tight_width(fig) <= 1.3 * COLUMN_WIDTH_IN else TEXT_WIDTH_IN


def fit_width(fig, width: float):
    """Resize `fig` until its drawing (tight box) fits `width` inches, then return a box exactly that wide
    (white margins share what is left): the saved file is `width` inches wide whatever the layout."""
    from matplotlib.transforms import Bbox
    for _ in range(6):  # fonts keep their size, so the layout moves: a few rounds converge
        tight = _tight_width(fig)
        if width - 0.04 <= tight <= width:
            break
        w, h = fig.get_size_inches()
        fig.set_size_inches(max(w * width / tight, 0.5), h, forward=True)
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    pad = (width - box.width) / 2
    return Bbox.from_extents(box.x0 - pad, box.y0 - 0.02, box.x1 + pad, box.y1 + 0.02)


def save_figure(fig, out_dir: str | Path, name: str, formats=("pdf", "png"), width: float | None = None) -> list[Path]:
    """Write `fig` as out_dir/name.{pdf,png}, atomically, exactly `width` inches wide (one of
    THESIS_WIDTHS_IN; by default the one `thesis_width` picks)."""
    box = fit_width(fig, width or thesis_width(fig))
    paths = []
    for fmt in formats:
        target = Path(out_dir) / f"{name}.{fmt}"
        with atomic_path(target, suffix="." + fmt) as tmp:
            fig.savefig(tmp, format=fmt, metadata=_METADATA.get(fmt), bbox_inches=box)
        paths.append(target)
    return paths


# ---------------------------------------------------------------- the figure style
# One set of rules, applied inside every helper below so that a figure cannot break them:
# legends outside the axes, bars from zero, error bars only for n >= 2 and labelled, one colour per
# variant name, shared colour scales with a colour bar, thinned token labels, reproducible PDFs.

# Okabe-Ito's colour-blind-safe hues, ordered so that neighbours differ in hue (no two oranges in a row).
# Vermillion waits until the 9th name (beside orange it reads as a second orange), yellow and grey
# come last (they read poorly as thin lines on white).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#8C564B", "#000000", "#7F7F7F",
           "#D55E00", "#F0E442")
_COLOURS: dict[str, str] = {}
_CHAPTER_NAMES: dict[str, tuple[str, ...]] = {}


def name_colors(names: Sequence[str], chapter: str | None = None) -> None:
    """Fix the colours of a chapter's variants, in order (call at import with the variant names).

    With `chapter`, `colour_scope(chapter)` restores exactly these colours before that chapter's figures.
    """
    if chapter:
        _CHAPTER_NAMES[chapter] = tuple(names)
    for name in names:
        colour_of(name)


def colour_scope(chapter: str | None = None) -> None:
    """Start a fresh name -> colour map (one chapter's), seeded with the names the chapter fixed."""
    _COLOURS.clear()
    for name in _CHAPTER_NAMES.get(chapter, ()):
        colour_of(name)


_SEED = re.compile(r"\s*\((seed \d+|\d+ seeds?)\)$")


def colour_of(name: str) -> str:
    """The colour of a variant name: the same everywhere in a process, distinct from those used so far.

    "ViT (seed 1)" and "ViT (3 seeds)" have the colour of "ViT": seeds are replicates of one variant.
    """
    name = _SEED.sub("", name)
    if name not in _COLOURS:
        used = list(_COLOURS.values())
        free = [c for c in PALETTE if c not in used]
        _COLOURS[name] = free[0] if free else PALETTE[len(_COLOURS) % len(PALETTE)]
    return _COLOURS[name]


def whole_ticks(ax, axis: str = "x") -> None:
    """Ticks at whole numbers only, on round steps (epochs 1, 2, 3; percents 0, 20, 40), never 1.5."""
    getattr(ax, f"{axis}axis").set_major_locator(
        matplotlib.ticker.MaxNLocator(nbins="auto", steps=[1, 2, 5, 10], integer=True))


def seed_style(name: str) -> str:
    """Line style of a run named "... (seed k)": seed 0 solid, 1 dashed, 2 dotted (colours are per variant)."""
    m = re.search(r"\(seed (\d+)\)$", name)
    return ("-", "--", ":", "-.")[int(m.group(1)) % 4] if m else "-"


def legend_outside(target, where: str = "auto", **kw):
    """A legend outside the plotting area, so it never covers data: "right", "above", or "auto"
    (right of the axes unless another panel sits there, then above).

    `target` is an Axes (its own labelled artists) or a Figure (one legend for all panels, each name
    once: panels share colours per name). Returns the legend, or None when nothing is labelled.
    """
    is_fig = isinstance(target, Figure)
    axes = target.axes if is_fig else [target]
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if not entries:
        return None
    if is_fig and not isinstance(target.get_layout_engine(), ConstrainedLayoutEngine):
        target.tight_layout()  # re-fit the panels now that their own legends are gone
    if where == "auto":  # another panel to the right of this axis: go above instead
        x1 = 1.0 if is_fig else target.get_position().x1
        crowded = not is_fig and any(a is not target and a.get_position().x0 >= x1 - 1e-3
                                     for a in target.figure.axes)
        where = "above" if crowded else "right"
    if where == "above":
        if not is_fig and any(set(entries) <= _labels(a.get_legend()) for a in target.figure.axes
                              if a is not target and a.get_legend() is not None):
            return None  # a sibling panel's legend already names every line of this one
        opts = dict(loc="lower center", bbox_to_anchor=(0.5, 1.02), ncols=min(len(entries), 4))
        if not is_fig and target.get_title():  # the legend would sit on the title: it becomes its title
            opts["title"] = target.get_title()
            opts["title_fontsize"] = matplotlib.rcParams["axes.titlesize"]
            target._ingur_title = target.get_title()
            target.set_title("")
    else:
        opts = dict(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        if not is_fig:  # panels of one figure share colours per name: one legend, not one per panel
            _drop_repeated_legends(target, set(entries))
    opts.update(frameon=False, borderaxespad=0.2, **kw)
    return target.legend(list(entries.values()), list(entries), **opts)


def _labels(legend) -> set:
    return {t.get_text() for t in legend.get_texts()}


def _drop_repeated_legends(ax, labels: set) -> None:
    """Remove the legends of `ax`'s sibling panels that list only names `labels` already lists
    (and give those panels their titles back)."""
    for other in ax.figure.axes:
        leg = other.get_legend()
        if other is ax or leg is None:
            continue
        if _labels(leg) <= labels:
            leg.remove()
            if getattr(other, "_ingur_title", None):
                other.set_title(other._ingur_title)


def error_note(n: int, kind: str = "std") -> str:
    """The label that says what an error bar is, e.g. 'error bars: ± s.e., n = 3 seeds'."""
    if kind not in ("std", "s.e."):
        raise IngurError(f"error bar kind {kind!r} is unknown: use 'std' or 's.e.'.")
    return f"error bars: ± {kind}, n = {n} seeds"


def spread(values: Sequence[float], kind: str = "std") -> float | None:
    """std (ddof=1) or standard error of `values`; None for fewer than 2 values (no error bar)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return None
    s = float(v.std(ddof=1))
    return s / np.sqrt(len(v)) if kind == "s.e." else s


def bars_from_zero(ax) -> None:
    """Bar charts start their value axis at zero (a truncated axis exaggerates small differences).

    Bars already autoscale to include zero; this only fixes limits that were set to exclude it.
    """
    lo, hi = ax.get_ylim()
    if lo > 0 or hi < 0:
        ax.set_ylim(min(lo, 0.0), max(hi, 0.0))


def thin_labels(n: int, length_pt: float, font_pt: float = 6.0) -> int:
    """Every how many tick labels to show so that `n` labels of `font_pt` fit along `length_pt` points."""
    return max(1, int(np.ceil(n * (font_pt + 1.0) / max(length_pt, 1.0))))


def shared_colorbar(fig, axes, images, label: str = "", vmin: float | None = None, vmax: float | None = None):
    """Give side-by-side heatmaps one colour scale (min/max over all of them) and one colour bar."""
    images = [im for im in images if im is not None]
    lo = min(float(np.nanmin(im.get_array())) for im in images) if vmin is None else vmin
    hi = max(float(np.nanmax(im.get_array())) for im in images) if vmax is None else vmax
    for im in images:
        im.set_clim(lo, hi)
    cb = fig.colorbar(images[0], ax=list(np.ravel(axes)), fraction=0.025, pad=0.02)
    cb.set_label(label)
    cb.ax.tick_params(labelsize=FONT_PT)
    return cb


def _as_image(img: torch.Tensor | np.ndarray) -> np.ndarray:
    """(C, H, W) uint8/float tensor -> (H, W) or (H, W, 3) array for imshow."""
    a = img.detach().cpu().numpy() if torch.is_tensor(img) else np.asarray(img)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    return a


def sample_grid(images, labels, classes: Sequence[str], n: int = 16, ncols: int = 8, title: str | None = None):
    """A grid of the first `n` images with their class names."""
    n = min(n, len(images))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(TEXT_WIDTH_IN, 0.95 * nrows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in zip(range(n), axes.flat):
        ax.imshow(_as_image(images[i]), cmap="gray")
        ax.set_title(classes[int(labels[i])])
    if title:
        fig.suptitle(title)
    return fig


def class_balance(splits: Mapping[str, torch.Tensor], classes: Sequence[str]):
    """Images per class in each split (e.g. {"train": y_train, "test": y_test})."""
    fig, ax = plt.subplots(figsize=(TEXT_WIDTH_IN, 2.4))
    width = 0.8 / len(splits)
    for i, (name, y) in enumerate(splits.items()):
        counts = torch.bincount(torch.as_tensor(y), minlength=len(classes)).numpy()
        ax.bar(np.arange(len(classes)) + i * width, counts, width, label=f"{name} ({counts.sum():,})")
    ax.set_xticks(np.arange(len(classes)) + 0.4 - width / 2, classes, rotation=30, ha="right")
    ax.set_ylabel("images")
    # Above the axes: balanced classes fill the plot to the top, so no corner is free for the legend.
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=len(splits), frameon=False)
    return fig


# History keys as an axis says them (the pages wrote 'train acc', 'test acc')
METRIC_LABELS = {"train_loss": "training loss", "train_acc": "training accuracy", "test_acc": "test accuracy",
                 "test_loss": "test loss"}


def learning_curves(histories: Mapping[str, object], metrics=("train_loss", "test_acc")):
    """One panel per metric, one line per run. `histories` maps run name -> History or its dict.

    A metric may be a panel `(metric, y label, run names)` instead of a name: runs whose same-named
    metric is another quantity (a teacher's cross-entropy, its students' KL) get panels of their own.
    A metric scored once per run (e.g. test accuracy at the end only) is drawn as bars from zero,
    not as lone dots; the legend sits right of the panels.
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(TEXT_WIDTH_IN, 2.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        metric, ylabel, only = metric if isinstance(metric, tuple) else (metric, None, None)
        pts = {}
        for name, h in histories.items():
            if only is not None and name not in only:
                continue
            epochs = h["epochs"] if isinstance(h, dict) else h.epochs
            pts[name] = [(e["epoch"], e[metric]) for e in epochs if e.get(metric) is not None]
        if all(len(p) <= 1 for p in pts.values()):
            names = [n for n, p in pts.items() if p]
            ax.bar(range(len(names)), [pts[n][0][1] for n in names], color=[colour_of(n) for n in names],
                   label=names)
            ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
            ax.set_xlabel("at the last epoch")
            bars_from_zero(ax)
        else:
            for name, p in pts.items():
                if p:
                    ax.plot(*zip(*p), marker="o", markersize=3, label=name, color=colour_of(name),
                            ls=seed_style(name))
            ax.set_xlabel("epoch")
            whole_ticks(ax)  # no epoch 1.5
        ax.set_ylabel(ylabel or METRIC_LABELS.get(metric, metric.replace("_", " ")))
    fig.tight_layout()
    legend_outside(fig)
    return fig


def cls_attention(maps: torch.Tensor, grid: int, num_prefix: int = 1, query: int = 0) -> torch.Tensor:
    """The attention of token `query` (the class token) to the patches, as (..., grid, grid) maps."""
    row = maps[..., query, num_prefix:]
    return row.reshape(*row.shape[:-1], grid, grid)


def overlay(ax, image, heat, alpha: float = 0.75, title: str | None = None, vmax: float | None = None,
            vmin: float = 0.0):
    """Draw `heat` (grid x grid) upsampled over `image`, on one axis; returns the heat's image.

    With `vmax` the heat is shown on [vmin, vmax] mapped to [0, 1] (a scale shared with other panels);
    without it, stretched to its own min..max. The colour is as opaque as the heat is high: where a map says
    little, the image shows through (a near-uniform map no longer washes the face out).
    """
    img = _as_image(image)
    h = torch.as_tensor(heat, dtype=torch.float32)[None, None]
    h = torch.nn.functional.interpolate(h, size=img.shape[:2], mode="bilinear", align_corners=False)[0, 0].numpy()
    h = np.clip((h - vmin) / (vmax - vmin + 1e-8), 0, 1) if vmax else (h - h.min()) / (np.ptp(h) + 1e-8)
    ax.imshow(img, cmap="gray")
    rgba = matplotlib.colormaps["inferno"](h)
    rgba[..., 3] = alpha * h
    ax.imshow(rgba)
    im = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(0, 1), "inferno")  # what a colour bar reads
    im.set_array(h)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return im


def attention_grid(images, heats, row_titles: Sequence[str] | None = None, col_titles: Sequence[str] | None = None):
    """Images (B,) down the columns, one row per kind of map: heats is (rows, B, grid, grid).

    The first row shows the images themselves. Each row shares one scale (its maximum), so maps in a
    row compare directly; one colour bar gives the scale.
    """
    heats = torch.as_tensor(heats, dtype=torch.float32)
    rows, b = heats.shape[:2]
    fig, axes = plt.subplots(rows + 1, b, figsize=(TEXT_WIDTH_IN, 1.0 * (rows + 1) + 0.2), squeeze=False)
    ims = []
    for j in range(b):
        axes[0, j].imshow(_as_image(images[j]), cmap="gray")
        axes[0, j].axis("off")
        if col_titles:
            axes[0, j].set_title(col_titles[j])
        for i in range(rows):
            # each row on its own min..max: a rollout a little above uniform shows where it is above
            lo, hi = float(heats[i].min()), float(heats[i].max())
            ims.append(overlay(axes[i + 1, j], images[j], heats[i, j], vmax=hi if hi > lo else lo + 1.0, vmin=lo))
    if row_titles:
        for i, t in enumerate(row_titles):
            axes[i + 1, 0].text(-0.08, 0.5, t, transform=axes[i + 1, 0].transAxes, ha="right", va="center")
    fig.subplots_adjust(wspace=0.05, hspace=0.15, right=0.9)
    shared_colorbar(fig, axes[1:], ims, "attention, row min to max", vmin=0, vmax=1)
    return fig


def attention_heads(image, layer_maps: torch.Tensor, grid: int, num_prefix: int = 1, title: str | None = None):
    """The class token's attention in every head of one layer over one image: layer_maps is (H, N, N).

    All heads share one scale (the largest weight of the layer), with a colour bar.
    """
    heads = cls_attention(layer_maps, grid, num_prefix)
    vmax = float(heads.max()) or 1.0
    fig, axes = plt.subplots(1, len(heads) + 1, figsize=(TEXT_WIDTH_IN, 1.4), squeeze=False)
    axes[0, 0].imshow(_as_image(image), cmap="gray")
    axes[0, 0].axis("off")
    ims = [overlay(ax, image, heads[h], title=f"head {h}", vmax=vmax) for h, ax in enumerate(axes[0, 1:])]
    shared_colorbar(fig, axes[0], ims, f"weight / layer max\n(max = {vmax:.2f})", vmin=0, vmax=1)
    if title:
        fig.suptitle(title, y=1.05)
    return fig


def bar_with_errors(ax, labels, means, stds=None, reference=None, ylabel="", n: int | None = None,
                    err: str = "std", reference_label: str | None = None, one_colour: bool = False):
    """Bars from zero, one colour per label, and error bars only where they mean something.

    `one_colour`: the bars are differences of one quantity (effects), not variants: one colour for all.
    `stds` are the half-widths of the error bars (of kind `err`: "std" or "s.e.") over `n` seeds;
    with n < 2 (or a zero spread) no error bar is drawn, and the kind is written under the axis.
    """
    x = np.arange(len(labels))
    yerr = None
    if stds is not None and (n is None or n >= 2):
        yerr = [s if s else 0.0 for s in (float(v) if v is not None else 0.0 for v in stds)]
        yerr = yerr if any(yerr) else None
    labels = [str(lab) for lab in labels]
    numbered = all(lab.lstrip("+-").replace(".", "", 1).isdigit() for lab in labels)
    # Numbered bars (block 1, 2, 3...) are one quantity along an axis, not variants: one colour, and
    # short labels stay upright.
    colours = PALETTE[0] if numbered or one_colour else [colour_of(lab) for lab in labels]
    ax.bar(x, means, yerr=yerr, capsize=3, color=colours)
    long = max((len(lab) for lab in labels), default=0) > 3
    ax.set_xticks(x, labels, rotation=20 if long else 0, ha="right" if long else "center")
    if reference is not None:
        ax.axhline(reference, color="gray", ls="--", lw=1, label=reference_label)
    ax.set_ylabel(ylabel)
    if yerr is not None:  # say what the bars are, in the axis label: a note there never covers anything
        ax.set_ylabel(f"{ylabel}\n({error_note(n, err) if n else f'error bars: ± {err}'})")
    bars_from_zero(ax)
    return ax


def mask_panels(rows: Sequence[Sequence[np.ndarray]], row_titles: Sequence[str], col_titles: Sequence[str],
                ylabel: str = "block", xlabel: str = "dimension"):
    """Keep/prune masks as heatmaps: rows x columns of 2-D (layer x dimension) arrays, 1 = kept (dark).

    Panels in one column share a width (e.g. attention inputs vs MLP hidden units have different widths).
    """
    ncols = len(col_titles)
    widths = [np.asarray(rows[0][j]).shape[1] for j in range(ncols)]
    fig, axes = plt.subplots(len(rows), ncols, figsize=(TEXT_WIDTH_IN, 0.95 * len(rows) + 0.5), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    for i, row in enumerate(rows):
        for j, m in enumerate(row):
            m = np.asarray(m, dtype=float)
            ax = axes[i, j]
            ax.imshow(m, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
            ax.set_yticks(range(m.shape[0]), [str(k + 1) for k in range(m.shape[0])])
            ax.set_xticks([])
            if i == 0:
                ax.set_title(col_titles[j])
            if j == 0:
                ax.set_ylabel(f"{row_titles[i]}\n{ylabel}")
            if i == len(rows) - 1:
                ax.set_xlabel(f"{xlabel} (0-{m.shape[1] - 1})")
    fig.tight_layout()
    # the key: without it a reader cannot tell whether black is kept or pruned
    key = [Patch(facecolor="black", label="kept"), Patch(facecolor="white", edgecolor="0.4", label="pruned")]
    fig.legend(handles=key, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, frameon=False)
    return fig


def overlaid_histograms(groups: Mapping[str, Sequence[float]], xlabel: str, bins: int = 50, ax=None,
                        vline: float | None = None, vline_label: str | None = None):
    """Overlaid step histograms of several samples (e.g. importance scores with and without L1);
    `vline` marks a value (dashed), named in the legend by `vline_label`."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(TEXT_WIDTH_IN / 2, 2.4))
    allv = np.concatenate([np.asarray(v, dtype=float) for v in groups.values()])
    edges = np.linspace(allv.min(), allv.max() + 1e-9, bins + 1)
    for name, v in groups.items():
        ax.hist(np.asarray(v, dtype=float), bins=edges, histtype="stepfilled", alpha=0.45, label=name,
                color=colour_of(name))
    if vline is not None:
        ax.axvline(vline, color="gray", ls="--", lw=1, label=vline_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    legend_outside(ax)
    return fig or ax.figure


def grouped_bars(categories: Sequence[str], series: Mapping[str, Sequence[float]], ylabel: str = "", ax=None):
    """Bars for several series side by side over the same categories (e.g. per block: attention vs MLP)."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(TEXT_WIDTH_IN / 2, 2.4))
    width = 0.8 / len(series)
    x = np.arange(len(categories))
    for i, (name, vals) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, vals, width, label=name, color=colour_of(name))
    ax.set_xticks(x, categories)
    ax.set_ylabel(ylabel)
    bars_from_zero(ax)
    legend_outside(ax)
    return fig or ax.figure


def lines_with_bands(x: Sequence[float], series: Mapping[str, tuple], xlabel: str, ylabel: str, ax=None,
                     logy: bool = False):
    """One line per series with a +-std band: series maps name -> (means, stds or None).

    Points get markers when there are few of them (a sweep), none when the line is dense (a schedule);
    the legend (outside, right) appears when the axis holds more than one labelled line.
    """
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(TEXT_WIDTH_IN / 2, 2.4))
    for name, (means, stds) in series.items():
        means = np.asarray(means, dtype=float)
        ax.plot(x, means, marker="o" if len(means) <= 30 else None, markersize=3, label=name,
                color=colour_of(name))
        if stds is not None:
            stds = np.asarray(stds, dtype=float)
            ax.fill_between(x, means - stds, means + stds, alpha=0.2, color=colour_of(name))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    xs = np.asarray(x, dtype=float)
    if len(xs) and np.all(xs == np.round(xs)):  # whole x (epochs, blocks): no tick at 1.5
        whole_ticks(ax)
    if logy:
        ax.set_yscale("log")
    if len(ax.get_legend_handles_labels()[1]) > 1:
        legend_outside(ax)
    return fig or ax.figure


def attention_matrix(weights, row_labels: Sequence[str], col_labels: Sequence[str], ax=None,
                     title: str | None = None, cmap: str = "viridis", colorbar: bool = True,
                     figsize: tuple[float, float] | None = None, vmax: float | None = None,
                     colorbar_label: str | None = None):
    """One attention matrix (queries down, keys across) with its tokens as tick labels.

    weights: (Nq, Nk); row_labels/col_labels: the query and key tokens. Draws on `ax` if given
    (returns the axis; `attention_matrices` adds the shared colour bar), else on a new figure with
    its colour bar (returns the figure). Long token axes show every k-th label so labels never overlap.
    """
    w = torch.as_tensor(weights, dtype=torch.float32).cpu().numpy()
    if w.shape != (len(row_labels), len(col_labels)):
        raise IngurError(f"weights are {w.shape} but there are {len(row_labels)} row and {len(col_labels)} "
                         "column labels: pass one label per query and per key.")
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize or (min(0.22 * len(col_labels) + 1.6, TEXT_WIDTH_IN),
                                                   0.16 * len(row_labels) + 0.9))
    vmax = max(float(w.max()), 1e-8) if vmax is None else vmax
    im = ax.imshow(w, cmap=cmap, vmin=0, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(row_labels)), row_labels, fontsize=6)
    ax.tick_params(length=0)
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title)
    if fig is None:
        return ax
    if colorbar:
        bar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
        bar.ax.tick_params(labelsize=FONT_PT)
        if colorbar_label:
            bar.set_label(colorbar_label)
    thin_tick_labels(ax)
    return fig


def thin_tick_labels(ax, font_pt: float = 6.0) -> None:
    """Keep every k-th tick label on each axis, k chosen from the axis length so labels cannot overlap."""
    fig = ax.figure
    pos = ax.get_position()
    for axis, length in ((ax.xaxis, pos.width * fig.get_figwidth() * 72),
                         (ax.yaxis, pos.height * fig.get_figheight() * 72)):
        labels = [t.get_text() for t in axis.get_ticklabels()]
        k = thin_labels(len(labels), length, font_pt)
        if k > 1 and labels and all(len(t) == 1 or t[:1] + t[-1:] == "<>" for t in labels):
            # characters: every k-th one reads as another word ('<bos> e a e s h u'), so the ticks
            # number the positions and the axis spells the sequence once
            need = thin_labels(len(labels), length, font_pt * len(str(len(labels) - 1)))  # numbers are wider
            step = next((m for m in (1, 2, 5, 10, 20, 50, 100) if m >= need), need)
            kept = list(range(0, len(labels), step))
            axis.set_ticks(kept, [str(i) for i in kept], rotation=0)
            if not axis.get_label_text():
                axis.set_label_text("".join(labels), fontsize=font_pt)
        elif k > 1 and labels:
            axis.set_ticklabels([t if i % k == 0 else "" for i, t in enumerate(labels)])


def attention_matrices(mats: Sequence, row_labels: Sequence, col_labels: Sequence, titles: Sequence[str],
                       ncols: int | None = None, height: float = 2.6):
    """Several `attention_matrix` panels side by side on one colour scale, with one colour bar.

    Labels may be one list for all panels or one list per panel. Panels are made tall enough for one
    6-pt label per row (up to 40 rows): a thinned character axis reads as another word ("detuedehh"
    for "dreitausendsechs...").
    """
    n = len(mats)
    ncols = ncols or n
    nrows = int(np.ceil(n / ncols))
    rows = max(torch.as_tensor(m).shape[0] for m in mats)
    height = max(height, min(rows, 40) * 7.0 / 72 + 1.1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(TEXT_WIDTH_IN, height * nrows), squeeze=False,
                             layout="constrained")
    per = lambda labels, i: labels[i] if isinstance(labels[0], (list, tuple)) else labels  # noqa: E731
    vmax = max(float(torch.as_tensor(m, dtype=torch.float32).max()) for m in mats)
    for i, ax in enumerate(axes.flat):
        if i < n:
            attention_matrix(mats[i], per(row_labels, i), per(col_labels, i), ax=ax, title=titles[i],
                             vmax=vmax)
        else:
            ax.axis("off")
    used = [ax for ax in axes.flat if ax.images]
    shared_colorbar(fig, used, [ax.images[0] for ax in used], "attention weight", vmin=0, vmax=vmax)
    fig.canvas.draw()  # constrained layout fixes the panel sizes, which decide how many labels fit
    for ax in used:
        thin_tick_labels(ax)
    return fig


def curves_with_errors(xs, series: Mapping[str, Sequence], xlabel: str = "", ylabel: str = "",
                       logx: bool = False, baseline: str | None = None, err: str = "std", dodge: float = 0.0):
    """Mean ± std (or s.e.) lines: `series` maps a name to one list of values (e.g. seeds) per x, or None
    where not run. Error bars only where there are >= 2 values; what they are is written under the axes.
    `dodge` shifts the series apart along x (a fraction of x on a log axis, else of the smallest x step), so
    points at one x do not hide each other; the ticks stay at the true x.

    With `baseline`, a second panel shows each series minus the baseline, paired value by value (same seed).
    """
    panels = 2 if baseline else 1
    fig, axes = plt.subplots(1, panels, figsize=(TEXT_WIDTH_IN * (0.85 if baseline else 0.55), 2.5),
                             squeeze=False)
    ns = set()

    def draw(ax, name, pts, colour_name):
        if pts:
            x, vals = zip(*pts)
            m = np.array([np.mean(v) for v in vals])
            s = [spread(v, err) for v in vals]
            ns.update(len(v) for v in vals if len(v) > 1)
            yerr = np.array([v or 0.0 for v in s]) if any(v for v in s) else None
            ax.errorbar(x, m, yerr=yerr, marker="o", markersize=3, capsize=2, label=name,
                        color=colour_of(colour_name))

    step = min((b - a for a, b in zip(xs, xs[1:])), default=1.0)

    def shifted(x, i):
        k = (i - (len(series) - 1) / 2) * dodge
        return x * (1 + k) if logx else x + k * step

    for i, (name, vals) in enumerate(series.items()):
        draw(axes[0, 0], name, [(shifted(x, i), v) for x, v in zip(xs, vals) if v], name)
        if baseline and name != baseline:
            diff = [(shifted(x, i), [a - b for a, b in zip(v, base)])
                    for x, v, base in zip(xs, vals, series[baseline]) if v and base]
            draw(axes[0, 1], name, diff, name)
    for ax in axes[0]:
        ax.set_xlabel(xlabel)
        if logx:
            ax.set_xscale("log")
            ax.set_xticks(list(xs), [f"{x:,}" for x in xs])
            ax.minorticks_off()
        elif len(xs) <= 12:
            ax.set_xticks(list(xs))
    axes[0, 0].set_ylabel(ylabel)
    if baseline:
        axes[0, 1].axhline(0, color="gray", ls="--", lw=1)
        axes[0, 1].set_ylabel(f"minus {baseline}\n(same seed, points)")  # one line ran past the panel
    if ns:
        note = error_note(max(ns), err) if len(ns) == 1 else f"error bars: ± {err} over seeds"
        axes[0, -1].annotate(note, (1.0, -0.3), xycoords="axes fraction", ha="right", va="top",
                             color="0.3", annotation_clip=False)
    fig.tight_layout()
    legend_outside(fig)
    return fig


def value_heatmap(ax, values, xlabels: Sequence[str], ylabels: Sequence[str], fmt: str = "{:.2f}",
                  vmin: float | None = None, vmax: float | None = None, texts=None):
    """A small matrix (rows x cols) as a colour map with each value written in its cell.

    Side-by-side heatmaps pass the same vmin/vmax (or call `shared_colorbar` on the returned images).
    `texts` (rows x cols strings, e.g. "mean\n± std") replaces the formatted values in the cells.
    """
    v = np.asarray(torch.as_tensor(values, dtype=torch.float32))
    im = ax.imshow(v, cmap="viridis", aspect="auto", vmin=vmin, vmax=vmax)
    lo, hi = im.get_clim()
    for (i, j), val in np.ndenumerate(v):
        ax.text(j, i, texts[i][j] if texts else fmt.format(val), ha="center", va="center", fontsize=7,
                color="white" if val < (lo + hi) / 2 else "black")
    ax.set_xticks(range(len(xlabels)), xlabels)
    ax.set_yticks(range(len(ylabels)), ylabels)
    return im


def heatmap_row(mats: Mapping[str, object], xlabels: Sequence[str], ylabels: Sequence[str],
                label: str = "", fmt: str = "{:.2f}", height: float = 2.2, texts=None):
    """Small matrices side by side (name -> rows x cols) on one colour scale with one colour bar."""
    fig, axes = plt.subplots(1, len(mats), figsize=(TEXT_WIDTH_IN, height), squeeze=False,
                             layout="constrained")
    allv = np.concatenate([np.ravel(np.asarray(torch.as_tensor(m, dtype=torch.float32))) for m in mats.values()])
    lo, hi = float(np.nanmin(allv)), float(np.nanmax(allv))  # NaN: a cell not run
    ims = []
    for k, (ax, (name, m)) in enumerate(zip(axes[0], mats.items())):
        ims.append(value_heatmap(ax, m, xlabels, ylabels, fmt, vmin=lo, vmax=hi, texts=texts and texts[k]))
        ax.set_title(name)
    shared_colorbar(fig, axes[0], ims, label, vmin=lo, vmax=hi)
    return fig


def image_row(images, titles: Sequence[str], size: float | None = None):
    """Images side by side with a title each (e.g. the shifted views of one image).

    By default the row fills the text width (small multiples must stay readable at the column width).
    """
    size = size or min(TEXT_WIDTH_IN / len(images), 2.0)
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size + 0.3), squeeze=False)
    for ax, img, t in zip(axes[0], images, titles):
        ax.imshow(_as_image(img), cmap="gray")
        ax.set_title(t)
        ax.axis("off")
    return fig


def matrix_heatmap(ax, values, xlabel: str, ylabel: str, cbar_label: str, cmap: str = "viridis", title: str = ""):
    """A dense matrix (rows x cols, too many cells to write values in) as a colour map with a labelled colour bar."""
    v = np.asarray(torch.as_tensor(values, dtype=torch.float32))
    im = ax.imshow(v, cmap=cmap, aspect="auto", interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, label=cbar_label, fraction=0.05)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return im

def matrix_heatmaps(mats: Mapping[str, object], xlabel: str, ylabel: str, cbar_label: str,
                    cmap: str = "viridis", height: float = 2.4, first_row: int = 0):
    """Dense matrices side by side (name -> rows x cols, e.g. LayerScale |lambda| of the attention and
    the MLP branches) on one colour scale with one colour bar, so equal colours mean equal values.
    Rows are numbered from `first_row` (1 for blocks, as the book's other per-block figures count)."""
    fig, axes = plt.subplots(1, len(mats), figsize=(TEXT_WIDTH_IN, height), squeeze=False,
                             layout="constrained")
    ims = []
    for ax, (name, m) in zip(axes[0], mats.items()):
        v = np.asarray(torch.as_tensor(m, dtype=torch.float32))
        top = first_row - 0.5
        ims.append(ax.imshow(v, cmap=cmap, aspect="auto", interpolation="nearest",
                             extent=(-0.5, v.shape[1] - 0.5, top + v.shape[0], top)))
        whole_ticks(ax, "y")
        ax.set_title(name)
        ax.set_xlabel(xlabel)
    axes[0, 0].set_ylabel(ylabel)
    shared_colorbar(fig, axes[0], ims, cbar_label)
    return fig


def roc_curves(curves: Mapping[str, tuple], ax=None):
    """ROC curves: `curves` maps a name to (false-positive rates, true-positive rates); chance dashed."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(TEXT_WIDTH_IN / 2, 2.6))
    for i, (name, (fpr, tpr)) in enumerate(curves.items()):
        ax.plot(fpr, tpr, color=f"C{i}", label=name)
    ax.plot([0, 1], [0, 1], color="gray", ls="--", lw=1, label="chance")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right")
    return fig or ax.figure


def image_table(rows: Mapping[str, Sequence], col_titles: Sequence[str], size: float = 0.6):
    """Images in a table: one row per name (its label on the left), one column per title, e.g. one image
    under each augmentation op (rows) at several magnitudes (columns)."""
    fig, axes = plt.subplots(len(rows), len(col_titles), squeeze=False,
                             figsize=(size * len(col_titles) + 1.1, size * len(rows) + 0.3))
    for i, (name, imgs) in enumerate(rows.items()):
        for j, img in enumerate(imgs):
            ax = axes[i, j]
            ax.imshow(_as_image(img), cmap="gray", vmin=0, vmax=255 if _as_image(img).max() > 1 else 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(col_titles[j])
            if j == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center")
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return fig


def paired_gains(ax, labels: Sequence[str], series: Mapping[str, Sequence[tuple | None]], ylabel: str,
                 reference: Mapping[str, float] | None = None, reference_label: str = "paper"):
    """A difference plot: for each label, each series' paired difference (same seed, so the seed's luck
    cancels) as (mean, low, high, n), its 95% interval from `figures.paired_intervals`, around a zero line.
    A one- or two-point effect is invisible on bars of totals that start at zero; here the axis is the
    effect itself. `reference` marks a value per label (e.g. the paper's gain) with hollow diamonds."""
    x = np.arange(len(labels), dtype=float)
    width = 0.5 / max(len(series), 1)
    n = 0
    for i, (name, per_label) in enumerate(series.items()):
        pts = [(xi + (i - (len(series) - 1) / 2) * width, *p) for xi, p in zip(x, per_label) if p]
        if not pts:  # e.g. a run without its control: nothing to pair
            continue
        xs, means, lo, hi, ns = (np.array(v, dtype=float) for v in zip(*pts))
        ax.errorbar(xs, means, yerr=[means - lo, hi - means], fmt="o", capsize=3, color=colour_of(name),
                    label=name)
        n = max(n, int(ns.max()))
    if reference:
        ref = [(xi, reference[k]) for xi, k in zip(x, labels) if k in reference]
        if ref:
            ax.plot(*zip(*ref), "D", mfc="none", color="0.35", label=reference_label)
    ax.axhline(0, color="gray", ls="--", lw=1)
    ax.set_xticks(x, labels)
    ax.set_ylabel(ylabel)
    note = (f"mean and 95% interval over {n} seeds, paired per seed" if n > 1 else
            "one seed: no interval" if n else "no paired runs recorded")
    ax.annotate(note, (1.0, 1.02), xycoords="axes fraction", ha="right", va="bottom", color="0.3",
                annotation_clip=False)
    return ax
