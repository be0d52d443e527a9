"""The experiment base (`ingur_lib.experiment`): the one sweep and the one convergence record."""
import math

import pytest

from ingur_lib import ledger
from ingur_lib.experiment import best_of, longer_check, sweep_bracketed


@pytest.mark.parametrize("peak, higher, expect", [
    (8e-3, True, ["0.004", "0.008", "0.016"]),                     # inside: no extension
    (5e-2, True, ["0.004", "0.008", "0.016", "0.032", "0.064"]),   # top edge: up, twice at most
    (1e-3, False, ["0.001", "0.002", "0.004", "0.008", "0.016"]),  # a loss (lower is better), bottom edge
])
def test_the_sweep_extends_past_a_winning_edge_until_it_brackets(peak, higher, expect):
    calls = []

    def score(lr):
        calls.append(lr)
        far = abs(math.log(lr / peak))
        return -far if higher else far

    got = sweep_bracketed(score, (4e-3, 8e-3, 1.6e-2), higher_is_better=higher)
    assert list(got) == expect and len(calls) == len(expect)
    assert best_of(got, higher) == pytest.approx(min((float(k) for k in got), key=lambda r: abs(math.log(r / peak))))


def test_a_convergence_record_holds_numbers_paired_per_seed_and_no_verdict():
    rec = longer_check([80.0, 81.0, 82.0], [80.5, 81.5], seeds=[0, 1, 2], factor=1.5)
    assert rec["seeds"] == [0, 1] and rec["base"] == [80.0, 81.0] and rec["change"]["values"] == [0.5, 0.5]
    assert not {"converged", "verdict"} & set(rec)
    pct = longer_check([2.0, 4.0], [1.9, 4.2], seeds=[0, 1], factor=1.5, percent=True)
    assert pct["change"]["values"] == pytest.approx([-5.0, 5.0])
    assert ledger.convergence(pct["change"], {}, default=6.0)["converged"] is True


def _toy_train(variant, seed, factor):
    """A fake training: ViT+LS is 1.0 better (+-0.1 by seed), and the ViT still gains 2.0 when trained
    longer (not converged) while ViT+LS gains 0.05 (converged)."""
    base = 80.0 + 0.1 * seed + (1.0 + 0.05 * (seed % 2) if variant == "ViT+LS" else 0.0)
    return base + (factor > 1) * (2.0 if variant == "ViT" else 0.05)


def test_a_declared_two_variant_three_seed_experiment_runs_judges_and_records(tmp_results):
    from ingur_lib.experiment import Experiment
    exp = Experiment("10_demo", _toy_train, variants=("ViT", "ViT+LS"), seeds=(0, 1, 2),
                     effects={"LayerScale": ("ViT+LS", "ViT")}, checked=("ViT", "ViT+LS"))
    out = exp.run()
    assert out["metric"]["ViT"] == pytest.approx([80.0, 80.1, 80.2])
    assert out["effects"]["LayerScale"]["values"] == pytest.approx([1.0, 1.05, 1.0])
    judged = exp.judge(out)
    assert judged["ViT"]["converged"] is False and judged["ViT+LS"]["converged"] is True
    assert judged["ViT"]["smallest_name"] == "LayerScale"
    path = exp.record("standard", out, wall_time_s=1.0)
    stored = ledger.load_results("10_demo", "standard")
    assert path.exists() and stored["per_seed"] == out["metric"] and "converged" not in str(stored["convergence"])
    assert stored["metrics"]["LayerScale"]["mean"] == pytest.approx(1.0167, abs=1e-4)


def test_an_experiment_that_names_an_undeclared_variant_or_too_few_seeds_is_refused():
    from ingur_lib.errors import IngurError
    from ingur_lib.experiment import Experiment
    with pytest.raises(IngurError, match="declare them as variants"):
        Experiment("x", _toy_train, variants=("ViT",), seeds=(0, 1, 2), effects={"g": ("ViT+LS", "ViT")})
    with pytest.raises(IngurError, match="1 seed or more"):
        Experiment("x", _toy_train, variants=("ViT",), seeds=())
    with pytest.raises(IngurError, match="1 to 1 check seeds"):
        Experiment("x", _toy_train, variants=("ViT",), seeds=(0,), check_seeds=2)


def test_one_seed_runs_but_resolves_nothing():
    from ingur_lib.experiment import Experiment
    exp = Experiment("x", _toy_train, variants=("ViT", "ViT+LS"), seeds=(0,), check_seeds=1,
                     effects={"LayerScale": ("ViT+LS", "ViT")})
    assert not ledger.resolved(exp.run()["effects"]["LayerScale"])


def _toy_rich(variant, seed, factor):
    """A training that returns what it measured beside the metric."""
    return {"metric": {"base": 80.0, "A": 81.0, "B": 82.0, "AB": 82.5}[variant] + seed, "params": len(variant)}


def test_an_interaction_contrast_is_summed_per_seed_and_details_are_kept():
    from ingur_lib.experiment import Experiment
    exp = Experiment("x", _toy_rich, variants=("base", "A", "B", "AB"), seeds=(0, 1, 2),
                     effects={"A": ("A", "base"), "AB: interaction": {"AB": 1, "A": -1, "B": -1, "base": 1}})
    out = exp.run()
    assert out["effects"]["A"]["values"] == pytest.approx([1.0] * 3)
    # 82.5 - 81 - 82 + 80 = -0.5 on every seed: the pair gains 2.5, less than the parts' 1 + 2
    assert out["effects"]["AB: interaction"]["values"] == pytest.approx([-0.5] * 3)
    assert [d["params"] for d in out["details"]["AB"]] == [2, 2, 2]
    with pytest.raises(Exception, match="declare them as variants"):
        Experiment("x", _toy_rich, variants=("A",), seeds=(0, 1), effects={"i": {"A": 1, "C": -1}})
