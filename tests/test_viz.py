"""Plots and widgets: every function returns a figure, saving is atomic, the explorer builds."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ingur_lib import viz  # noqa: E402
from ingur_lib.train import History  # noqa: E402


def test_figures_and_atomic_save(tmp_path):
    viz.thesis_style()
    imgs = torch.randint(0, 255, (8, 1, 28, 28), dtype=torch.uint8)
    labels = torch.arange(8)
    classes = [f"c{i}" for i in range(10)]
    figs = [viz.sample_grid(imgs, labels, classes, n=8),
            viz.class_balance({"train": labels, "test": labels}, classes),
            viz.learning_curves({"a": History([{"epoch": 1, "train_loss": 1.0, "test_acc": 0.5},
                                               {"epoch": 2, "train_loss": 0.5, "test_acc": 0.7}])}),
            viz.attention_grid(imgs[:3], torch.rand(2, 3, 4, 4), ["x", "y"], ["a", "b", "c"]),
            viz.attention_heads(imgs[0], torch.rand(4, 17, 17).softmax(-1), 4)]
    for i, fig in enumerate(figs):
        paths = viz.save_figure(fig, tmp_path, f"f{i}")
        assert all(p.stat().st_size > 1000 for p in paths)
        plt.close(fig)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".pdf"] * 5 + [".png"] * 5


def test_cls_attention_picks_the_class_row():
    maps = torch.zeros(2, 17, 17)
    maps[:, 0, 1:] = torch.arange(16.0)
    out = viz.cls_attention(maps, 4)
    assert out.shape == (2, 4, 4) and out[0, 3, 3] == 15 and out[0, 0, 1] == 1


def test_attention_explorer_builds():
    from ingur_lib.widgets import attention_explorer
    imgs = torch.randint(0, 255, (2, 1, 28, 28), dtype=torch.uint8)
    maps = [torch.rand(2, 4, 17, 17).softmax(-1) for _ in range(3)]
    w = attention_explorer(imgs, maps, 4, ["a", "b"])
    assert len(w.children) == 2
    w.children[0].children[1].value = 1          # move the layer slider: the callback redraws
    plt.close("all")


def test_effect_bars_share_one_colour_and_variant_bars_do_not():
    import matplotlib.pyplot as plt
    from ingur_lib import viz
    fig, ax = plt.subplots()
    viz.bar_with_errors(ax, ["soft - none", "hard - none"], [-0.9, 0.3], [0.7, 0.3], n=3, one_colour=True)
    assert len({tuple(p.get_facecolor()) for p in ax.patches}) == 1
    ax.clear()
    viz.bar_with_errors(ax, ["ViT", "SL-ViT"], [70.0, 71.0], [0.5, 0.5], n=3)
    assert len({tuple(p.get_facecolor()) for p in ax.patches}) == 2
    plt.close(fig)


def test_dodge_moves_series_apart_but_keeps_the_ticks_at_the_true_x():
    from ingur_lib import viz
    fig = viz.curves_with_errors([200, 2000], {"a": [[1.0, 2.0], [3.0, 4.0]], "b": [[1.5, 2.5], [3.5, 4.5]]},
                                 logx=True, dodge=0.06)
    ax = fig.axes[0]
    xs = [line.get_xdata()[-1] for line in ax.get_lines() if len(line.get_xdata()) == 2]
    assert len(set(xs)) == 2 and all(1900 < x < 2100 for x in xs)
    assert list(ax.get_xticks()) == [200, 2000]
