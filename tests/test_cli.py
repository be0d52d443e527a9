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


# ---------------------------------------------------------------- one rule for profile and seeds, said by the run

def _settled(argv, monkeypatch, **env):
    """The settings `reproduce` would run with (checked, not run)."""
    from ingur_lib.__main__ import _check, _parser
    for name in ("INGUR_PROFILE", "INGUR_SEED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    a = _parser().parse_args(argv)
    _check(a)
    return a.settings


def test_reproduce_takes_profile_and_seeds_flag_then_environment_then_default(monkeypatch, tmp_results):
    run = ["reproduce", "02_deit"]
    assert "profile standard (the default), seeds 0, 1, 2 (the default)" in _settled(run, monkeypatch)
    said = _settled(run, monkeypatch, INGUR_PROFILE="smoke", INGUR_SEED="7")
    assert "profile smoke (from INGUR_PROFILE)" in said            # no longer overridden by reproduce's default
    assert "seeds 7, 8, 9 (from INGUR_SEED, the run's 3 seeds from there)" in said
    said = _settled([*run, "--profile", "smoke", "--seeds", "4"], monkeypatch, INGUR_PROFILE="full",
                    INGUR_SEED="7")
    assert "profile smoke (from --profile), seeds 4 (from --seeds)" in said


def test_notebooks_follow_the_same_rule_and_say_where_it_came_from(monkeypatch, capsys):
    from ingur_lib import setup
    monkeypatch.setenv("INGUR_PROFILE", "standard")
    monkeypatch.setenv("INGUR_SEED", "3")
    ctx = setup(device="cpu")
    assert (ctx.profile, ctx.seed) == ("standard", 3)
    assert "profile standard (from INGUR_PROFILE), seed 3 (from INGUR_SEED)" in capsys.readouterr().out
    ctx = setup("smoke", seed=1, device="cpu")
    assert (ctx.profile, ctx.seed) == ("smoke", 1)
    assert "profile smoke (from PROFILE), seed 1 (from seed=...)" in capsys.readouterr().out


def test_version_help_and_quiet(capsys, tmp_path):
    from ingur_lib import __version__
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"ingur-lib {__version__}"
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    text = capsys.readouterr().out
    assert "one of: 00_getting_started, 01_transformer" in text and "{smoke,standard,full}" in text
    assert "INGUR_RESULTS" in text and "INGUR_SEED" in text and "2 a usage error" in text
    assert main(["student", "--out", str(tmp_path)]) == 0
    loud = capsys.readouterr().out
    assert main(["student", "-q", "--out", str(tmp_path)]) == 0
    quiet = capsys.readouterr().out
    assert quiet.strip() == loud.strip().splitlines()[-1] and quiet.startswith("wrote ")


def test_a_malformed_command_line_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as done:
        main(["reproduce", "00_getting_started", "--seeds", "one"])
    assert done.value.code == 2
