"""ipywidgets explorers. Each has a static twin figure, since the rendered book cannot run callbacks."""
from __future__ import annotations

from typing import Sequence

import torch


def attention_explorer(images: torch.Tensor, maps: list[torch.Tensor], grid: int, titles: Sequence[str],
                       num_prefix: int = 1):
    """Pick an image, a layer and a head (or the head mean / rollout); see the class token's attention.

    images: (B, C, H, W); maps: per layer (B, H, N, N), e.g. from `capture_attention`.
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from .nn.attention import attention_rollout
    from .viz import cls_attention, overlay

    rollout = cls_attention(attention_rollout(maps), grid, num_prefix)
    heads = maps[0].shape[1]
    img = W.Dropdown(options=[(t, i) for i, t in enumerate(titles)], description="image")
    layer = W.IntSlider(min=1, max=len(maps), value=len(maps), description="layer")
    head = W.Dropdown(options=[("mean of heads", -1)] + [(f"head {h}", h) for h in range(heads)] + [("rollout", -2)],
                      description="head")
    out = W.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 2, figsize=(4.5, 2.3))
            b, m = img.value, maps[layer.value - 1][img.value]
            heat = rollout[b] if head.value == -2 else cls_attention(m.mean(0) if head.value == -1 else m[head.value],
                                                                     grid, num_prefix)
            axes[0].imshow(images[b, 0] if images.shape[1] == 1 else images[b].permute(1, 2, 0), cmap="gray")
            axes[0].axis("off")
            overlay(axes[1], images[b], heat, title=f"layer {layer.value}, {head.label}")
            plt.show()

    for w in (img, layer, head):
        w.observe(draw, names="value")
    draw()
    return W.VBox([W.HBox([img, layer, head]), out])


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
