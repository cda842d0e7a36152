"""The ``dataset:`` section (training data, #20): off by default, its key and
project default to the API's, a camera's ``sampling`` laid over
``dataset.sampling``, and each bad value named with its key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edge_agent.config import ConfigError, masked, parse_config
from tests.test_config import ENV, GOOD, with_change


def test_off_by_default_with_the_api_s_key_and_project():
    cfg = parse_config(GOOD, ENV)
    d = cfg.dataset
    assert d.enabled is False
    assert (d.url, d.project, d.api_key) == ("https://api.roboflow.com", "garage-door", "rf_SECRET_KEY_123")
    assert (d.max_size, d.max_mb, d.per_hour, d.per_day, d.batch_prefix) == (1280, 100.0, 10, 50, "edge-agent")
    s = cfg.cameras[0].sampling
    assert (s.enabled, s.below, s.margin, s.overruled, s.change, s.random, s.mask) == \
        (True, 0.6, 0.1, True, True, 0.0, ())


def test_a_camera_s_sampling_is_laid_over_the_dataset_s():
    data = with_change("dataset", {"enabled": True, "project": "doors", "api_key": "rf_DATASET_KEY_9",
                                   "sampling": {"below": 0.7, "random": 0.05}})
    data = with_change("cameras[1].sampling", {"random": 0.2, "mask": [[0, 0, 0.5, 0.5]]}, data)
    cfg = parse_config(data, ENV)
    a, b = (c.sampling for c in cfg.cameras)
    assert (a.below, a.random, a.mask) == (0.7, 0.05, ())
    assert (b.below, b.random, b.mask) == (0.7, 0.2, ((0.0, 0.0, 0.5, 0.5),))
    assert cfg.dataset.project == "doors"
    assert "rf_DATASET_KEY_9" in cfg.secrets()
    text = yaml.safe_dump(masked(cfg))
    assert "rf_DATASET_KEY_9" not in text and "rf_SECRET_KEY_123" not in text
    assert parse_config(yaml.safe_load(text.replace("'***'", "rf_DATASET_KEY_9", 1)
                                       .replace("'***'", "rf_SECRET_KEY_123")), ENV).dataset.project == "doors"


def test_the_key_from_a_file(tmp_path: Path):
    (tmp_path / "key").write_text("rf_FILE_KEY_1\n")
    cfg = parse_config(with_change("dataset", {"api_key_file": str(tmp_path / "key")}), ENV)
    assert cfg.dataset.api_key == "rf_FILE_KEY_1"
    assert masked(cfg)["dataset"].get("api_key") is None


@pytest.mark.parametrize("path, value, message", [
    ("dataset.enabled", "maybe", "dataset.enabled"),
    ("dataset.max_size", 10, "dataset.max_size: must be 0 (as captured) or at least 32"),
    ("dataset.max_size", -1, "dataset.max_size"),
    ("dataset.per_hour", 601, "dataset.per_hour"),
    ("dataset.max_mb", 0, "dataset.max_mb"),
    ("dataset.project", "a/b", "dataset.project: must match a project's slug"),
    ("dataset.batch_prefix", "x" * 51, "dataset.batch_prefix"),
    ("dataset.url", "ftp://x", "dataset.url"),
    ("dataset.api_key", "has space", "dataset.api_key: must not contain white space"),
    ("dataset.sampling.below", 1.5, "dataset.sampling.below"),
    ("dataset.sampling.mask", [[0, 0, 2, 1]], "dataset.sampling.mask[0]"),
    ("cameras[0].sampling.random", -0.1, "cameras[0].sampling.random"),
    ("cameras[0].sampling.mystery", 1, "cameras[0].sampling.mystery"),
    ("dataset.samplng", {}, "did you mean"),
])
def test_bad_values_name_the_key(path, value, message):
    with pytest.raises(ConfigError) as e:
        parse_config(with_change(path, value), ENV)
    assert message in str(e.value)


def test_both_a_key_and_a_key_file_is_an_error(tmp_path: Path):
    (tmp_path / "key").write_text("k")
    with pytest.raises(ConfigError, match="dataset.api_key_file: give api_key or api_key_file, not both"):
        parse_config(with_change("dataset", {"api_key": "a", "api_key_file": str(tmp_path / "key")}), ENV)


def test_enabled_for_roboflow_needs_a_key():
    data = with_change("api.url", "http://127.0.0.1:9001")
    data = with_change("api.api_key", "", data)
    data = with_change("dataset", {"enabled": True}, data)
    with pytest.raises(ConfigError, match="dataset.api_key: is required for https://api.roboflow.com"):
        parse_config(data, {})
    parse_config(with_change("dataset.url", "http://127.0.0.1:9001", data), {})  # a local server: no key
