"""A small face-forgery benchmark built offline: real faces, blended fakes, short "videos".

Real faces: the 100 face crops of scikit-image's bundled LFW subset (`skimage.data.lfw_subset()`,
25x25 grey, shipped inside the wheel: no network), resized to 24x24. Each crop is one *source*.

Fakes follow the blending synthesis of Face X-ray (Li et al., CVPR 2020, Eq. 1) and self-blended
images (SBI, Shiohara & Yamasaki, CVPR 2022):

    I_fake = M * I_source + (1 - M) * I_target

with a soft mask M over the inner face. SBI makes the source a transformed copy of the target itself;
Face X-ray takes another face. The variants differ in what betrays the blend:

| variant      | source                                  | artefact                        |
|--------------|-----------------------------------------|---------------------------------|
| `color`      | the target, contrast and brightness off | a colour mismatch (SBI)         |
| `resolution` | the target, down- and upsampled         | a resolution gap (SBI)          |
| `warp`       | the target, shifted and rescaled        | a misaligned second face (SBI)  |
| `swap`       | another source, colour-matched          | a foreign face (Face X-ray)     |

A "video" is T frames of one source: each frame moves the crop by up to a pixel and adds sensor noise;
a fake video forges every frame anew with the same variant (and donor), as a face swap does per frame.
Sources are split into train and test BEFORE any fake is made, and a swap's donor comes from the same
split, so no test face ever appears in training (tests/test_cvit.py checks it).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..atomic import atomic_path
from ..errors import DataUnavailableError, IngurError
from ..paths import cache_dir, shown

VARIANTS = ("color", "resolution", "warp", "swap")
SIZE = 24
VERSION = 2   # bump when the generator changes: the cache key includes it


def load_faces(size: int = SIZE) -> tuple[torch.Tensor, str]:
    """The 100 real faces of scikit-image's LFW subset as (100, 1, size, size) uint8, and the source."""
    try:
        from skimage.data import lfw_subset
    except ImportError as err:
        raise DataUnavailableError("scikit-image is not installed: `pip install scikit-image` "
                                   "(it ships the LFW face crops this chapter uses).") from err
    faces = torch.as_tensor(lfw_subset()[:100], dtype=torch.float32)[:, None]  # first 100 are faces
    faces = F.interpolate(faces, size=(size, size), mode="bilinear", align_corners=False)
    source = "scikit-image bundled LFW subset (skimage.data.lfw_subset, first 100 crops = faces)"
    return (faces.clamp(0, 1) * 255).round().to(torch.uint8), source


def split_sources(n: int, n_test: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """Disjoint train and test source ids: the split comes before any fake is made."""
    if not 0 < n_test < n:
        raise IngurError(f"n_test must be between 1 and {n - 1} sources, got {n_test}.")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(perm[n_test:]), sorted(perm[:n_test])


# ---------------------------------------------------------------- the blend

def blend(target: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Face X-ray Eq. 1: the source inside the mask, the target outside it (float images)."""
    return mask * source + (1 - mask) * target


def soft_mask(n: int, size: int, gen: torch.Generator, blur: float = 1.2) -> torch.Tensor:
    """n random ellipses over the inner face, edges softened by a Gaussian: (n, size, size) in [0, 1]."""
    r = torch.rand(5, n, 1, 1, generator=gen)
    cy, cx = size * (0.5 + 0.08 * (r[0] - 0.5)), size * (0.5 + 0.08 * (r[1] - 0.5))
    ry, rx = size * (0.28 + 0.1 * r[2]), size * (0.22 + 0.08 * r[3])
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    hard = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).float()
    return gaussian_blur(hard[:, None], blur * (0.7 + 0.6 * r[4, 0, 0, 0].item()))[:, 0]


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) with reflected borders."""
    k = int(2 * round(2 * sigma) + 1)
    t = torch.arange(k, dtype=x.dtype) - k // 2
    w = torch.exp(-t ** 2 / (2 * sigma ** 2))
    w = (w / w.sum()).to(x)
    c = x.shape[1]
    x = F.pad(x, (k // 2,) * 4, mode="reflect")
    x = F.conv2d(x, w.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, w.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def affine(x: torch.Tensor, shift, scale=1.0) -> torch.Tensor:
    """Shift (pixels; (y, x) or per image (B, 2)) and rescale (a factor or (B,)) each (B, C, H, W) image
    about its centre, borders replicated."""
    b, h = len(x), x.shape[-1]
    shift = torch.as_tensor(shift, dtype=x.dtype).expand(b, 2)
    inv = 1 / torch.as_tensor(scale, dtype=x.dtype).expand(b)
    theta = torch.zeros(b, 2, 3, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = inv, inv
    theta[:, 0, 2], theta[:, 1, 2] = -2 * shift[:, 1] / h, -2 * shift[:, 0] / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def match_stats(donor: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Colour correction: the donor's mean and std inside the mask set to the target's, per image."""
    w = mask[:, None]
    def stats(x):
        mu = (x * w).sum((-3, -2, -1), keepdim=True) / w.sum((-3, -2, -1), keepdim=True)
        var = ((x - mu) ** 2 * w).sum((-3, -2, -1), keepdim=True) / w.sum((-3, -2, -1), keepdim=True)
        return mu, var.sqrt()
    (mu_d, sd_d), (mu_t, sd_t) = stats(donor), stats(target)
    return (donor - mu_d) / (sd_d + 1e-6) * sd_t + mu_t


def make_source(target: torch.Tensor, variant: str, gen: torch.Generator,
                donor: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The faces pasted into the targets ((B, 1, H, W) floats in [0, 1]) for one variant."""
    b, h = len(target), target.shape[-1]
    r = torch.rand(3, b, generator=gen)
    sign = torch.where(r[2] < 0.5, 1.0, -1.0)
    v = lambda t: t.view(b, 1, 1, 1)
    if variant == "color":        # SBI colour transform: contrast and brightness off
        return 0.5 + (target - 0.5) * v(1 + sign * (0.15 + 0.15 * r[0])) + v(sign * (0.05 + 0.07 * r[1]))
    if variant == "resolution":   # SBI resolution gap: a lower-resolution copy, upsampled
        low = F.interpolate(target, scale_factor=0.5 - 0.15 * r[0, 0].item(), mode="area")
        return F.interpolate(low, size=(h, h), mode="bilinear", align_corners=False)
    if variant == "warp":         # SBI structure transform: a shifted, rescaled copy
        shift = torch.stack([sign * (0.8 + r[0]), 0.8 * (r[1] - 0.5)], 1)
        return affine(target, shift, 1 + 0.06 * sign)
    if variant == "swap":         # Face X-ray: another face, colour-matched inside the mask
        if donor is None:
            raise IngurError("The swap variant needs a donor face: pass donor=... (another source).")
        return match_stats(donor, target, mask if mask is not None else torch.ones_like(target[:, 0]))
    raise IngurError(f"Unknown forgery variant {variant!r}: use one of {', '.join(VARIANTS)}.")


def forge(target: torch.Tensor, variant: str, gen: torch.Generator,
          donor: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fakes from (B, 1, H, W) float faces: (fakes clamped to [0, 1], their blending masks (B, H, W))."""
    mask = soft_mask(len(target), target.shape[-1], gen)
    source = make_source(target, variant, gen, donor, mask)
    return blend(target, source, mask[:, None]).clamp(0, 1), mask


# ---------------------------------------------------------------- videos

def jitter(face: torch.Tensor, gen: torch.Generator, noise: float = 0.02) -> torch.Tensor:
    """Frames: each (B, 1, H, W) crop moved by up to a pixel, plus Gaussian sensor noise (in [0, 1])."""
    moved = affine(face, torch.rand(len(face), 2, generator=gen) * 2 - 1)
    return (moved + noise * torch.randn(moved.shape, generator=gen)).clamp(0, 1)


def video(face: torch.Tensor, frames: int, gen: torch.Generator, variant: str | None = None,
          donor: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`frames` frames of one uint8 (1, H, W) face, real (variant None) or forged frame by frame.
    Returns (frames, 1, H, W) uint8 and the masks (frames, H, W) float (zeros for a real video)."""
    f = jitter(face[None].float().div(255).expand(frames, -1, -1, -1), gen)
    mask = torch.zeros(frames, *f.shape[-2:])
    if variant is not None:
        d = jitter(donor[None].float().div(255).expand(frames, -1, -1, -1), gen, 0.0) if donor is not None else None
        f, mask = forge(f, variant, gen, d)
    return (f * 255).round().to(torch.uint8), mask


@dataclass
class ForgeryConfig:
    n_test_sources: int = 40
    frames: int = 8                     # frames per video
    train_videos: int = 4               # real and fake videos per training source
    train_variants: tuple[str, ...] = VARIANTS
    seed: int = 0                       # the source split and every random draw

    def __post_init__(self):
        bad = [v for v in self.train_variants if v not in VARIANTS]
        if bad or not self.train_variants:
            raise IngurError(f"Unknown or no train_variants {bad}: use a subset of {', '.join(VARIANTS)}.")
        if self.frames < 1 or self.train_videos < 1:
            raise IngurError("frames and train_videos must be at least 1.")


@dataclass
class Split:
    """Frames of one split: x (N, 1, H, W) uint8, y (N,) 1 = fake, and per frame its video id, source id,
    variant index (-1 = real) and blending mask (N, H, W) uint8."""
    x: torch.Tensor
    y: torch.Tensor
    video: torch.Tensor
    source: torch.Tensor
    variant: torch.Tensor
    mask: torch.Tensor

    def where(self, keep: torch.Tensor) -> "Split":
        return Split(*(t[keep] for t in (self.x, self.y, self.video, self.source, self.variant, self.mask)))


@dataclass
class ForgeryData:
    train: Split
    test: Split
    variants: tuple[str, ...]
    source: str
    config: dict

    def describe(self) -> str:
        n = lambda s: f"{len(s.y):,} frames / {len(s.video.unique())} videos / {len(s.source.unique())} sources"
        return f"train {n(self.train)}; test {n(self.test)}; source: {self.source}"


def _build_split(faces, ids, plans, cfg: ForgeryConfig, gen) -> Split:
    """`plans[j]`: the variants (None = real) of the videos made for source `ids[j]`."""
    cols = {k: [] for k in ("x", "y", "video", "source", "variant", "mask")}
    vid = 0
    for i, plan in zip(ids, plans):
        for variant in plan:
            donor = None
            if variant == "swap":  # a donor from the same split, never the face itself
                others = [j for j in ids if j != i]
                donor = faces[others[int(torch.randint(len(others), (1,), generator=gen))]]
            x, m = video(faces[i], cfg.frames, gen, variant, donor)
            t = cfg.frames
            cols["x"].append(x)
            cols["mask"].append((m * 255).round().to(torch.uint8))
            cols["y"].append(torch.full((t,), int(variant is not None)))
            cols["video"].append(torch.full((t,), vid))
            cols["source"].append(torch.full((t,), i))
            cols["variant"].append(torch.full((t,), VARIANTS.index(variant) if variant else -1))
            vid += 1
    return Split(*(torch.cat(cols[k]) for k in ("x", "y", "video", "source", "variant", "mask")))


def build(cfg: ForgeryConfig, faces: torch.Tensor | None = None, source: str = "given faces") -> ForgeryData:
    """Split the sources, then make the videos. Train: `train_videos` real and as many fake videos per
    source (variants cycling through `train_variants` across sources and videos). Test: one real video per source
    and one fake video per source of EVERY variant, held-out ones included."""
    if faces is None:
        faces, source = load_faces()
    train_ids, test_ids = split_sources(len(faces), cfg.n_test_sources, cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    k = len(cfg.train_variants)  # fake types cycle across sources, so each is made equally often
    plans = [[None] * cfg.train_videos + [cfg.train_variants[(j * cfg.train_videos + v) % k]
                                          for v in range(cfg.train_videos)] for j in range(len(train_ids))]
    train = _build_split(faces, train_ids, plans, cfg, gen)
    test = _build_split(faces, test_ids, [[None, *VARIANTS]] * len(test_ids), cfg, gen)
    return ForgeryData(train, test, VARIANTS, source, asdict(cfg))


def _to_tensors(d: ForgeryData) -> dict:
    """`d` as plain tensors, strings and dicts: what `torch.load(weights_only=True)` reads back."""
    return {"train": asdict(d.train), "test": asdict(d.test), "variants": list(d.variants),
            "source": d.source, "config": d.config}


def _from_tensors(saved: dict) -> ForgeryData:
    return ForgeryData(Split(**saved["train"]), Split(**saved["test"]), tuple(saved["variants"]),
                       saved["source"], saved["config"])


def load(cfg: ForgeryConfig) -> ForgeryData:
    """`build(cfg)` from the cache under data/cache/forgery/, or built now and cached atomically.

    The cache holds tensors and plain values only, read with `weights_only=True`: `INGUR_CACHE` may point
    at a shared folder, and a planted pickle must not run code here."""
    key = hashlib.sha256(json.dumps({**asdict(cfg), "size": SIZE, "version": VERSION}, sort_keys=True)
                         .encode()).hexdigest()[:12]
    path = cache_dir() / "forgery" / f"{key}.pt"
    if path.exists():
        try:
            d = _from_tensors(torch.load(path, weights_only=True))
            print(f"forgery data: read from cache {shown(path)}")
            return d
        except Exception:
            print(f"forgery data: cache {shown(path)} unreadable; rebuilding it")
    d = build(cfg)
    with atomic_path(path) as tmp:
        torch.save(_to_tensors(d), tmp)
    print(f"forgery data: built from {d.source} and cached in {shown(path)}")
    return d
