"""The figure style, checked on every registered figure drawn from the recorded results: legends
never cover data, bar charts start at zero, error bars only over >= 2 seeds, PDFs rebuild byte-identical."""
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from ingur_lib import viz  # noqa: E402
from ingur_lib.book import register_all  # noqa: E402
from ingur_lib.figures import FIGURES  # noqa: E402
from ingur_lib.ledger import load_results  # noqa: E402

register_all()
DRAWABLE = sorted(n for n, (ch, prof, _) in FIGURES.items() if load_results(ch, prof) is not None)


def draw(name):
    chapter, profile, fn = FIGURES[name]
    viz.thesis_style()
    viz.colour_scope(chapter)
    return fn(load_results(chapter, profile))


def data_points(fig):
    """Display coordinates of every plotted data point (line vertices, scatter points, bar tops)."""
    pts = []
    for ax in fig.axes:
        for line in ax.get_lines():
            xy = line.get_xydata()
            if len(xy) > 1 and not (np.ptp(xy[:, 1]) == 0 or np.ptp(xy[:, 0]) == 0):  # not a reference line
                pts.append(ax.transData.transform(xy))
        for coll in ax.collections:
            if isinstance(coll, PathCollection) and len(coll.get_offsets()):
                pts.append(ax.transData.transform(coll.get_offsets()))
        for p in ax.patches:
            if isinstance(p, Rectangle) and p.get_width() > 0 and p.get_height() != 0:
                x, y = p.get_x() + p.get_width() / 2, p.get_y() + p.get_height()
                pts.append(ax.transData.transform([[x, y]]))
    return np.concatenate(pts) if pts else np.zeros((0, 2))


def legends(fig):
    return [leg for leg in fig.legends] + [ax.get_legend() for ax in fig.axes if ax.get_legend()]


@pytest.fixture(scope="module", params=DRAWABLE)
def drawn(request):
    fig = draw(request.param)
    fig.canvas.draw()
    yield request.param, fig
    plt.close(fig)


def test_there_are_figures_to_check():
    assert len(DRAWABLE) >= 20


def test_no_legend_covers_data(drawn):
    name, fig = drawn
    pts = data_points(fig)
    for leg in legends(fig):
        box = leg.get_window_extent()
        inside = [(x, y) for x, y in pts if box.x0 < x < box.x1 and box.y0 < y < box.y1]
        assert not inside, f"{name}: the legend covers {len(inside)} data points"


def test_bar_axes_include_zero(drawn):
    name, fig = drawn
    for ax in fig.axes:
        if any(isinstance(p, Rectangle) and p.get_width() > 0 for p in ax.patches) and not ax.images:
            lo, hi = ax.get_ylim()
            if ax.get_yscale() == "linear" and all(p.get_y() == 0 for p in ax.patches if isinstance(p, Rectangle)):
                assert lo <= 0 <= hi, f"{name}: a bar chart's value axis runs {lo:.3g}..{hi:.3g}, not from zero"


def test_pdf_is_byte_stable():
    """No creation date in the PDF: drawing the same results twice gives the same bytes."""
    outs = []
    for _ in range(2):
        fig = draw("spt_lsa_ablation")
        buf = io.BytesIO()
        fig.savefig(buf, format="pdf", metadata=viz._METADATA["pdf"])
        outs.append(buf.getvalue())
        plt.close(fig)
    assert b"CreationDate" not in outs[0] and outs[0] == outs[1]


def test_save_figure_pdf_stable(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    a = viz.save_figure(fig, tmp_path / "a", "f")[0].read_bytes()
    b = viz.save_figure(fig, tmp_path / "b", "f")[0].read_bytes()
    plt.close(fig)
    assert a == b


def test_error_bars_only_with_two_seeds():
    fig, ax = plt.subplots()
    viz.bar_with_errors(ax, ["a", "b"], [50.0, 60.0], [0.0, 0.0], n=1)
    assert not ax.containers[0].errorbar, "a single seed has no error bar"
    viz.bar_with_errors(ax, ["a", "b"], [50.0, 60.0], [1.0, 2.0], n=3, err="s.e.")
    assert "s.e., n = 3" in ax.get_ylabel(), "error bars say what they are"
    assert viz.spread([1.0]) is None and viz.spread([1.0, 3.0], "s.e.") == pytest.approx(1.0)
    plt.close(fig)


def test_bars_start_at_zero_even_for_close_values():
    fig, ax = plt.subplots()
    viz.bar_with_errors(ax, ["a", "b"], [94.4, 95.0])
    assert ax.get_ylim()[0] <= 0
    plt.close(fig)


def test_palette_first_eight_colours_are_far_apart():
    """The review's two near-identical oranges (+SPT, SL-ViT) cannot recur among a chapter's first 8 names."""
    rgb = [np.array(matplotlib.colors.to_rgb(c)) * 255 for c in viz.PALETTE[:8]]
    closest = min(np.linalg.norm(a - b) for i, a in enumerate(rgb) for b in rgb[i + 1:])
    orange, vermillion = (np.array(matplotlib.colors.to_rgb(c)) * 255 for c in ("#E69F00", "#D55E00"))
    assert closest > np.linalg.norm(orange - vermillion)


def test_palette_distinct_and_consistent_per_name():
    viz.colour_scope()
    viz.name_colors(["ViT", "+SPT", "+LSA", "SL-ViT"], chapter="x")
    first = {n: viz.colour_of(n) for n in ("ViT", "+SPT", "+LSA", "SL-ViT")}
    assert len(set(first.values())) == 4
    viz.colour_scope("x")
    viz.colour_of("something else")
    assert {n: viz.colour_of(n) for n in first} == first


def test_side_by_side_heatmaps_share_one_scale_and_a_colour_bar():
    fig = viz.heatmap_row({"a": [[0.0, 1.0]], "b": [[2.0, 3.0]]}, ["x", "y"], ["r"], label="t")
    ims = [ax.images[0] for ax in fig.axes if ax.images]
    assert len({im.get_clim() for im in ims}) == 1 and ims[0].get_clim() == (0.0, 3.0)
    assert len(fig.axes) == 3  # two panels and one colour bar
    plt.close(fig)


def test_long_token_axes_are_thinned():
    labels = [f"t{i}" for i in range(120)]
    fig = viz.attention_matrix(np.random.rand(3, 120), ["a", "b", "c"], labels, figsize=(6.3, 1.5))
    shown = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert 10 < len(shown) < 120
    plt.close(fig)


# ---------------------------------------------------------------- what the screenshots showed (issue 18)

def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_one_legend_per_set_of_names(drawn):
    """03's branch norms and 07's score histograms drew the same legend twice (one per panel)."""
    name, fig = drawn
    sets = [frozenset(t.get_text() for t in leg.get_texts()) for leg in legends(fig)]
    for i, a in enumerate(sets):
        for b in sets[i + 1:]:
            assert not (a <= b or b <= a), f"{name}: two legends list the same names {sorted(a | b)}"


def test_no_legend_sits_on_a_title_or_another_panel(drawn):
    """03's branch-norm legend, placed above its panel, was drawn over the panel's title."""
    name, fig = drawn
    for leg in legends(fig):
        box = leg.get_window_extent()
        for ax in fig.axes:
            if ax.get_title():
                assert not _overlap(box, ax.title.get_window_extent()), f"{name}: a legend covers a title"
            if ax.get_legend() is not leg and ax.has_data():  # another panel than the legend's own
                assert not _overlap(box, ax.get_window_extent()), f"{name}: a legend lies on a panel"


def test_axis_labels_stay_off_other_panels(drawn):
    """03's depth figure: the gain panel's y label ran across the neighbouring panel."""
    name, fig = drawn
    panels = [ax for ax in fig.axes if ax.has_data()]
    for ax in panels:
        label = ax.yaxis.label
        if not label.get_text():
            continue
        box = label.get_window_extent()
        for other in panels:
            if other is not ax:
                assert not _overlap(box, other.get_window_extent()), \
                    f"{name}: the y label {label.get_text()!r} runs onto another panel"


def test_epoch_axes_have_whole_epochs(drawn):
    """Learning curves of 3 epochs were labelled 1.0, 1.5, 2.0, 2.5, 3.0 (01, 07, 08)."""
    name, fig = drawn
    for ax in fig.axes:
        if ax.get_xlabel() == "epoch":
            lo, hi = ax.get_xlim()
            ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
            assert all(float(t).is_integer() for t in ticks), f"{name}: epoch ticks {ticks}"


def test_learning_curves_tick_whole_epochs():
    h = {"epochs": [{"epoch": e, "train_loss": 1.0 / e, "test_acc": 0.5 + 0.1 * e} for e in (1, 2, 3)]}
    fig = viz.learning_curves({"a": h, "b": h})
    for ax in fig.axes:
        assert all(float(t).is_integer() for t in ax.get_xticks())
    plt.close(fig)


def test_panel_legends_merge_and_keep_titles():
    fig, axes = plt.subplots(1, 2)
    for ax, title in zip(axes, ("left", "right")):
        ax.plot([0, 1], [0, 1], label="a")
        ax.plot([0, 1], [1, 0], label="b")
        ax.set_title(title)
        viz.legend_outside(ax)
    assert [ax.get_title() for ax in axes] == ["left", "right"]
    assert axes[0].get_legend() is None and axes[1].get_legend() is not None
    plt.close(fig)


def test_numbered_bars_are_one_series():
    """08's per-block bars were coloured per block number, with '1 2 3 4' tilted."""
    fig, ax = plt.subplots()
    viz.bar_with_errors(ax, [1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0])
    assert len({tuple(p.get_facecolor()) for p in ax.patches}) == 1
    assert all(t.get_rotation() == 0 for t in ax.get_xticklabels())
    viz.bar_with_errors(ax, ["ViT", "SL-ViT"], [1.0, 2.0])
    assert len({tuple(p.get_facecolor()) for p in ax.patches[4:]}) == 2
    plt.close(fig)


def test_dense_heatmaps_side_by_side_share_a_scale():
    """03's LayerScale heatmaps had one colour scale per panel (0.05-0.20 beside 0.025-0.175)."""
    fig = viz.matrix_heatmaps({"a": np.zeros((2, 3)), "b": np.ones((2, 3))}, "channel", "block", "|λ|")
    ims = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(ims) == 2 and {im.get_clim() for im in ims} == {(0.0, 1.0)}
    assert len(fig.axes) == 3
    plt.close(fig)


def test_heatmap_blocks_count_from_one_like_the_other_block_axes():
    """03's LayerScale heatmap numbered blocks 0-7 beside a branch-norm figure numbering them 1-8."""
    fig = viz.matrix_heatmaps({"a": np.zeros((8, 3)), "b": np.ones((8, 3))}, "channel", "block", "|λ|",
                              first_row=1)
    fig.canvas.draw()
    ax = fig.axes[0]
    lo, hi = sorted(ax.get_ylim())
    ticks = [t for t in ax.get_yticks() if lo <= t <= hi]
    assert (lo, hi) == (0.5, 8.5) and min(ticks) >= 1 and all(float(t).is_integer() for t in ticks)
    plt.close(fig)


def test_seeds_of_a_variant_share_its_colour():
    """02's thesis curves named runs 'none (seed 0)': a new name, so the chapter's colours were lost
    (the undistilled student came out yellow, the last colour, instead of its blue in the ablation)."""
    viz.colour_scope()
    viz.name_colors(["none", "soft"], chapter="y")
    viz.colour_scope("y")
    assert viz.colour_of("none (seed 0)") == viz.colour_of("none") == viz.colour_of("none (seed 2)")
    assert viz.seed_style("none (seed 0)") != viz.seed_style("none (seed 1)") and viz.seed_style("x") == "-"


def test_whole_ticks_take_round_steps():
    """07's pruning ratios 0..60 were ticked 0, 8, 16, 24..."""
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 10, 20, 30, 40, 50, 60], [1, 2, 3, 4, 5, 6, 7])
    viz.whole_ticks(ax)
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert all(t % 10 == 0 for t in ticks) and len(ticks) >= 3
    plt.close(fig)


def test_character_rows_are_all_labelled():
    """01's cross-attention thinned its German characters to every other one ('detuedehh...')."""
    word = list("dreitausendsechshunderteinunddreissig") + ["<eos>"]
    mats = [np.random.rand(len(word), 9) for _ in range(4)]
    fig = viz.attention_matrices(mats, word, [f"w{i}" for i in range(9)], list("abcd"), ncols=2, height=2.0)
    for ax in fig.axes:
        if ax.images and ax.get_yticklabels():
            assert [t.get_text() for t in ax.get_yticklabels()] == word
    plt.close(fig)


def test_a_registered_figure_starts_from_its_chapters_colours():
    """A notebook drawing a registered figure from its live run coloured names in the order the page
    happened to plot them (09: Transformer++ blue in the thesis, orange on the page)."""
    from ingur_lib.figures import figure
    viz.colour_scope()
    viz.name_colors(["a", "b"], chapter="toy_chapter")
    viz.colour_of("something plotted earlier on the page")

    @figure("toy_colours_figure", "toy_chapter")
    def draw_toy(_):
        return viz.colour_of("b")
    try:
        assert draw_toy(None) == viz.PALETTE[1]
    finally:
        FIGURES.pop("toy_colours_figure")


# ---------------------------------------------------------------- the chapter pass (issue 18, look 6)

def test_an_axis_label_says_what_the_error_bars_are_once(drawn):
    """06's bars were labelled 'test AUC, mean ± std' and then '(error bars: ± std)' under it."""
    name, fig = drawn
    for ax in fig.axes:
        label = ax.get_ylabel()
        assert label.count("±") <= 1, f"{name}: {label!r} says what the error bars are twice"


def test_masks_carry_a_key():
    """07's masks were black and white with no word on which is kept."""
    fig = viz.mask_panels([[np.eye(3), np.ones((3, 5))]], ["20%"], ["attention", "MLP"])
    assert {t.get_text() for leg in legends(fig) for t in leg.get_texts()} == {"kept", "pruned"}
    plt.close(fig)


def test_different_losses_get_their_own_panels():
    """08 drew the teacher's cross-entropy and the students' KL on one 'train loss' axis."""
    h = lambda a: {"epochs": [{"epoch": e, "train_loss": a / e, "train_acc": 0.1 * e} for e in (1, 2, 3)]}
    hist = {"teacher": h(2.0), "s1": h(0.5), "s2": h(0.3)}
    fig = viz.learning_curves(hist, metrics=(("train_loss", "cross-entropy", ["teacher"]),
                                             ("train_loss", "KL to teacher", ["s1", "s2"]), "train_acc"))
    lines = [[line.get_label() for line in ax.get_lines()] for ax in fig.axes]
    assert lines == [["teacher"], ["s1", "s2"], ["teacher", "s1", "s2"]]
    assert [ax.get_ylabel() for ax in fig.axes] == ["cross-entropy", "KL to teacher", "training accuracy"]
    plt.close(fig)


def test_a_thinned_character_axis_numbers_positions_and_spells_the_word():
    """01's causal attention thinned its German characters to '<bos> e a e s h u u e e u d d i g'."""
    word = ["<bos>"] + list("dreitausendsechshunderteinunddreissig")
    fig = viz.attention_matrix(np.random.rand(5, len(word)), list("abcde"), word, figsize=(2.0, 1.5))
    ax = fig.axes[0]
    shown = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert shown and all(t.isdigit() for t in shown) and ax.get_xlabel() == "".join(word)
    plt.close(fig)


def _pdf_width_pt(path) -> float:
    import re
    box = re.search(rb"/MediaBox\s*\[\s*([\d.]+)\s+[\d.]+\s+([\d.]+)", path.read_bytes())
    return float(box.group(2)) - float(box.group(1))


@pytest.mark.parametrize("name", DRAWABLE[::8] + ["vtp_accuracy_vs_ratio", "binaryvit_ladder"])
def test_a_thesis_figure_is_one_of_two_widths(name, tmp_path):
    """Printed at its own size, one font size holds across the thesis: each PDF is the text width or a column."""
    fig = draw(name)
    pdf = viz.save_figure(fig, tmp_path, name, formats=("pdf",))[0]
    plt.close(fig)
    assert min(abs(_pdf_width_pt(pdf) - 72 * w) for w in viz.THESIS_WIDTHS_IN) < 0.5, \
        f"{name}: {_pdf_width_pt(pdf):.1f} pt wide, not one of {[72 * w for w in viz.THESIS_WIDTHS_IN]}"


def test_a_small_figure_gets_the_column_and_a_wide_one_the_text_width(tmp_path):
    small, ax = plt.subplots(figsize=(2.5, 2))
    ax.plot([0, 1], [1, 0])
    wide, ax = plt.subplots(figsize=(9, 2))   # wider than the text block: shrunk to it, not cropped
    ax.plot([0, 1], [1, 0])
    widths = [_pdf_width_pt(viz.save_figure(f, tmp_path, n, formats=("pdf",))[0])
              for f, n in ((small, "s"), (wide, "w"))]
    assert widths == pytest.approx([72 * viz.COLUMN_WIDTH_IN, 72 * viz.TEXT_WIDTH_IN], abs=0.5)


def test_the_ladder_and_the_pruning_drops_are_difference_plots():
    """A point or two is the finding: the axis shows the paired difference around zero, with intervals."""
    for name in ("binaryvit_ladder", "vtp_accuracy_vs_ratio"):
        fig = draw(name)
        ax = fig.axes[0]
        lo, hi = ax.get_ylim()
        assert lo < 0 < hi and hi - lo < 20, f"{name}: the difference axis spans {lo:.1f}..{hi:.1f} points"
        assert not [p for p in ax.patches if isinstance(p, Rectangle) and p.get_height() > 20], "no bars of totals"
        assert any(c.__class__.__name__ == "LineCollection" for c in ax.collections), "interval bars"
        plt.close(fig)


def test_one_font_size_in_the_figures_text(drawn):
    """Titles, y labels and legends at FONT_PT; only dense token axes (a word spelled along an axis, tick
    characters) and the values written in heatmap cells go smaller."""
    name, fig = drawn
    texts = [t for ax in fig.axes for t in (ax.title, ax.yaxis.label)] + [t for leg in legends(fig) for t in leg.texts]
    sizes = {round(t.get_fontsize()) for t in texts if t.get_text()}
    assert sizes <= {viz.FONT_PT}, f"{name}: titles, y labels and legends at {sorted(sizes)} pt"
