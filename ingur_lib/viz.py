"""Plots for the book and the thesis: one print style, sample grids, curves, attention over images.

Every function returns a matplotlib Figure (it never calls plt.show), so a notebook shows it and
`save_figure` writes it as PDF + PNG for the thesis.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

import matplotlib.pyplot as plt
import numpy as np
import torch

from .atomic import atomic_path

TEXT_WIDTH_IN = 6.3  # an A4 thesis text block; figures are sized as fractions of it


def thesis_style(context: str = "paper") -> None:
    """Seaborn's colour-blind palette, print-sized fonts, tight PDF output."""
    import seaborn as sns
    sns.set_theme(context=context, style="ticks", palette="colorblind")
    matplotlib.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 200, "savefig.bbox": "tight", "figure.figsize": (TEXT_WIDTH_IN, 3.2),
        "axes.spines.top": False, "axes.spines.right": False, "image.cmap": "viridis",
        "pdf.fonttype": 42, "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
        "xtick.labelsize": 8, "ytick.labelsize": 8,
    })


def save_figure(fig, out_dir: str | Path, name: str, formats=("pdf", "png")) -> list[Path]:
    """Write `fig` as out_dir/name.{pdf,png}, atomically."""
    paths = []
    for fmt in formats:
        target = Path(out_dir) / f"{name}.{fmt}"
        with atomic_path(target, suffix="." + fmt) as tmp:
            fig.savefig(tmp, format=fmt)
        paths.append(target)
    return paths


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
        ax.set_title(classes[int(labels[i])], fontsize=7)
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


def learning_curves(histories: Mapping[str, object], metrics=("train_loss", "test_acc")):
    """One panel per metric, one line per run. `histories` maps run name -> History or its dict."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(TEXT_WIDTH_IN, 2.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for name, h in histories.items():
            epochs = h["epochs"] if isinstance(h, dict) else h.epochs
            pts = [(e["epoch"], e[metric]) for e in epochs if e.get(metric) is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric.replace("_", " "))
    axes[0][-1].legend()
    fig.tight_layout()
    return fig


def cls_attention(maps: torch.Tensor, grid: int, num_prefix: int = 1, query: int = 0) -> torch.Tensor:
    """The attention of token `query` (the class token) to the patches, as (..., grid, grid) maps."""
    row = maps[..., query, num_prefix:]
    return row.reshape(*row.shape[:-1], grid, grid)


def overlay(ax, image, heat, alpha: float = 0.55, title: str | None = None):
    """Draw `heat` (grid x grid) upsampled over `image`, on one axis."""
    img = _as_image(image)
    h = torch.as_tensor(heat, dtype=torch.float32)[None, None]
    h = torch.nn.functional.interpolate(h, size=img.shape[:2], mode="bilinear", align_corners=False)[0, 0].numpy()
    h = (h - h.min()) / (np.ptp(h) + 1e-8)
    ax.imshow(img, cmap="gray")
    ax.imshow(h, cmap="inferno", alpha=alpha)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=7)


def attention_grid(images, heats, row_titles: Sequence[str] | None = None, col_titles: Sequence[str] | None = None):
    """Images (B,) down the columns, one row per kind of map: heats is (rows, B, grid, grid).

    The first row shows the images themselves.
    """
    heats = torch.as_tensor(heats)
    rows, b = heats.shape[:2]
    fig, axes = plt.subplots(rows + 1, b, figsize=(TEXT_WIDTH_IN, 1.0 * (rows + 1) + 0.2), squeeze=False)
    for j in range(b):
        axes[0, j].imshow(_as_image(images[j]), cmap="gray")
        axes[0, j].axis("off")
        if col_titles:
            axes[0, j].set_title(col_titles[j], fontsize=7)
        for i in range(rows):
            overlay(axes[i + 1, j], images[j], heats[i, j])
    if row_titles:
        for i, t in enumerate(row_titles):
            axes[i + 1, 0].text(-0.08, 0.5, t, transform=axes[i + 1, 0].transAxes, ha="right", va="center", fontsize=7)
    fig.subplots_adjust(wspace=0.05, hspace=0.15)
    return fig


def attention_heads(image, layer_maps: torch.Tensor, grid: int, num_prefix: int = 1, title: str | None = None):
    """The class token's attention in every head of one layer over one image: layer_maps is (H, N, N)."""
    heads = cls_attention(layer_maps, grid, num_prefix)
    fig, axes = plt.subplots(1, len(heads) + 1, figsize=(TEXT_WIDTH_IN, 1.4), squeeze=False)
    axes[0, 0].imshow(_as_image(image), cmap="gray")
    axes[0, 0].axis("off")
    for h, ax in enumerate(axes[0, 1:]):
        overlay(ax, image, heads[h], title=f"head {h}")
    if title:
        fig.suptitle(title, y=1.05)
    return fig


def bar_with_errors(ax, labels, means, stds=None, reference=None, ylabel=""):
    """Bars with error bars and an optional horizontal reference line (e.g. chance)."""
    x = np.arange(len(labels))
    ax.bar(x, means, yerr=stds, capsize=3, color=[f"C{i}" for i in range(len(labels))])
    ax.set_xticks(x, labels, rotation=20, ha="right")
    if reference is not None:
        ax.axhline(reference, color="gray", ls="--", lw=1)
    ax.set_ylabel(ylabel)
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
            ax.set_yticks(range(m.shape[0]), [str(k + 1) for k in range(m.shape[0])], fontsize=6)
            ax.set_xticks([])
            if i == 0:
                ax.set_title(col_titles[j])
            if j == 0:
                ax.set_ylabel(f"{row_titles[i]}\n{ylabel}", fontsize=7)
            if i == len(rows) - 1:
                ax.set_xlabel(f"{xlabel} (0-{m.shape[1] - 1})")
    fig.tight_layout()
    return fig


def overlaid_histograms(groups: Mapping[str, Sequence[float]], xlabel: str, bins: int = 50, ax=None,
                        vline: float | None = None):
    """Overlaid step histograms of several samples (e.g. importance scores with and without L1)."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(TEXT_WIDTH_IN / 2, 2.4))
    allv = np.concatenate([np.asarray(v, dtype=float) for v in groups.values()])
    edges = np.linspace(allv.min(), allv.max() + 1e-9, bins + 1)
    for name, v in groups.items():
        ax.hist(np.asarray(v, dtype=float), bins=edges, histtype="stepfilled", alpha=0.45, label=name)
    if vline is not None:
        ax.axvline(vline, color="gray", ls="--", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.legend()
    return fig or ax.figure


def grouped_bars(categories: Sequence[str], series: Mapping[str, Sequence[float]], ylabel: str = "", ax=None):
    """Bars for several series side by side over the same categories (e.g. per block: attention vs MLP)."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(TEXT_WIDTH_IN / 2, 2.4))
    width = 0.8 / len(series)
    x = np.arange(len(categories))
    for i, (name, vals) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, vals, width, label=name)
    ax.set_xticks(x, categories)
    ax.set_ylabel(ylabel)
    ax.legend()
    return fig or ax.figure


def lines_with_bands(x: Sequence[float], series: Mapping[str, tuple], xlabel: str, ylabel: str, ax=None,
                     logy: bool = False):
    """One line per series with a +-std band: series maps name -> (means, stds or None).

    Points get markers when there are few of them (a sweep), none when the line is dense (a schedule);
    the legend appears when there is more than one series.
    """
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(TEXT_WIDTH_IN / 2, 2.4))
    for name, (means, stds) in series.items():
        means = np.asarray(means, dtype=float)
        ax.plot(x, means, marker="o" if len(means) <= 30 else None, markersize=3, label=name)
        if stds is not None:
            stds = np.asarray(stds, dtype=float)
            ax.fill_between(x, means - stds, means + stds, alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if len(series) > 1:
        ax.legend()
    return fig or ax.figure


def attention_matrix(weights, row_labels: Sequence[str], col_labels: Sequence[str], ax=None,
                     title: str | None = None, cmap: str = "viridis"):
    """One attention matrix (queries down, keys across) with its tokens as tick labels.

    weights: (Nq, Nk); row_labels/col_labels: the query and key tokens. Draws on `ax` if given
    (returns the axis), else on a new figure (returns the figure).
    """
    w = torch.as_tensor(weights, dtype=torch.float32).cpu().numpy()
    if w.shape != (len(row_labels), len(col_labels)):
        from .errors import IngurError
        raise IngurError(f"weights are {w.shape} but there are {len(row_labels)} row and {len(col_labels)} "
                         "column labels: pass one label per query and per key.")
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.22 * len(col_labels) + 1.2, 0.16 * len(row_labels) + 0.8))
    ax.imshow(w, cmap=cmap, vmin=0, vmax=max(float(w.max()), 1e-8), aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(row_labels)), row_labels, fontsize=6)
    ax.tick_params(length=0)
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title, fontsize=7)
    return fig if fig is not None else ax


def attention_matrices(mats: Sequence, row_labels: Sequence, col_labels: Sequence, titles: Sequence[str],
                       ncols: int | None = None, height: float = 2.6):
    """Several `attention_matrix` panels side by side; labels may be one list for all or one per panel."""
    n = len(mats)
    ncols = ncols or n
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(TEXT_WIDTH_IN, height * nrows), squeeze=False)
    per = lambda labels, i: labels[i] if isinstance(labels[0], (list, tuple)) else labels  # noqa: E731
    for i, ax in enumerate(axes.flat):
        if i < n:
            attention_matrix(mats[i], per(row_labels, i), per(col_labels, i), ax=ax, title=titles[i])
        else:
            ax.axis("off")
    fig.tight_layout()
    return fig


def curves_with_errors(xs, series: Mapping[str, Sequence], xlabel: str = "", ylabel: str = "",
                       logx: bool = False, baseline: str | None = None):
    """Mean ± std lines: `series` maps a name to one list of values (e.g. seeds) per x, or None where not run.

    With `baseline`, a second panel shows each series minus the baseline, paired value by value (same seed).
    """
    panels = 2 if baseline else 1
    fig, axes = plt.subplots(1, panels, figsize=(TEXT_WIDTH_IN * (1 if baseline else 0.55), 2.5), squeeze=False)

    def draw(ax, name, pts, i):
        if pts:
            x, vals = zip(*pts)
            m = np.array([np.mean(v) for v in vals])
            s = np.array([np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in vals])
            ax.errorbar(x, m, yerr=s, marker="o", markersize=3, capsize=2, label=name, color=f"C{i}")

    for i, (name, vals) in enumerate(series.items()):
        draw(axes[0, 0], name, [(x, v) for x, v in zip(xs, vals) if v], i)
        if baseline and name != baseline:
            diff = [(x, [a - b for a, b in zip(v, base)]) for x, v, base in zip(xs, vals, series[baseline]) if v and base]
            draw(axes[0, 1], f"{name} − {baseline}", diff, i)
    for ax in axes[0]:
        ax.set_xlabel(xlabel)
        if logx:
            ax.set_xscale("log")
            ax.set_xticks(list(xs), [f"{x:,}" for x in xs])
            ax.minorticks_off()
        elif len(xs) <= 12:
            ax.set_xticks(list(xs))
        ax.legend()
    axes[0, 0].set_ylabel(ylabel)
    if baseline:
        axes[0, 1].axhline(0, color="gray", ls="--", lw=1)
        axes[0, 1].set_ylabel(f"gain over {baseline} (points)")
    fig.tight_layout()
    return fig


def value_heatmap(ax, values, xlabels: Sequence[str], ylabels: Sequence[str], fmt: str = "{:.2f}"):
    """A small matrix (rows x cols) as a colour map with each value written in its cell."""
    v = np.asarray(torch.as_tensor(values, dtype=torch.float32))
    im = ax.imshow(v, cmap="viridis", aspect="auto")
    for (i, j), val in np.ndenumerate(v):
        ax.text(j, i, fmt.format(val), ha="center", va="center", fontsize=7,
                color="white" if val < v.mean() else "black")
    ax.set_xticks(range(len(xlabels)), xlabels)
    ax.set_yticks(range(len(ylabels)), ylabels)
    return im


def image_row(images, titles: Sequence[str], size: float = 1.1):
    """Images side by side with a title each (e.g. the shifted views of one image)."""
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size + 0.3), squeeze=False)
    for ax, img, t in zip(axes[0], images, titles):
        ax.imshow(_as_image(img), cmap="gray")
        ax.set_title(t, fontsize=7)
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
        ax.set_title(title, fontsize=8)
    return im

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
