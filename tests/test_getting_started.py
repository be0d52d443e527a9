"""Chapter 00's convergence check: the recorded 1.5x run judged by the ledger's one rule."""
from ingur_lib import ledger
from ingur_lib.chapters import getting_started as ch


def _results(acc, acc_longer):
    return {"provenance": {"seeds": [0]},
            "convergence": {"epochs": 22, "epochs_longer": 33, "acc": acc, "acc_longer": acc_longer,
                            "change": acc_longer - acc}}


def test_standard_records_a_convergence_check():
    assert ch.config("standard").longer == 1.5
    assert ch.config("smoke").longer is None      # the notebook's smoke run trains once


def test_a_small_move_is_converged():
    line = ch.convergence_line(_results(90.19, 90.29))
    assert "22 -> 33 epochs" in line and "+0.10 points" in line and line.endswith(": converged")


def test_a_move_past_the_bar_is_not_converged():
    # either direction: a fall past the bar means the run is not settled either
    for move in (+0.5, -0.5):
        assert move ** 2 > ledger.DEFAULT_TOLERANCE ** 2
        line = ch.convergence_line(_results(90.0, 90.0 + move))
        assert line.endswith("not converged"), line


def test_no_check_recorded_says_nothing():
    assert ch.convergence_line({"provenance": {"seeds": [0]}}) is None
    assert ch.convergence_line({"provenance": {"seeds": [0]}, "convergence": {}}) is None
