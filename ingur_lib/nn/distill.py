"""Knowledge distillation losses of DeiT (Touvron et al. 2021, Sec. 4), as `fit` loss functions.

    soft:  L = (1 - a) CE(psi(Z_s), y) + a tau^2 KL(psi(Z_t / tau) || psi(Z_s / tau))
    hard:  L = (1 - a) CE(psi(Z_s), y) + a CE(psi(Z_s), argmax_c Z_t(c))           (paper: a = 1/2)

Z_s is the class head's logits for a plain ViT, and the distillation head's logits for a `DistilledViT`
(whose class head keeps the CE to the true label). Two details follow the official code
(facebookresearch/deit, losses.py):
* the soft KL is summed and divided by the number of *logits* (batch x classes), PyTorch's legacy
  "mean" behaviour, so it is C times smaller than the per-sample KL (`soft_distillation`);
* the teacher runs without gradients on the very batch the student sees, after augmentation (and
  mixup), so its label follows what is left in the crop.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import IngurError

KINDS = ("none", "soft", "hard")


def hard_distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the student to the teacher's hard decision argmax_c Z_t(c)."""
    return F.cross_entropy(student_logits, teacher_logits.argmax(dim=-1))


def soft_distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float = 3.0) -> torch.Tensor:
    """tau^2 KL(teacher || student) at temperature tau, summed and divided by B x C as the official code does."""
    kl = F.kl_div(F.log_softmax(student_logits / tau, dim=-1), F.log_softmax(teacher_logits / tau, dim=-1),
                  reduction="sum", log_target=True)
    return kl * tau * tau / student_logits.numel()


def split_outputs(outputs) -> tuple[torch.Tensor, torch.Tensor]:
    """(class logits, logits the distillation term trains): a pair from a DistilledViT, else the same tensor twice."""
    if isinstance(outputs, tuple):
        return outputs
    return outputs, outputs


def distillation_loss(teacher: nn.Module | None, kind: str = "hard", alpha: float = 0.5, tau: float = 3.0,
                      label_smoothing: float = 0.0, precomputed: bool = False):
    """A `fit` loss_fn: (1 - alpha) CE(class head, y) + alpha * distillation(teacher on the same batch).

    kind "none" trains the class head on the labels only (alpha ignored). The returned logits, which
    `fit` scores, are those the model predicts with: the mean of the two heads for a DistilledViT.
    precomputed=True: the batch carries the teacher's logits as its third tensor (no teacher needed); only
    right when the training images are not augmented, as the teacher must see the pixels the student sees.
    """
    if kind not in KINDS:
        raise IngurError(f"Unknown distillation {kind!r}: use one of {', '.join(KINDS)}.")
    if kind != "none" and teacher is None and not precomputed:
        raise IngurError(f"{kind!r} distillation needs a trained teacher: pass teacher=<model>.")
    if teacher is not None:
        teacher.eval().requires_grad_(False)

    def loss_fn(model, batch):
        x, y = batch[0], batch[1]
        cls_logits, kd_logits = split_outputs(model(x))
        base = F.cross_entropy(cls_logits, y, label_smoothing=label_smoothing)
        shown = (cls_logits + kd_logits) / 2
        if kind == "none":
            return base, shown
        if precomputed:
            t = batch[2]
        else:
            with torch.no_grad():
                t = teacher(x)
        kd = hard_distillation(kd_logits, t) if kind == "hard" else soft_distillation(kd_logits, t, tau)
        return (1 - alpha) * base + alpha * kd, shown
    return loss_fn
