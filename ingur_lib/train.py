"""The book's one training loop.

`fit(model, train, test, cfg)` trains on in-memory tensors with AdamW, linear warmup then cosine decay,
label smoothing, gradient clipping, optional batched augmentation, a pluggable loss (chapters plug in
distillation or sparsity terms), `tqdm.auto` progress bars, a per-epoch history, atomic checkpoints
with resume, seeding, and autocast on a GPU (bf16 where the card runs it natively: `distributed.precision`).

Determinism: every epoch draws its shuffling and augmentation from a generator seeded by
(seed, epoch), and reseeds torch's global RNG the same way (for dropout). So a run resumed from
the checkpoint after epoch k computes exactly what the uninterrupted run computes.
"""
from __future__ import annotations

import math
import os
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import dryrun
from .atomic import atomic_path
from .distributed import Engine, autocast, engine, grad_scaler


@dataclass
class TrainConfig:
    epochs: float = 10                # fractional epochs are allowed (smoke runs)
    batch_size: int = 128
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    grad_clip: float | None = 1.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    seed: int = 0
    eval_batch_size: int = 512
    eval_every: int = 1               # epochs between test-set evaluations
    schedule: str = "cosine"          # "cosine" (warmup, cosine decay) or "noam" (warmup, then 1/sqrt(step))
    grad_accum: int = 1               # micro-batches per step: the same step on less memory
    # AdamW's fused kernel and a foreach gradient clip: the same update in fewer kernel launches (a tiny binary
    # ViT's step 44 -> 42 ms on one CPU thread; lost in the noise of a whole 08 plan). Off by default, so the
    # recorded runs keep their exact numbers.
    fused: bool = False
    # torch.compile the forward and backward of full training batches (the odd last batch and evaluation stay
    # eager, so one graph per model): a tiny binary ViT's step 21 -> 13 ms on one CPU thread, for ~20-40 s of
    # compiling per architecture per process (seconds once inductor's disk cache holds it). For long runs only.
    compile: bool = False

    def __post_init__(self):
        from .errors import IngurError
        from .runtime import check_seed
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, (int, float)) or not 0 < self.epochs < math.inf:
            raise IngurError(f"epochs={self.epochs!r} is no length of training: use a finite number > 0 "
                             "(fractions allowed).")
        for name in ("batch_size", "eval_batch_size", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise IngurError(f"{name}={value!r} must be a whole number >= 1.")
        if not self.lr > 0 or self.min_lr < 0 or self.warmup_epochs < 0:
            raise IngurError(f"lr={self.lr}, min_lr={self.min_lr}, warmup_epochs={self.warmup_epochs}: "
                             "use lr > 0, min_lr >= 0 and warmup_epochs >= 0.")
        if self.schedule not in SCHEDULES:
            raise IngurError(f"Unknown schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}.")
        check_seed(self.seed)

    def to_dict(self):
        return asdict(self)


@dataclass
class History:
    """Per-epoch records (train/test loss and accuracy, lr, seconds) and per-step losses."""
    epochs: list[dict] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)

    def last(self, key: str):
        vals = [e[key] for e in self.epochs if e.get(key) is not None]
        return vals[-1] if vals else None

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "steps": self.steps}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(list(d.get("epochs", [])), list(d.get("steps", [])))


def no_decay_names(model: nn.Module) -> set[str]:
    """Parameters AdamW leaves undecayed: biases and norm gains (ndim < 2) and those the model names in its
    `no_weight_decay()` (as timm's models do: class and position tokens, embeddings)."""
    named = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    return {n for n, p in model.named_parameters() if p.ndim < 2 or n in named}


@dataclass
class Trained:
    """What one trained model leaves behind for a chapter: its name, the model, its history, the wall time,
    its parameter count and the chapter's metrics of it."""
    name: str
    model: nn.Module
    history: History
    seconds: float
    params: int
    metrics: dict = field(default_factory=dict)


# A batch is a tuple of tensors: (inputs, targets, ...). prepare(batch, train, generator) -> batch
# turns stored tensors into model inputs (uint8 -> normalized float, augmentation when training).
Prepare = Callable[[tuple, bool, torch.Generator], tuple]
# loss_fn(model, batch) -> (loss, logits); logits feed the accuracy.
LossFn = Callable[[nn.Module, tuple], tuple[torch.Tensor, torch.Tensor]]


def classification_loss(label_smoothing: float = 0.0) -> LossFn:
    """Cross-entropy on model(x); targets may be class indices or soft (mixup) distributions."""
    def loss_fn(model, batch):
        x, y = batch[0], batch[1]
        logits = model(x)
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing), logits
    return loss_fn


def warmup_cosine(step: int, total: int, warmup: int, lr: float, min_lr: float) -> float:
    """Linear warmup to `lr` over `warmup` steps, then cosine decay to `min_lr` at `total`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * t))


def warmup_rsqrt(step: int, warmup: int, lr: float) -> float:
    """Vaswani et al. (2017) Eq. 3, peaking at `lr` when step + 1 = warmup: lr * min(s / w, sqrt(w / s)).

    With lr = d_model^-0.5 * warmup^-0.5 this is the paper's d_model^-0.5 * min(s^-0.5, s * w^-1.5).
    """
    s, w = step + 1, max(1, warmup)
    return lr * min(s / w, math.sqrt(w / s))


SCHEDULES = ("cosine", "noam")


def _lr_at(cfg: "TrainConfig", step: int, total: int, warmup: int) -> float:
    if cfg.schedule == "noam":
        return warmup_rsqrt(step, warmup, cfg.lr)
    return warmup_cosine(step, total, warmup, cfg.lr, cfg.min_lr)


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Number of correct samples in the batch (summed, so the loop can average over the epoch).

    Class targets: argmax match (soft/mixup targets compare with their argmax). Sequence targets
    (B, T) with logits (B, T, V): each sample counts its token accuracy, ignoring padding id 0.
    """
    if y.ndim == 2 and logits.ndim == 3:
        keep = y != 0
        hit = (logits.argmax(-1) == y) & keep
        return (hit.sum(1) / keep.sum(1).clamp(min=1)).sum().item()
    target = y.argmax(-1) if y.ndim == logits.ndim else y
    return (logits.argmax(-1) == target).float().sum().item()


def _batches(n: int, batch_size: int, generator: torch.Generator | None):
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for i in range(0, n, batch_size):
        yield order[i: i + batch_size]


def _bars_off() -> bool:
    """Builds and CI set TQDM_DISABLE=1: an explicit `disable=` would override tqdm's own env default."""
    return os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")


def _autocast(device: torch.device):
    return autocast(device)


@torch.no_grad()
def evaluate(model: nn.Module, data: Sequence[torch.Tensor], prepare: Prepare | None = None,
             loss_fn: LossFn | None = None, batch_size: int = 512, device=None, engine: Engine | None = None) -> dict:
    """Mean loss and accuracy of `model` on `data` (a tuple of tensors), in eval mode (with an `engine` of
    several processes, each scores its slice and the sums are gathered)."""
    device = device or next(model.parameters()).device
    loss_fn = loss_fn or classification_loss(0.0)
    was_training = model.training
    model.eval()
    total_loss, correct, n = 0.0, 0.0, len(data[0])
    if engine is not None and engine.world > 1:
        data = tuple(t[engine.shard(torch.arange(n))] for t in data)
    for idx in _batches(len(data[0]), batch_size, None):
        batch = tuple(t[idx].to(device) for t in data)
        batch = prepare(batch, False, None) if prepare else batch
        with _autocast(device):
            loss, logits = loss_fn(model, batch)
        total_loss += loss.float().item() * len(idx)
        correct += _accuracy(logits.float(), batch[1])
    model.train(was_training)
    if engine is not None:
        total_loss, correct = engine.sum(total_loss, correct)
    return {"loss": total_loss / n, "acc": correct / n}


def predict(model: nn.Module, x: torch.Tensor, prepare: Prepare | None = None, batch_size: int = 512) -> torch.Tensor:
    """Logits for every row of `x` (eval mode, no gradients)."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    with torch.no_grad():
        for idx in _batches(len(x), batch_size, None):
            xb = x[idx].to(device)
            xb = prepare((xb, None), False, None)[0] if prepare else xb
            with _autocast(device):
                out.append(model(xb).float().cpu())
    return torch.cat(out)


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path, fingerprint: str) -> dict | None:
    """A checkpoint of this same run, or None (missing, unreadable, or from another config, data or code)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        import warnings
        warnings.warn(f"Checkpoint {path} is unreadable; starting from scratch (it will be overwritten).")
        return None
    return state if state.get("fingerprint") == fingerprint else None


def _checkpoint_for(checkpoint, model, train, test, cfg, **parts) -> tuple[Path | None, str | None]:
    """The checkpoint file of this training (the given one, else one in the `resumable` folder) and its
    fingerprint; (None, None) when the run is not checkpointed (notebooks: nothing to hash)."""
    from . import resume
    folder = resume.active()
    if not checkpoint and folder is None:
        return None, None
    fp = resume.fingerprint(model, train, test, cfg, **parts)
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", str(parts.get("desc", "fit")))[:40]
    return (Path(checkpoint) if checkpoint else folder / f"{name}-{fp[:20]}.pt"), fp


class _Compiled:
    """`torch.compile(net)` (static shapes); if compiling fails at the first call (no C++ compiler, an
    unsupported platform), it says so once and runs `net` eagerly: the same model, slower."""

    def __init__(self, net: nn.Module, desc: str):
        self.net, self.desc, self.fast, self.tried = net, desc, torch.compile(net, dynamic=False), False

    def __call__(self, *args, **kwargs):
        if self.fast is None:
            return self.net(*args, **kwargs)
        try:
            out = self.fast(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - any compiler failure: fall back, once, and say why
            if self.tried:
                raise
            print(f"{self.desc}: torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                  "training eagerly instead (same model, slower steps).")
            self.fast = None
            return self.net(*args, **kwargs)
        self.tried = True
        return out


def _micro_batches(mine: torch.Tensor, accum: int) -> list:
    """This process's micro-batches of a step, or [None] when its slice is empty (a last global batch shorter
    than the number of processes): that process must still join DDP's gradient all-reduce."""
    return [m for m in mine.tensor_split(accum) if len(m)] or [None]


def _mean_loss(losses: list[tuple[torch.Tensor, int]]) -> tuple[float, int]:
    """The step's mean loss over this process's samples, and their number (0.0, 0 for an empty slice)."""
    n = sum(k for _, k in losses)
    if n == 0:
        return 0.0, 0
    step_loss = losses[0][0] if len(losses) == 1 else sum(x * k for x, k in losses) / n
    return step_loss.item(), n


def fit(model: nn.Module, train: Sequence[torch.Tensor], test: Sequence[torch.Tensor] | None, cfg: TrainConfig,
        prepare: Prepare | None = None, loss_fn: LossFn | None = None, extra_loss: Callable | None = None,
        checkpoint: str | Path | None = None, device=None, progress: bool = True,
        desc: str = "train", stop_after_epoch: int | None = None, eval_loss_fn: LossFn | None = None) -> History:
    """Train `model` on `train` (tuple of tensors: inputs, targets, ...) and evaluate on `test`.

    prepare: batch transform (normalize; augment when training), see `Prepare`.
    loss_fn: (model, batch) -> (loss, logits); default cross-entropy with cfg.label_smoothing.
    extra_loss: model -> scalar added to the loss (e.g. an L1 sparsity term on pruning scores).
    checkpoint: a file; written atomically after every epoch (by the main process), and resumed from if it
        matches this run (same config, model, data, functions and code: `resume.fingerprint`). Inside
        `resume.resumable(...)` a checkpoint file is chosen for every call.
    stop_after_epoch: end early after that many epochs (used to test resume).
    eval_loss_fn: how `test` is scored, default cross-entropy on model(x) (seq2seq passes its teacher-forcing loss).

    Under `accelerate launch` (several processes) the same loop runs data-parallel: see `ingur_lib.distributed`.
    """
    from tqdm.auto import tqdm

    if cfg.schedule not in SCHEDULES:
        from .errors import IngurError
        raise IngurError(f"Unknown schedule {cfg.schedule!r}: use one of {', '.join(SCHEDULES)}.")
    if cfg.grad_accum < 1:
        from .errors import IngurError
        raise IngurError(f"grad_accum must be >= 1, got {cfg.grad_accum}: it is the number of micro-batches per step.")
    if dryrun.active():  # a few samples per step: the same loop, cheap with a full-size model
        cfg = replace(cfg, batch_size=dryrun.batch(cfg.batch_size), eval_batch_size=dryrun.batch(cfg.eval_batch_size))
    eng = engine(device)
    device = eng.device
    model.to(device).train()
    loss_fn = loss_fn or classification_loss(cfg.label_smoothing)
    n = len(train[0])
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total_steps = dryrun.steps(max(1, int(cfg.epochs * steps_per_epoch)))
    n_epochs = math.ceil(total_steps / steps_per_epoch)
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    skip = no_decay_names(model)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if name in skip else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                            **({"fused": True} if cfg.fused else {}))
    history, start_epoch, step = History(), 0, 0
    checkpoint, fingerprint = _checkpoint_for(checkpoint, model, train, test, cfg, desc=desc, prepare=prepare,
                                              loss_fn=loss_fn, extra_loss=extra_loss, eval_loss_fn=eval_loss_fn,
                                              **({"dry_run": dryrun.STEPS} if dryrun.active() else {}))
    if checkpoint:
        state = _load_checkpoint(checkpoint, fingerprint)
        if state:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            history = History.from_dict(state["history"])
            start_epoch, step = state["epoch"], state["step"]
            if "rng" in state:
                torch.set_rng_state(state["rng"])  # as the uninterrupted run left it after that epoch
            print(f"{desc}: resumed after epoch {start_epoch}/{n_epochs} from {checkpoint}")
        eng.agree(start_epoch, f"the epoch {desc} resumes after")  # each process reads the file it can see
    scaler = grad_scaler(device)  # fp16 autocast only; otherwise it passes the loss and the step through
    net, opt = eng.prepare(model, opt)  # DDP-wrapped when launched; the same module otherwise
    fast = _Compiled(net, desc) if cfg.compile else None
    full = None  # the first micro-batch's size (a full one, per process): the one shape `fast` is compiled for
    for epoch in range(start_epoch, n_epochs):
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)  # the same order in every process
        aug = gen if eng.world == 1 else torch.Generator().manual_seed(eng.seed(cfg.seed * 100_003 + epoch))
        torch.manual_seed(eng.seed(cfg.seed * 100_003 + epoch))  # dropout / drop-path draws
        t0, seen, run_loss, run_correct = time.perf_counter(), 0, 0.0, 0.0
        bar = tqdm(_batches(n, cfg.batch_size, gen), total=steps_per_epoch, disable=not progress or _bars_off(),
                   desc=f"{desc} {epoch + 1}/{n_epochs}", leave=False, mininterval=1.0)
        for idx in bar:
            if step >= total_steps:
                break
            for g in opt.param_groups:
                g["lr"] = _lr_at(cfg, step, total_steps, warmup)
            opt.zero_grad(set_to_none=True)
            micro, losses = _micro_batches(eng.shard(idx), cfg.grad_accum), []
            for i, part in enumerate(micro):
                n_part = 0 if part is None else len(part)  # None: an empty slice, run on one sample at weight 0
                part = idx[:1] if part is None else part
                full = full or len(part)
                batch = tuple(t[part].to(device, non_blocking=True) for t in train)
                batch = prepare(batch, True, aug) if prepare else batch
                with eng.no_sync(net, i == len(micro) - 1):
                    with _autocast(device):
                        loss, logits = loss_fn(fast if fast and len(part) == full else net, batch)
                        if extra_loss is not None:
                            loss = loss + extra_loss(model)
                    # weight each micro-batch by its share of the global batch (x world: DDP averages)
                    w = n_part * eng.world / len(idx)
                    scaler.scale(loss * w if w != 1 else loss).backward()
                losses.append((loss.detach(), n_part))
                run_correct += _accuracy(logits.detach().float(), batch[1]) if n_part else 0.0
            if cfg.grad_clip:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip, foreach=cfg.fused or None)
            scaler.step(opt)
            scaler.update()
            step += 1
            loss_value, n_local = _mean_loss(losses)  # one device sync per step
            history.steps.append(eng.mean(loss_value, n_local))  # the whole global batch's loss
            seen += n_local
            run_loss += loss_value * n_local
            bar.set_postfix(loss=f"{run_loss / seen:.3f}", acc=f"{run_correct / seen:.3f}", refresh=False)
        seen, run_loss, run_correct = eng.sum(seen, run_loss, run_correct)
        record = {"epoch": epoch + 1, "step": step, "lr": opt.param_groups[0]["lr"],
                  "train_loss": run_loss / max(seen, 1), "train_acc": run_correct / max(seen, 1),
                  "seconds": time.perf_counter() - t0, "images_per_s": seen / (time.perf_counter() - t0)}
        if test is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == n_epochs):
            ev = evaluate(net, test, prepare, eval_loss_fn, cfg.eval_batch_size, device, eng)
            record.update(test_loss=ev["loss"], test_acc=ev["acc"])
        history.epochs.append(record)
        # one line per run, at its end: the bar shows the epochs; a page or a CI log would otherwise carry
        # a line per epoch of every model (02's page printed 36)
        if progress and epoch + 1 == n_epochs:
            test_txt = f", test acc {record['test_acc']:.3f}" if "test_acc" in record else ""
            print(f"{desc} epoch {epoch + 1}/{n_epochs}: loss {record['train_loss']:.3f}, "
                  f"train acc {record['train_acc']:.3f}{test_txt} ({record['seconds']:.0f}s)")
        if checkpoint and eng.is_main:
            _save_checkpoint(checkpoint, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                          "history": history.to_dict(), "epoch": epoch + 1, "step": step,
                                          "fingerprint": fingerprint, "rng": torch.get_rng_state()})
        eng.wait()
    model.eval()
    return history
