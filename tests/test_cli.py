"""The command line and the profile switch."""
import pytest

from ingur_lib.__main__ import main
from ingur_lib.errors import IngurError
from ingur_lib.profiles import get_profile, pick


def test_profiles(monkeypatch):
    monkeypatch.delenv("INGUR_PROFILE", raising=False)
    assert get_profile() == "smoke"
    monkeypatch.setenv("INGUR_PROFILE", "Standard")
    assert get_profile() == "standard"
    with pytest.raises(IngurError, match="use one of smoke, standard, full"):
        get_profile("huge")
    with pytest.raises(IngurError, match="no 'full' config"):
        pick({"smoke": 1}, "full")


def test_unknown_chapter_and_profile_one_line(capsys):
    assert main(["reproduce", "nope"]) == 2
    assert "Unknown chapter 'nope'" in capsys.readouterr().err
    assert main(["reproduce", "00_getting_started", "--profile", "huge"]) == 2
    assert "Unknown profile" in capsys.readouterr().err


def test_figures_from_recorded_results(tmp_path):
    assert main(["figures", "--out", str(tmp_path)]) == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert {"getting_started_curves.pdf", "getting_started_curves.png", "getting_started_attention.png"} <= names


def test_student_command(tmp_path):
    assert main(["student", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "00_getting_started.ipynb").exists()


def test_ledger_command(capsys, tmp_path):
    assert main(["ledger", "--latex", str(tmp_path / "l.tex")]) == 0
    assert (tmp_path / "l.tex").read_text().startswith("\\begin{tabular}")
