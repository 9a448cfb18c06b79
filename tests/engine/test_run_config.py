from __future__ import annotations

import pytest

from trainground.engine import RunConfig
from trainground.engine.config_io import read_yaml
from trainground.errors import ConfigError


def test_yaml_round_trip_keeps_every_value(tmp_path):
    cfg = RunConfig.from_dict({
        "data": {"source": "x.csv", "target": "y", "noise": {"kind": "asymmetric", "rate": 0.3, "class_map": {0: 1, 1: 0}}},
        "model": {"hidden": [32, 16]},
        "fit": {"epochs": 3, "lr": 1, "threads": None},
    })
    assert cfg.model.hidden == (32, 16) and cfg.fit.lr == 1.0 and cfg.data.noise.class_map == {0: 1, 1: 0}
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"fit": {"epoch": 3}}, "unknown option 'epoch' (did you mean 'epochs'?)"),
        ({"fit": {"optimizer": "rmsprop"}}, "config.fit.optimizer: 'rmsprop' is not one of 'adam', 'adamw', 'sgd'"),
        ({"fit": {"epochs": "ten"}}, "config.fit.epochs: expected int, got 'ten'"),
        ({"fit": {"epochs": True}}, "config.fit.epochs: expected int"),
        ({"model": {"hidden": 256}}, "config.model.hidden: expected a list"),
        ({"trainer": {}}, "unknown option 'trainer'"),
        ({"fit": [1, 2]}, "config.fit: expected a mapping"),
    ],
)
def test_bad_config_values_name_the_key(values, message):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(values)
    assert message in str(err.value)


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("fit:\n  epochs: 3\n  lr: [1,\n")
    with pytest.raises(ConfigError, match=r"c\.yaml, line \d+: invalid YAML"):
        read_yaml(path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        read_yaml(path)
    with pytest.raises(ConfigError, match="no such config file"):
        read_yaml(tmp_path / "missing.yaml")
