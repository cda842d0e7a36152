"""Several views of one camera (#21), the config: ``cameras[].views`` and
``cameras[].model``; what is classified (``Config.targets()``); and each bad
config named with its key (exit 2 through ``edge-agent check``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edge_agent.config import ConfigError, masked, parse_config
from tests.test_config import ENV, GOOD, with_change

VIEWS = [{"name": "left", "region": [0, 0, 0.5, 1]},
         {"name": "right", "region": [0.5, 0, 1, 1], "model": "parcel/2", "classes": ["parcel", "none"],
          "decide": {"votes": 2}, "change": {"threshold": 0.2}, "heartbeat": 60}]


def garage(**cam) -> dict:
    data = with_change("cameras[0].views", VIEWS)
    data = with_change("cameras[0].classes", ["open", "closed"], data)
    data = with_change("cameras[0].decide", {"confirm": 3, "window": 7}, data)
    for key, value in cam.items():
        data = with_change(f"cameras[0].{key}", value, data)
    return data


def test_a_camera_without_views_is_its_own_one_view_with_the_api_s_model():
    cfg = parse_config(GOOD, ENV)
    assert [(t.name, t.view_of, t.view, t.model) for t in cfg.targets()] == \
        [("door", None, None, "garage-door/3"), ("gate", None, None, "garage-door/3")]
    assert cfg.targets()[0] == cfg.cameras[0].__class__(**{**cfg.cameras[0].__dict__, "model": "garage-door/3"})


def test_views_are_laid_over_their_camera_and_named_camera_dash_view():
    cfg = parse_config(garage(model="doors/5"), ENV)
    left, right, gate = cfg.targets()
    assert (left.name, left.view_of, left.view, left.region) == ("door-left", "door", "left", (0.0, 0.0, 0.5, 1.0))
    assert (left.model, left.classes) == ("doors/5", ("open", "closed"))  # the camera's
    assert (left.decide.confirm, left.decide.window, left.decide.votes) == (3, 7, 4)
    assert (right.model, right.classes) == ("parcel/2", ("parcel", "none"))  # its own
    assert (right.decide.confirm, right.decide.window, right.decide.votes) == (3, 7, 2)  # its own over the camera's
    assert (right.change.threshold, right.change.heartbeat) == (0.2, 60.0)
    assert (left.change.threshold, left.change.heartbeat) == (0.01, 600.0)
    assert (left.source, left.fps) == (cfg.cameras[0].source, cfg.cameras[0].fps)  # one source, one decode
    assert gate.name == "gate" and gate.view_of is None
    assert all(not t.views for t in cfg.targets())


def test_what_check_prints_is_a_config_meaning_the_same_and_names_each_view_s_model(tmp_path: Path):
    cfg = parse_config(garage(), ENV)
    again = parse_config(yaml.safe_load(yaml.safe_dump(masked(cfg)).replace("'***'", "rf_SECRET_KEY_123")
                                        .replace("rtsp://***@", "rtsp://user:hunter22@")), ENV)
    assert again.targets() == cfg.targets()
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(garage()).replace("${ROBOFLOW_API_KEY}", "k"))
    out = subprocess.run([sys.executable, "-m", "edge_agent", "check", "-c", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "#   door-left: view 'left' of camera 'door', model garage-door/3, region [0.0, 0.0, 0.5, 1.0]" in out.stdout
    assert "#   door-right: view 'right' of camera 'door', model parcel/2, region [0.5, 0.0, 1.0, 1.0]" in out.stdout
    assert "#   gate: camera, model garage-door/3, the whole frame" in out.stdout


@pytest.mark.parametrize("data, key, problem", [
    (garage(views=[]), "cameras[0].views", "must be a non-empty list of views"),
    (garage(views=[{"name": "a"}, {"name": "a"}]), "cameras[0].views[1].name", "duplicate view name 'a'"),
    (garage(views=[{"name": "a", "region": [0, 0, 1.5, 1]}]), "cameras[0].views[0].region",
     "needs 0 <= x1 < x2 <= 1"),
    (garage(region=[0, 0, 0.5, 0.5]), "cameras[0].region", "a camera with views has no region of its own"),
    (garage(views=[{"name": "Left"}]), "cameras[0].views[0].name", "must match [a-z0-9_-]"),
    (garage(views=[{"region": [0, 0, 1, 1]}]), "cameras[0].views[0].name", "is required"),
    (garage(views=[{"name": "a", "regoin": [0, 0, 1, 1]}]), "cameras[0].views[0].regoin", "did you mean 'region'"),
    (garage(views=[{"name": "a", "model": "nope"}]), "cameras[0].views[0].model", "must match"),
    (garage(views=[{"name": "a", "decide": {"votes": 9}}]), "cameras[0].views[0].decide.votes", "must be <="),
    (garage(views=[{"name": f"v{i}"} for i in range(9)]), "cameras[0].views", "at most 8 views"),
    (garage(views=[{"name": "x"}], name="gate-x"), "cameras[0].views[0].name", None),  # ok: no clash
    (with_change("cameras[1].name", "door-left", garage()), "cameras[1].name",
     "'door-left' is also the name of cameras[0].views[0]"),
])
def test_bad_views_name_the_key(data, key, problem):
    if problem is None:
        parse_config(data, ENV)
        return
    with pytest.raises(ConfigError) as err:
        parse_config(data, ENV)
    assert err.value.key == key and problem in err.value.problem, str(err.value)


def test_a_bad_view_is_exit_2_naming_the_key(tmp_path: Path):
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(garage(views=[{"name": "a"}, {"name": "a"}])).replace("${ROBOFLOW_API_KEY}", "k"))
    out = subprocess.run([sys.executable, "-m", "edge_agent", "check", "-c", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "cameras[0].views[1].name: duplicate view name 'a'" in out.stderr


def test_classify_as_a_view_uses_its_region_and_its_model(tmp_path: Path):
    import cv2
    import numpy as np

    from tests.test_cli import KEY, base, cli, write
    from tools.standin_api import StandinApi, ThreadedStandin

    img = np.zeros((400, 800, 3), np.uint8)
    img[:, :400, 2] = 255  # left half red
    img[:, 400:, 0] = 255  # right half blue
    path = tmp_path / "split.png"
    cv2.imwrite(str(path), img)
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cfg = base(api.url)
        cfg["cameras"][0]["views"] = [{"name": "left", "region": [0, 0, 0.5, 1]},
                                      {"name": "right", "region": [0.5, 0, 1, 1], "model": "parcels/4"}]
        conf = write(tmp_path, cfg)
        left = cli("classify", "-c", conf, str(path), "--camera", "door/left", env={"TEST_KEY": KEY})
        right = cli("classify", "-c", conf, str(path), "--camera", "door/right", env={"TEST_KEY": KEY})
        whole = cli("classify", "-c", conf, str(path), env={"TEST_KEY": KEY})
        seen = api.requests()
        bad = cli("classify", "-c", conf, str(path), "--camera", "door", env={"TEST_KEY": KEY})
        unknown = cli("classify", "-c", conf, str(path), "--camera", "door/middle", env={"TEST_KEY": KEY})
    assert left.returncode == right.returncode == whole.returncode == 0, left.stderr + right.stderr
    import json

    assert json.loads(left.stdout)["top"] == "red" and json.loads(right.stdout)["top"] == "blue"
    assert [s.path for s in seen] == ["/colours/1", "/parcels/4", "/colours/1"]  # each view's own model path
    assert (seen[0].width, seen[0].height) == (400, 400)  # the view's crop, not the whole frame
    assert bad.returncode == 2 and "has views: name one as door/VIEW (known: door/left, door/right)" in bad.stderr
    assert unknown.returncode == 2 and "no such camera or view" in unknown.stderr
