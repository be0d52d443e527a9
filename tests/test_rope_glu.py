"""nn/rope.py and nn/glu.py on their own: the equations their docstrings cite, against reference formulas."""
import math

import pytest
import torch
import torch.nn.functional as F

from ingur_lib.errors import IngurError
from ingur_lib.nn.glu import GLU, glu_hidden
from ingur_lib.nn.quant import BitLinear
from ingur_lib.nn.rope import Rotary, apply_rope, rope_angles


def _rotate_pairs(x, p, base=10000.0):
    """RoPE written pair by pair: features (i, i + d/2) rotated by p * base^(-2i/d) (Su et al., eq. 34)."""
    d = x.shape[-1]
    out = x.clone()
    for i in range(d // 2):
        a, b, t = x[..., i], x[..., i + d // 2], p * base ** (-2 * i / d)
        out[..., i], out[..., i + d // 2] = a * math.cos(t) - b * math.sin(t), a * math.sin(t) + b * math.cos(t)
    return out


def test_rope_rotates_each_feature_pair_by_its_angle():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8)
    cos, sin = rope_angles(5, 8)
    got = apply_rope(x, cos, sin)
    want = torch.stack([_rotate_pairs(x[:, p], p) for p in range(5)], 1)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.norm(dim=-1), x.norm(dim=-1))   # a rotation keeps lengths


def test_rope_scores_depend_on_the_relative_position_only():
    torch.manual_seed(0)
    q, k = torch.randn(8), torch.randn(8)
    rot = Rotary(8, max_len=32)
    qs, ks = rot(q.expand(32, 8)[None], k.expand(32, 8)[None])
    score = lambda m, n: float(qs[0, m] @ ks[0, n])  # noqa: E731
    assert score(5, 2) == pytest.approx(score(20, 17), abs=1e-4)       # same m - n, same score
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-3)


def test_rope_rejects_an_odd_head_and_too_long_a_sequence():
    with pytest.raises(IngurError, match="even head size"):
        rope_angles(4, 7)
    with pytest.raises(IngurError, match="raise max_len"):
        Rotary(8, max_len=4)(torch.randn(1, 5, 8), torch.randn(1, 5, 8))


def test_glu_is_down_of_silu_gate_times_up():
    torch.manual_seed(0)
    m, x = GLU(16, 32), torch.randn(3, 16)
    want = (F.silu(x @ m.gate.weight.T) * (x @ m.up.weight.T)) @ m.down.weight.T
    torch.testing.assert_close(m(x), want)
    assert all(lin.bias is None for lin in (m.gate, m.up, m.down))


def test_glu_width_matches_a_4x_mlp_and_takes_ternary_projections():
    assert glu_hidden(96) == 256 and glu_hidden(64) % 16 == 0
    # 3 * d * h with h = 8/3 d is the 2 * d * 4d of a plain MLP, before rounding up
    assert 3 * 96 * glu_hidden(96, multiple=1) == 2 * 96 * 4 * 96
    m = GLU(16, 32, linear=BitLinear)
    assert all(isinstance(p, BitLinear) for p in (m.gate, m.up, m.down))
    assert m(torch.randn(2, 16)).shape == (2, 16)
