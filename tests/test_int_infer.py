"""Integer inference (nn.int_infer): int8 codes exactly ternary / binary, bit-for-bit equal to the additions-only
and XNOR paths, equal to the fake-quantised float path within float32 rounding, whole models converted."""
import pytest
import torch

from ingur_lib.errors import IngurError
from ingur_lib.models.binaryvit import BinaryViT, BinaryViTConfig
from ingur_lib.models.lm import LMConfig, build
from ingur_lib.nn.binary import BinaryLinear, binary_weight
from ingur_lib.nn.int_infer import IntBinaryLinear, IntBitLinear, int8_matmul, to_int
from ingur_lib.nn.quant import BitLinear, activation_quant, weight_quant


def _rounding_bound(x_q: torch.Tensor, w_q: torch.Tensor) -> torch.Tensor:
    """How far float32 summation of K products may stray from the exact sum: K * eps * sum |x_i w_i|."""
    return w_q.shape[1] * torch.finfo(torch.float32).eps * (x_q.abs() @ w_q.abs().t())


@pytest.mark.parametrize("shape", [(1, 48), (2, 17, 48), (64, 48)])
def test_int8_matmul_is_the_exact_integer_product(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-128, 128, shape, generator=g, dtype=torch.int8)
    w = torch.randint(-1, 2, (40, 48), generator=g, dtype=torch.int8)
    y = int8_matmul(x, w)
    assert y.dtype == torch.int32 and y.shape == (*shape[:-1], 40)
    assert torch.equal(y, (x.long() @ w.long().t()).int())


def test_int_bitlinear_holds_ternary_int8_and_equals_both_float_paths():
    torch.manual_seed(0)
    layer = BitLinear(48, 40, bias=True)
    fast = IntBitLinear(layer)
    assert fast.codes.dtype == torch.int8 and set(fast.codes.unique().tolist()) <= {-1, 0, 1}
    assert torch.equal(fast.codes, layer.ternary()[0])
    x = torch.randn(2, 17, 48)
    with torch.no_grad():
        assert torch.equal(fast(x), layer.forward_additions(x))  # same integers, same rescale
        x_q, w_q = activation_quant(layer.norm(x)), weight_quant(layer.weight)
        gap = (fast(x) - layer(x)).abs()
        assert (gap <= _rounding_bound(x_q, w_q)).all()  # the fake-quantised F.linear, up to float rounding


def test_int_binary_linear_holds_plus_minus_one_and_equals_both_float_paths():
    torch.manual_seed(0)
    layer = BinaryLinear(48, 40)
    with torch.no_grad():
        layer.shift.bias.normal_()
    fast = IntBinaryLinear(layer)
    assert fast.codes.dtype == torch.int8 and set(fast.codes.unique().tolist()) == {-1, 1}
    x = torch.randn(3, 17, 48)
    with torch.no_grad():
        assert torch.equal(fast(x), layer.forward_xnor(x))
        gap = (fast(x) - layer(x)).abs()
        bound = _rounding_bound(torch.sign(layer.shift(x)), binary_weight(layer.weight))
        assert (gap <= bound).all()


def test_to_int_converts_every_low_bit_layer_and_keeps_the_outputs():
    torch.manual_seed(0)
    lm = build(LMConfig(arch="matmulfree", vocab=23, dim=32, depth=2, heads=4, max_len=64)).eval()
    vit = BinaryViT(BinaryViTConfig(patch_size=7, dims=(32,), depths=(4,), heads=2)).eval()
    for model, x, low, fast in ((lm, torch.randint(0, 23, (3, 40)), BitLinear, IntBitLinear),
                                (vit, torch.randn(4, 1, 28, 28), BinaryLinear, IntBinaryLinear)):
        n = sum(isinstance(m, low) for m in model.modules())
        converted = to_int(model)
        assert n > 0 and sum(isinstance(m, fast) for m in converted.modules()) == n
        assert not any(isinstance(m, low) for m in converted.modules())
        assert sum(isinstance(m, low) for m in model.modules()) == n  # the original is untouched
        with torch.no_grad():
            want, got = model(x), converted(x)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * float(want.abs().max()))


def test_to_int_refuses_a_model_without_low_bit_layers():
    with pytest.raises(IngurError, match="no BitLinear"):
        to_int(torch.nn.Sequential(torch.nn.Linear(4, 4)))
