"""`reproduce --set key=value`: a chapter's config changed from the command line, checked, recorded."""
import json

import pytest

from ingur_lib import overrides
from ingur_lib.chapters import getting_started, deit
from ingur_lib.errors import IngurError


def test_bare_and_dotted_keys_set_nested_fields_in_their_types():
    cfg = overrides.apply(getting_started.config("full"), overrides.parse(["batch_size=512", "lr=2e-3",
                                                                           "epochs=2.5", "train.grad_accum=4"]))
    assert (cfg.train.batch_size, cfg.train.lr, cfg.train.epochs, cfg.train.grad_accum) == (512, 2e-3, 2.5, 4)
    assert getting_started.config("full").train.batch_size == 256  # the chapter's own config is untouched


@pytest.mark.parametrize("pairs, message", [
    (["batch_size"], "is not key=value"),
    (["no_such_field=1"], "has no field 'no_such_field'"),
    (["batch_size=big"], "the field holds a int"),
    (["batch_size=0"], "batch_size=0 must be a whole number >= 1"),  # the dataclass's own check runs again
])
def test_bad_overrides_stop_with_one_sentence(pairs, message):
    with pytest.raises(IngurError, match=message):
        overrides.apply(getting_started.config("full"), overrides.parse(pairs))


def test_a_name_in_several_places_must_be_written_out():
    with pytest.raises(IngurError, match=r"in several places; name one of .*train\.batch_size"):
        overrides.apply(deit.config("full"), {"batch_size": 64})


def test_the_cli_passes_overrides_to_the_config_and_the_provenance(monkeypatch):
    from ingur_lib.runtime import provenance
    monkeypatch.setenv(overrides.ENV, json.dumps({"batch_size": 64}))
    assert getting_started.config("full").train.batch_size == 64  # profiles.pick applies them
    assert provenance("full", [0], 1.0)["overrides"] == {"batch_size": 64}


def test_a_bad_override_stops_the_cli_before_any_training(capsys, monkeypatch):
    from ingur_lib.__main__ import main
    monkeypatch.delenv(overrides.ENV, raising=False)
    assert main(["reproduce", "00_getting_started", "--profile", "full", "--set", "batch_size=big"]) == 2
    assert "the field holds a int" in capsys.readouterr().err
