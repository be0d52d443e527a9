"""ipywidgets explorers. Each has a static twin figure, since the rendered book cannot run callbacks."""
from __future__ import annotations

from typing import Sequence

import torch


def attention_explorer(images: torch.Tensor, maps: list[torch.Tensor], grid: int, titles: Sequence[str],
                       num_prefix: int = 1, tokens: Sequence[str] | None = None):
    """Pick an image, a layer and a head (or the head mean / rollout); see the class token's attention.

    images: (B, C, H, W); maps: per layer (B, H, N, N), e.g. from `capture_attention`.
    tokens: names of the first tokens to choose the query from (e.g. DeiT's class and distillation
    tokens); default: the class token only.
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from .nn.attention import attention_rollout
    from .viz import cls_attention, overlay

    rolled = attention_rollout(maps)
    heads = maps[0].shape[1]
    img = W.Dropdown(options=[(t, i) for i, t in enumerate(titles)], description="image")
    layer = W.IntSlider(min=1, max=len(maps), value=len(maps), description="layer")
    head = W.Dropdown(options=[("mean of heads", -1)] + [(f"head {h}", h) for h in range(heads)] + [("rollout", -2)],
                      description="head")
    query = W.Dropdown(options=[(t, i) for i, t in enumerate(tokens or ["class token"])], description="token")
    out = W.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 2, figsize=(4.5, 2.3))
            b, m = img.value, maps[layer.value - 1][img.value]
            q = query.value
            heat = (cls_attention(rolled[b], grid, num_prefix, q) if head.value == -2 else
                    cls_attention(m.mean(0) if head.value == -1 else m[head.value], grid, num_prefix, q))
            axes[0].imshow(images[b, 0] if images.shape[1] == 1 else images[b].permute(1, 2, 0), cmap="gray")
            axes[0].axis("off")
            overlay(axes[1], images[b], heat, title=f"{query.label}, layer {layer.value}, {head.label}")
            plt.show()

    controls = (img, layer, head) + ((query,) if tokens else ())
    for w in controls:
        w.observe(draw, names="value")
    draw()
    return W.VBox([W.HBox(list(controls)), out])


def mask_explorer(sweep: dict, col_titles: Sequence[str]):
    """A slider over precomputed pruning ratios; shows that ratio's keep-masks and a line of text.

    sweep: {ratio: {"panels": [2-D arrays, one per column], "text": str}}, e.g. masks and accuracies
    computed once for every ratio (the slider only redraws, it never prunes or evaluates).
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from .viz import mask_panels

    ratios = sorted(sweep)
    slider = W.SelectionSlider(options=[(f"{r:.0%}", r) for r in ratios], value=ratios[len(ratios) // 2],
                               description="pruned")
    out = W.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            entry = sweep[slider.value]
            fig = mask_panels([entry["panels"]], [f"{slider.value:.0%}"], col_titles)
            fig.suptitle(entry["text"], y=1.02, fontsize=8)
            plt.show()

    slider.observe(draw, names="value")
    draw()
    return W.VBox([slider, out])


def sequence_attention_explorer(examples: Sequence[dict], labels=None):
    """Pick an example, an attention kind, a layer and a head; see the matrix with its tokens.

    examples: dicts with "maps" ({kind: [(H, Nq, Nk) per layer]}) and, per kind, the query/key tokens
    from `labels(example, kind) -> (row_tokens, col_tokens)`; `title` is shown in the menu if present.
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from .viz import attention_matrix

    kinds = list(examples[0]["maps"])
    ex = W.Dropdown(options=[(e.get("title", str(i)), i) for i, e in enumerate(examples)], description="example")
    kind = W.Dropdown(options=kinds, value=kinds[-1], description="attention")
    n_layers, n_heads = len(examples[0]["maps"][kinds[0]]), examples[0]["maps"][kinds[0]][0].shape[0]
    layer = W.IntSlider(min=1, max=n_layers, value=n_layers, description="layer")
    head = W.Dropdown(options=[("mean of heads", -1)] + [(f"head {h}", h) for h in range(n_heads)], description="head")
    out = W.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            e = examples[ex.value]
            m = e["maps"][kind.value][layer.value - 1]
            w = m.mean(0) if head.value == -1 else m[head.value]
            rows, cols = labels(e, kind.value)
            fig = attention_matrix(w, rows, cols, title=f"{kind.value}, layer {layer.value}, {head.label}")
            plt.show(fig)

    for w in (ex, kind, layer, head):
        w.observe(draw, names="value")
    draw()
    return W.VBox([W.HBox([ex, kind]), W.HBox([layer, head]), out])


def compare_attention_explorer(images: torch.Tensor, maps_by_model: dict, grid: int, titles: Sequence[str],
                               num_prefix: int = 1):
    """Two or more models side by side: pick an image, a layer and a head; see each model's class-token attention.

    maps_by_model: name -> per-layer list of (B, H, N, N) weights (same images, same depth and heads).
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from .viz import cls_attention, overlay

    first = next(iter(maps_by_model.values()))
    img = W.Dropdown(options=[(t, i) for i, t in enumerate(titles)], description="image")
    layer = W.IntSlider(min=1, max=len(first), value=len(first), description="layer")
    head = W.Dropdown(options=[("mean of heads", -1)] + [(f"head {h}", h) for h in range(first[0].shape[1])],
                      description="head")
    out = W.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, len(maps_by_model), figsize=(2.3 * len(maps_by_model), 2.3), squeeze=False)
            for ax, (name, maps) in zip(axes[0], maps_by_model.items()):
                m = maps[layer.value - 1][img.value]
                heat = cls_attention(m.mean(0) if head.value == -1 else m[head.value], grid, num_prefix)
                overlay(ax, images[img.value], heat, title=f"{name}, layer {layer.value}, {head.label}")
            plt.show()

    for w in (img, layer, head):
        w.observe(draw, names="value")
    draw()
    return W.VBox([W.HBox([img, layer, head]), out])


def sequence_values_explorer(tokens: Sequence[str], layers: Sequence[dict], ylabel: str = "value"):
    """Pick a layer and a channel (or the channel mean); see its value at every token of a sequence.

    layers: per layer {"mean": [T values], "channels": [[T values] per channel], "channel_ids": [ids]}, values in
    [0, 1] (the y axis is fixed to that range), e.g. the MLGRU forget gates of `chapters.matmul_free.forget_gates`
    (the figure of the mean is its static twin).
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt

    layer = W.IntSlider(min=1, max=len(layers), value=len(layers), description="layer")
    channel = W.Dropdown(description="channel")
    out = W.Output()

    def options(*_):
        ids = layers[layer.value - 1]["channel_ids"]
        channel.options = [("mean of channels", -1)] + [(f"channel {c}", i) for i, c in enumerate(ids)]

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            entry = layers[layer.value - 1]
            vals = entry["mean"] if channel.value in (-1, None) else entry["channels"][channel.value]
            fig, ax = plt.subplots(figsize=(6.3, 2.0))
            ax.plot(range(len(vals)), vals, marker="o", markersize=2)
            ax.set_xticks(range(len(tokens)), [t if t != " " else "␣" for t in tokens], fontsize=6)
            ax.set_ylim(0, 1.02)
            ax.set_ylabel(ylabel)
            ax.set_title(f"layer {layer.value}, {channel.label}", fontsize=8)
            plt.show()

    layer.observe(options, names="value")
    options()
    for w in (layer, channel):
        w.observe(draw, names="value")
    draw()
    return W.VBox([W.HBox([layer, channel]), out])


def randaugment_explorer(images: torch.Tensor, ops: Sequence[str]):
    """Pick an op (or "RandAugment": random ops per image), a magnitude and a number of layers; see
    the uint8 `images` (B, C, H, W) after it (a fresh draw each time the seed changes)."""
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from .data.randaugment import apply_op, rand_augment
    from .viz import image_row

    op = W.Dropdown(options=["RandAugment", *ops], value="RandAugment", description="op")
    mag = W.IntSlider(min=0, max=30, value=10, description="magnitude")
    layers = W.IntSlider(min=1, max=4, value=2, description="layers")
    seed = W.IntSlider(min=0, max=20, value=0, description="seed")
    out = W.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            x = images.float() / 255
            if op.value == "RandAugment":
                y = rand_augment(x, layers.value, mag.value, torch.Generator().manual_seed(seed.value))
            else:
                y = x
                for _ in range(layers.value):
                    y = apply_op(y, op.value, mag.value)
            image_row(list((y * 255).round().to(torch.uint8)), [f"{i}" for i in range(len(y))])
            plt.show()

    for w in (op, mag, layers, seed):
        w.observe(draw, names="value")
    draw()
    return W.VBox([W.HBox([op, mag]), W.HBox([layers, seed]), out])


def recipe_explorer(recipes: dict, draw, switches: dict):
    """Tick techniques and see where that model sits: `recipes` {name: {switch: value}} are the models that were
    trained, `draw(name or None)` draws the figure with that model marked, `switches` {switch: label} are the
    check boxes (a switch whose values are not True/False, e.g. the weights, gets a drop-down). A combination
    that was not trained says so, and the figure marks nothing."""
    import ipywidgets as W
    import matplotlib.pyplot as plt

    controls = {}
    for key, label in switches.items():
        values = sorted({r[key] for r in recipes.values()}, key=str)
        on_off = all(isinstance(v, (bool, int, float)) for v in values)  # e.g. a pruning ratio or 0
        controls[key] = (W.Checkbox(value=False, description=label, indent=False) if on_off
                         else W.Dropdown(options=values, value=values[0], description=label))
    out = W.Output()

    def chosen(r):
        return all((bool(r[k]) if isinstance(w, W.Checkbox) else r[k]) == w.value for k, w in controls.items())

    def redraw(*_):
        name = next((n for n, r in recipes.items() if chosen(r)), None)
        with out:
            out.clear_output(wait=True)
            print(f"marked: {name}" if name else "this combination was not trained: tick another")
            draw(name)
            plt.show()

    for w in controls.values():
        w.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox(list(controls.values())), out])
