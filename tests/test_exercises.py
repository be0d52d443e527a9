"""The exercise checks: the notebooks' own solutions pass, the library's function handed in is rejected
(also wrapped), and the obvious wrong answers are rejected; the teacher's version keeps the answers."""
import json

import pytest
import torch
import torch.nn.functional as F

from ingur_lib.book import register_all
from ingur_lib.exercises import CHECKS, check, student_notebook
from ingur_lib.paths import repo_root

register_all()
NOTEBOOKS = sorted((repo_root() / "notebooks").glob("*.ipynb"))


def solutions():
    """(exercise name, the notebook's solution function) for every check cell of every notebook."""
    out = []
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for i, c in enumerate(cells):
            if "solution" in c.get("metadata", {}).get("tags", []):
                ns = {"torch": torch, "F": F}
                exec("".join(c["source"]), ns)
                call = "".join(cells[i + 1]["source"]).split("check(")[1]
                name, fn_name = (s.strip(' "\n)') for s in call.split(","))
                out.append((name, ns[fn_name]))
    return out


SOLUTIONS = solutions()
LIBRARY = {
    "getting_started.rollout": "ingur_lib.nn.attention:attention_rollout",
    "transformer.causal_mask": "ingur_lib.nn.transformer:causal_mask",
    "transformer.sinusoidal_positions": "ingur_lib.nn.transformer:sinusoidal_positions",
    "transformer.masked_attention": "torch.nn.functional:scaled_dot_product_attention",
    "deit.hard_distillation": "ingur_lib.nn.distill:hard_distillation",
    "spt_lsa.diagonal_mask": "ingur_lib.nn.lsa:diagonal_mask",
    "spt_lsa.shift_views": "ingur_lib.nn.spt:shift_views",
    "vtp.threshold": "ingur_lib.nn.prune:global_masks",
    "vtp.prune_mlp": "ingur_lib.nn.prune:slim_linear",
    "augreg.translate_x": "ingur_lib.data.randaugment:apply_op",
    "binaryvit.ste_sign": "ingur_lib.nn.binary:bireal_sign",
    "matmul_free.weight_quant": "ingur_lib.nn.quant:weight_quant",
    "matmul_free.ternary_matmul": "ingur_lib.nn.quant:ternary_matmul",
    "matmul_free.mlgru_scan": "ingur_lib.models.mlgru:mlgru_scan",
}


def lib(spec):
    import importlib
    mod, name = spec.split(":")
    return getattr(importlib.import_module(mod), name)


def test_every_exercise_has_a_notebook_solution():
    assert len(SOLUTIONS) >= 14 and {n for n, _ in SOLUTIONS} == set(CHECKS)


@pytest.mark.parametrize("name,fn", SOLUTIONS, ids=[n for n, _ in SOLUTIONS])
def test_the_notebook_solution_passes(name, fn):
    check(name, fn)


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_the_library_function_is_rejected(name):
    f = lib(LIBRARY[name])
    with pytest.raises(AssertionError, match="library"):
        check(name, f)
    with pytest.raises(AssertionError, match="library"):
        check(name, lambda *a: f(*a))  # a thin wrapper is the library function too


def test_library_method_is_rejected():
    from ingur_lib.exercises import reject_library
    from ingur_lib.models.deit import DistilledViT
    with pytest.raises(AssertionError, match="method"):
        reject_library(lambda model, x: model.tokens(x), DistilledViT.tokens)


def test_elementwise_product_is_not_a_multiplication_free_matmul():
    with pytest.raises(AssertionError, match="elementwise"):
        check("matmul_free.ternary_matmul", lambda x, w: (x.long()[:, None, :] * w.long()).sum(-1))


WRONG = {
    "getting_started.rollout": lambda maps, a: _plain_rollout(maps),
    "transformer.causal_mask": lambda n, w: torch.ones(n, n).tril().bool(),
    "transformer.masked_attention": lambda q, k, v, m: (
        (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).masked_fill(~m, float("-inf")).softmax(-1) @ v),
    "transformer.sinusoidal_positions": lambda k, d: torch.eye(d),
    "deit.hard_distillation": lambda s, t, eps: F.cross_entropy(s, t.argmax(-1), label_smoothing=eps),
    "spt_lsa.diagonal_mask": lambda g, r: ~torch.eye(g * g, dtype=torch.bool),
    "vtp.threshold": lambda scores, r: _global(scores, r),
    "matmul_free.weight_quant": lambda w: _per_matrix(w),
    "matmul_free.mlgru_scan": lambda f, c: _loop_scan(f, c),
}


def _plain_rollout(maps):
    result = None
    for w in maps:  # Abnar & Zuidema's fixed alpha = 0.5, whatever alpha is asked
        a = w.mean(1) + torch.eye(w.shape[-1])
        a = a / a.sum(-1, keepdim=True)
        result = a if result is None else a @ result
    return result


def _global(scores, ratio):
    allv = torch.cat([s.abs() for s in scores.values()])
    keep = allv.numel() - round(ratio * allv.numel())
    t = allv.sort(descending=True).values[keep - 1]
    return {k: s.abs() >= t for k, s in scores.items()}


def _per_matrix(w):
    g = w.abs().mean().clamp(min=1e-5)
    return (w / g).round().clamp(-1, 1) * g


def _loop_scan(f, c):
    h, out = torch.zeros_like(c[:, 0]), []
    for t in range(c.shape[1]):
        h = f[:, t] * h + c[:, t]
        out.append(h)
    return torch.stack(out, 1)


@pytest.mark.parametrize("name", sorted(WRONG))
def test_obvious_wrong_answers_are_rejected(name):
    with pytest.raises(AssertionError):
        check(name, WRONG[name])


def _shift(x, m, sign, wrap):
    """translate_x done two wrong ways: wrapping around (roll) or, with sign flipped, the other way."""
    k = round(m / 10 * 100 / 224 * x.shape[-1])
    if wrap:
        return torch.stack([xi.roll(-int(si) * k, -1) for xi, si in zip(x, sign)])
    from ingur_lib.chapters.augreg import translate_pixels
    return translate_pixels(x, m, -sign)


def _prune_mlp(fc1, fc2, score, ratio, fold=True, largest=True):
    """prune_mlp without folding the kept scores into fc2, or keeping the smallest |score|."""
    keep = score.abs().argsort(descending=largest)[:score.numel() - round(ratio * score.numel())]
    new1, new2 = torch.nn.Linear(fc1.in_features, len(keep)), torch.nn.Linear(len(keep), fc2.out_features)
    with torch.no_grad():
        new1.weight.copy_(fc1.weight[keep]), new1.bias.copy_(fc1.bias[keep])
        new2.weight.copy_(fc2.weight[:, keep] * (score[keep] if fold else 1)), new2.bias.copy_(fc2.bias)
    return new1, new2


# The replaced exercises (issue 33): each wrong answer a student could plausibly write, and the hint it gets.
PLAUSIBLY_WRONG = [
    ("cait.attention_macs", lambda n, d, s, c: 2 * (s + c) * (n + 1) ** 2 * d, "ViT of the same depth"),
    ("cait.attention_macs", lambda n, d, s, c: 2 * s * (n + 1) ** 2 * d + 2 * c * (n + 1) * d, "not there yet"),
    ("cait.attention_macs", lambda n, d, s, c: 2 * s * n * n * d + 2 * c * (n + 1) ** 2 * d, "only the class"),
    ("cait.mixed_row_sums", lambda w, b, n: torch.ones(w.shape[0]), "row sums"),
    ("cait.mixed_row_sums", lambda w, b, n: w.sum(1) + b, "each of the n"),
    ("cait.mixed_row_sums", lambda w, b, n: w.sum(0) + n * b, "second axis"),
    ("augreg.translate_x", lambda x, m, s: _shift(x, m, s, wrap=True), "wrap around"),
    ("augreg.translate_x", lambda x, m, s: _shift(x, m, s, wrap=False), "flip the direction"),
    ("augreg.translate_x", lambda x, m, s: x, "unchanged"),
    ("cvit.xray_from_blend", lambda t, s, f: 4 * f * (1 - f), "recover the mask"),
    ("cvit.xray_from_blend", lambda t, s, f: (lambda m: 4 * m * (1 - m))((f - t) / (s - t)), "NaN"),
    ("vtp.prune_mlp", lambda a, b, s, r: _prune_mlp(a, b, s, r, fold=False), "fold each kept"),
    ("vtp.prune_mlp", lambda a, b, s, r: _prune_mlp(a, b, s, r, largest=False), "gated MLP"),
    ("vtp.prune_mlp", lambda a, b, s, r: _prune_mlp(a, b, s, 0.0), "hidden width"),
    ("binaryvit.ste_sign", lambda x: torch.sign(x), "no gradient"),
    ("binaryvit.ste_sign", lambda x: torch.sign(x).detach() - x.clamp(-1, 1).detach() + x.clamp(-1, 1),
     "plain straight-through"),
    ("binaryvit.ste_sign", lambda x: x.clamp(-1, 1), "forward value"),
]


@pytest.mark.parametrize("name,fn,hint", PLAUSIBLY_WRONG, ids=[f"{n}-{i}" for i, (n, _, _) in
                                                               enumerate(PLAUSIBLY_WRONG)])
def test_plausible_wrong_answers_get_their_hint(name, fn, hint):
    with pytest.raises(AssertionError, match=hint):
        check(name, fn)


def test_cardinal_views_reject_the_diagonal_shifts_written_by_hand():
    def diagonal(x, s):
        h, w = x.shape[-2:]
        pad = F.pad(x, (s, s, s, s))
        crops = [pad[..., i:i + h, j:j + w] for i, j in ((0, 0), (0, 2 * s), (2 * s, 0), (2 * s, 2 * s))]
        return torch.cat([x] + crops, dim=1)
    with pytest.raises(AssertionError, match="diagonal"):
        check("spt_lsa.shift_views", diagonal)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_teacher_keeps_answers_and_solutions_student_drops_them(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    answers = [c for c in nb["cells"] if "answer" in c.get("metadata", {}).get("tags", [])]
    assert answers, f"{path.name}: the Think question needs a worked answer (a cell tagged 'answer')"
    assert all("remove-cell" in c["metadata"]["tags"] for c in answers), "answers are hidden in the book"
    sols = [c for c in nb["cells"] if "solution" in c.get("metadata", {}).get("tags", [])]
    assert all("remove-input" in c["metadata"]["tags"] for c in sols), "solutions are not one click away"
    teacher, student = student_notebook(nb, teacher=True), student_notebook(nb)
    text = lambda n: "".join("".join(c["source"]) for c in n["cells"])  # noqa: E731
    assert "Answer (teacher" in text(teacher) and "Answer (teacher" not in text(student)
    assert "BEGIN SOLUTION" in text(teacher) and "BEGIN SOLUTION" not in text(student)
