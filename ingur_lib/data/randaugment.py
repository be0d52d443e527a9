"""RandAugment (Cubuk et al. 2020) on whole batches, and AugReg's named augmentation settings.

RandAugment applies `num_layers` operations in a row to every image; each layer picks one op per image
uniformly from `OPS`, at one shared `magnitude` M on the 0-30 scale of the TF/big_vision code
(`_MAX_LEVEL = 10`: M = 10 is the "usual" strength, M = 20 twice that). Signed ops (rotate, shear,
translate, the enhance ops) flip the sign per image with probability 1/2.

Magnitude -> argument, as big_vision's `autoaugment.py` (the AugReg paper's code), relative to size:
    rotate    M/10 * 30 degrees            shear      M/10 * 0.3
    translate M/10 * 100/224 of the image  posterize  keep 8 - int(M/10 * 4) bits (>= 1)
    solarize  invert pixels >= 1 - M/10    contrast/brightness/sharpness  factor 1 +- M/10 * 0.9
The last three lines are the "increasing" forms (as timm's), so every op with a magnitude is the
identity at M = 0; auto-contrast and equalize have no magnitude, which is why AugReg's `light1`
(RandAugment(2, 0)) "is actually not nothing" (big_vision's own comment).

All randomness comes from `generator`. Images are float in [0, 1] (or uint8, returned as uint8),
shape (B, C, H, W); the geometric ops of a layer share one `affine_grid`/`grid_sample` call.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import IngurError

GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
PIXEL = ("identity", "auto_contrast", "equalize", "solarize", "posterize", "contrast", "brightness",
         "sharpness")
OPS = PIXEL + GEOMETRIC
MAX_LEVEL = 10.0
FILL = 0.0  # what enters at the borders: Fashion-MNIST's black background (big_vision fills with grey 128)


def _gray(x):
    return x.mean(1, keepdim=True) if x.shape[1] > 1 else x


def _blend(a, b, factor):
    """PIL's ImageEnhance: factor * a + (1 - factor) * b, clipped; factor (B,) per image (1: exactly a)."""
    f = factor.view(-1, 1, 1, 1)
    return (f * a + (1 - f) * b).clamp(0, 1)


def identity(x, m, sign):
    return x


def auto_contrast(x, m, sign):
    """Stretch each image and channel to the full [0, 1] range (flat channels stay as they are)."""
    lo = x.amin((2, 3), keepdim=True)
    hi = x.amax((2, 3), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (x - lo) / span.clamp_min(1e-8), x)


def equalize(x, m, sign):
    """Histogram equalization per image and channel, on 256 levels (PIL's ImageOps.equalize)."""
    b, c, h, w = x.shape
    q = (x * 255).round().long().view(b * c, h * w)
    hist = torch.zeros(b * c, 256, device=x.device).scatter_add_(1, q, torch.ones_like(q, dtype=torch.float))
    cdf = hist.cumsum(1)
    lo = cdf.gather(1, q.min(1, keepdim=True).values)   # cdf at the darkest pixel
    lut = ((cdf - lo) / (h * w - lo).clamp_min(1) * 255).round().clamp(0, 255)
    flat = (lo >= h * w).squeeze(1)                      # one-level images stay as they are
    out = lut.gather(1, q) / 255
    return torch.where(flat[:, None], x.view(b * c, -1), out).view(b, c, h, w)


def solarize(x, m, sign):
    """Invert pixels whose 8-bit level is at least 256 (1 - M/10) (M = 0: none; M >= 10: all)."""
    return torch.where(x * 255 >= 256 * (1 - m / MAX_LEVEL), 1 - x, x)


def posterize(x, m, sign):
    """Keep 8 - int(M/10 * 4) of the 8 bits of every pixel (at least 1)."""
    bits = max(1, 8 - int(m / MAX_LEVEL * 4))
    step = 2 ** (8 - bits)
    return torch.div((x * 255).round(), step, rounding_mode="floor") * step / 255


def _factor(m, sign):
    return (1 + sign * m / MAX_LEVEL * 0.9).clamp_min(0.0)


def contrast(x, m, sign):
    """Blend with the image's mean grey level (PIL's ImageEnhance.Contrast)."""
    return _blend(x, _gray(x).mean((1, 2, 3), keepdim=True).expand_as(x), _factor(m, sign))


def brightness(x, m, sign):
    """Blend with black (PIL's ImageEnhance.Brightness)."""
    return _blend(x, torch.zeros_like(x), _factor(m, sign))


def sharpness(x, m, sign):
    """Blend with PIL's SMOOTH-filtered image (3x3 kernel 1 1 1 / 1 5 1 / 1 1 1, /13); borders kept."""
    k = torch.ones(3, 3, device=x.device)
    k[1, 1] = 5
    k = (k / 13).expand(x.shape[1], 1, 3, 3)
    smooth = F.conv2d(x, k, padding=1, groups=x.shape[1])
    smooth[..., 0, :], smooth[..., -1, :] = x[..., 0, :], x[..., -1, :]
    smooth[..., :, 0], smooth[..., :, -1] = x[..., :, 0], x[..., :, -1]
    return _blend(x, smooth, _factor(m, sign))


PIXEL_FNS = {"identity": identity, "auto_contrast": auto_contrast, "equalize": equalize,
             "solarize": solarize, "posterize": posterize, "contrast": contrast,
             "brightness": brightness, "sharpness": sharpness}


def affine_matrix(op: str, m: float, sign: torch.Tensor) -> torch.Tensor:
    """(B, 2, 3) matrices in `affine_grid`'s normalized coordinates ([-1, 1] across the image) that map an
    output pixel to where it samples the input, as TF's/PIL's transforms take them: positive shear_x
    samples at x + s y (lower rows move left), positive translate moves the content left/up, positive
    rotate turns it counter-clockwise. Shears turn about the centre (TF: about the top-left corner)."""
    b = sign.shape[0]
    a = torch.eye(2, 3).repeat(b, 1, 1)
    s = sign * m / MAX_LEVEL
    if op == "rotate":
        t = s * math.radians(30)
        a[:, 0, 0], a[:, 0, 1], a[:, 1, 0], a[:, 1, 1] = t.cos(), -t.sin(), t.sin(), t.cos()
    elif op == "shear_x":
        a[:, 0, 1] = s * 0.3
    elif op == "shear_y":
        a[:, 1, 0] = s * 0.3
    elif op == "translate_x":
        a[:, 0, 2] = s * (100 / 224) * 2   # a fraction f of the width is 2f in normalized units
    elif op == "translate_y":
        a[:, 1, 2] = s * (100 / 224) * 2
    else:
        raise IngurError(f"Unknown geometric op {op!r}: use one of {', '.join(GEOMETRIC)}.")
    return a


def warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample every image through its (2, 3) matrix; nearest pixels as PIL's default; FILL outside."""
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    out = F.grid_sample(x - FILL, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out + FILL


def apply_op(x: torch.Tensor, op: str, magnitude: float, sign: torch.Tensor | None = None) -> torch.Tensor:
    """One op on a float batch in [0, 1] at `magnitude`; `sign` (B,) of +-1, default +1."""
    if op not in OPS:
        raise IngurError(f"Unknown RandAugment op {op!r}: use one of {', '.join(OPS)}.")
    sign = torch.ones(x.shape[0], device=x.device) if sign is None else sign.to(x.device, x.dtype)
    if op in GEOMETRIC:
        return warp(x, affine_matrix(op, magnitude, sign.cpu()))
    return PIXEL_FNS[op](x, magnitude, sign)


def check(num_layers, magnitude) -> None:
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
        raise IngurError(f"RandAugment num_layers={num_layers!r}: use a whole number >= 0 (the paper's N).")
    if not 0 <= magnitude <= 30:
        raise IngurError(f"RandAugment magnitude={magnitude!r}: use a number in [0, 30] (the paper's M; "
                         "10 is the usual strength).")


def _layer(x, magnitude, gen):
    """One RandAugment layer: an op per image, a sign per image; geometric ops in one warp."""
    b = x.shape[0]
    pick = torch.randint(0, len(OPS), (b,), generator=gen)
    sign = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.eye(2, 3).repeat(b, 1, 1)
    for k, op in enumerate(OPS):
        idx = (pick == k).nonzero().flatten()
        if len(idx) == 0 or op == "identity":
            continue
        if op in GEOMETRIC:
            theta[idx] = affine_matrix(op, magnitude, sign[idx])
        else:
            i = idx.to(x.device)
            x = x.index_copy(0, i, PIXEL_FNS[op](x[i], magnitude, sign[idx].to(x.device)))
    geo = torch.isin(pick, torch.tensor([OPS.index(g) for g in GEOMETRIC]))
    if geo.any():
        i = geo.nonzero().flatten()
        x = x.index_copy(0, i.to(x.device), warp(x[i.to(x.device)], theta[i]))
    return x


def rand_augment(x: torch.Tensor, num_layers: int, magnitude: float, generator: torch.Generator):
    """RandAugment(N=num_layers, M=magnitude) on a batch: float in [0, 1] or uint8 (returned as uint8)."""
    check(num_layers, magnitude)
    is_uint8 = x.dtype == torch.uint8
    x = x.float() / 255 if is_uint8 else x
    for _ in range(num_layers):
        x = _layer(x, magnitude, generator)
    return (x * 255).round().to(torch.uint8) if is_uint8 else x


# AugReg's named settings, from big_vision's configs/vit_i21k.py (RANDAUG_DEF and MIXUP_DEF):
# name -> (RandAugment layers, magnitude, mixup alpha). "none" applies no RandAugment and no mixup.
SETTINGS = {
    "none": (0, 0, 0.0),
    "light1": (2, 0, 0.0),
    "light2": (2, 10, 0.2),
    "medium1": (2, 15, 0.2),
    "medium2": (2, 15, 0.5),
    "strong1": (2, 20, 0.5),
    "strong2": (2, 20, 0.8),
}


def setting(name: str) -> tuple[int, int, float]:
    """(layers, magnitude, mixup alpha) of one of AugReg's named settings."""
    if name not in SETTINGS:
        raise IngurError(f"Unknown AugReg setting {name!r}: use one of {', '.join(SETTINGS)}.")
    return SETTINGS[name]

