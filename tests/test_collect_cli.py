"""``edge-agent collect``: one image into the dataset, as a user runs it to check the
key and the project. Real subprocesses against the stand-in's upload and annotate
routes (real HTTP on 127.0.0.1), real files; what arrived is read back from the
stand-in's folder."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import ROOT, free_port
from tests.test_cli import KEY, base, cli, write
from tools.standin_api import StandinApi, ThreadedStandin
from tools.standin_dataset import by_reason, stored

MB = 1024 * 1024


def dataset_config(tmp_path: Path, url: str, **dataset) -> str:
    cfg = base(url)
    cfg["device_id"] = "garage-pi"
    cfg["dataset"] = {"url": url, **dataset}
    return write(tmp_path, cfg)


def image_file(tmp_path: Path, name: str = "door.png", size: tuple[int, int] = (800, 600), seed: int = 0) -> Path:
    w, h = size
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3), np.uint8)
    path = tmp_path / name
    cv2.imwrite(str(path), img)
    os.utime(path, (1_790_000_000.5, 1_790_000_000.5))  # the "captured_at" sent: the file's mtime
    return path


@pytest.fixture
def api(tmp_path):
    with ThreadedStandin(StandinApi(api_key=KEY, dataset_dir=tmp_path / "dataset")) as a:
        yield a


def test_an_unlabelled_upload_sends_the_contract_and_prints_the_reply(tmp_path, api):
    conf = dataset_config(tmp_path, api.url, max_size=300)  # dataset.enabled is false: it works all the same
    path = image_file(tmp_path)
    r = cli("collect", "-c", conf, str(path), env={"TEST_KEY": KEY})
    assert r.returncode == 0, r.stderr
    # One line says that the agent itself collects nothing; the key is never printed.
    assert r.stderr == ("edge-agent: note: dataset.enabled is false: the agent itself saves nothing for training; "
                        "this one image is uploaded all the same\n")
    assert KEY not in r.stdout + r.stderr
    shown = json.loads(r.stdout)
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    tags = ["edge-agent", "cli", "on_demand", "garage-pi", "colours-1"]
    assert shown["project"] == "colours" and shown["duplicate"] is False
    assert shown["batch"] == f"edge-agent {day}" and shown["tags"] == tags
    assert "label" not in shown and "annotation" not in shown

    [got] = stored(api.dataset_dir)
    assert got.image_id == shown["id"] and got.name == shown["name"] and got.name.endswith(".jpg")
    assert got.project == "colours" and got.batch == f"edge-agent {day}" and list(got.tags) == tags
    assert got.metadata == {"camera": "cli", "device": "garage-pi", "model": "colours/1", "reason": "on_demand",
                            "captured_at": 1_790_000_000.5}
    assert got.label is None and got.reason == "on_demand"
    [seen] = api.dataset.log()
    assert seen.fields["split"] == "train"
    # The picture: the file whole, longest side max_size, a JPEG of quality 90.
    picture = cv2.imread(str(api.dataset_dir / "colours" / f"{got.image_id}.jpg"))
    assert picture.shape[:2] == (225, 300)


def test_a_label_is_a_persons_and_a_second_send_is_stored_once(tmp_path, api):
    conf = dataset_config(tmp_path, api.url, enabled=True, project="garage-door", batch_prefix="field test")
    path = image_file(tmp_path, seed=1)
    r = cli("collect", "-c", conf, str(path), "--label", "open", "--camera", "door", env={"TEST_KEY": KEY})
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # collection is on: no note
    first = json.loads(r.stdout)
    assert first["label"] == "open" and first["annotation"] == "labelled" and first["duplicate"] is False
    assert first["tags"] == ["edge-agent", "door", "on_demand", "garage-pi", "colours-1"]
    assert first["batch"].startswith("field test ")
    [got] = stored(api.dataset_dir)
    assert got.project == "garage-door" and got.metadata["camera"] == "door" and got.metadata["label"] == "open"
    assert (got.label, got.prediction) == ("open", False)  # a person's label: no prediction=true

    # The same file again: the stand-in knows its bytes (as Roboflow does): duplicate,
    # the same id, stored once; its label was given before (409): not an error.
    r = cli("collect", "-c", conf, str(path), "--label", "closed", "--camera", "door", env={"TEST_KEY": KEY})
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)
    assert again["id"] == first["id"] and again["duplicate"] is True and again["annotation"] == "already_labelled"
    [still] = stored(api.dataset_dir)
    assert still.label == "open"
    assert [(x.route, x.status) for x in api.dataset.log()] == [("upload", 200), ("annotate", 200),
                                                                ("upload", 200), ("annotate", 409)]


def test_a_wrong_key_and_an_unknown_project_are_one_line_each(tmp_path):
    with ThreadedStandin(StandinApi(api_key="another-key", dataset_dir=tmp_path / "d", projects={"colours"})) as api:
        path = image_file(tmp_path)
        r = cli("collect", "-c", dataset_config(tmp_path, api.url), str(path), env={"TEST_KEY": KEY})
        assert r.returncode == 1 and r.stdout == ""
        line = r.stderr.splitlines()[-1]
        assert line == (f"edge-agent: upload refused: the API key may not write to project 'colours' at {api.url} "
                        "(HTTP 401): check dataset.api_key (default: api.api_key)")
        assert KEY not in r.stderr
        api.api_key = KEY
        r = cli("collect", "-c", dataset_config(tmp_path, api.url, project="nosuch"), str(path), "--label", "red",
                env={"TEST_KEY": KEY})
        assert r.returncode == 1 and r.stdout == ""
        assert r.stderr.splitlines()[-1] == (f"edge-agent: upload refused: there is no project 'nosuch' at {api.url} "
                                             "(HTTP 404): check dataset.project (default: api.model before the /)")
        assert len(r.stderr.splitlines()) == 2  # the note (collection is off), then the problem
        assert stored(api.dataset_dir) == []


def test_a_dataset_key_of_its_own_is_used_and_never_printed(tmp_path):
    own = "rf_dataset_OWN_key_7788"
    with ThreadedStandin(StandinApi(api_key=own, dataset_dir=tmp_path / "d")) as api:
        (tmp_path / "dataset_key").write_text(own + "\n")
        conf = dataset_config(tmp_path, api.url, api_key_file=str(tmp_path / "dataset_key"))
        api.dataset.add_faults({"echo_key": True})  # a 400 whose body quotes the key
        r = cli("collect", "-c", conf, str(image_file(tmp_path)), env={"TEST_KEY": KEY})
        assert r.returncode == 1 and "upload failed: upload refused (HTTP 400)" in r.stderr
        assert own not in r.stdout + r.stderr and KEY not in r.stdout + r.stderr
        r = cli("collect", "-c", conf, str(image_file(tmp_path)), env={"TEST_KEY": KEY})
        assert r.returncode == 0, r.stderr
        assert own not in r.stdout + r.stderr


@pytest.mark.parametrize("fault, says", [
    ({"garbage": True}, "reply is not JSON: '<html>502 Bad Gateway</html>'"),
    ({"gzip_bomb": 1024 * MB}, "reply larger than the 64 KiB cap"),
    ({"big_body": 64 * MB, "chunked": True}, "reply larger than the 64 KiB cap"),
    ({"reply": {"success": True, "id": "../../etc"}}, "unexpected reply: success without a well-formed id"),
])
def test_hostile_replies_are_bounded_through_the_cli(tmp_path, api, fault, says):
    conf = dataset_config(tmp_path, api.url, enabled=True)
    path = image_file(tmp_path)
    api.dataset.add_faults(fault)
    r, took = cli_capped("collect", "-c", conf, str(path))
    assert r.returncode == 1, r.stderr[-2000:]
    assert r.stdout == "" and r.stderr == f"edge-agent: upload failed: {says}\n"
    assert took < 15 and KEY not in r.stderr


def cli_capped(*args: str, timeout: float = 30) -> tuple[subprocess.CompletedProcess[str], float]:
    """``cli`` with 1 GiB of address space: a regression dies instead of eating the machine."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2**30, resource.getrlimit(resource.RLIMIT_AS)[1]))

    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "edge_agent", *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout, env={**os.environ, "TEST_KEY": KEY}, preexec_fn=cap)
    return r, time.monotonic() - start


def png_bomb(w: int, h: int) -> bytes:
    """A valid greyscale PNG of w x h black pixels: a few hundred KB that decode to w*h*3 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = b"\0" * (w + 1)  # filter byte 0, then the row
    idat = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_what_is_not_an_image_exits_2_before_anything_is_sent(tmp_path, api):
    conf = dataset_config(tmp_path, api.url, enabled=True)
    (tmp_path / "notes.txt").write_text("not a picture\n")
    (tmp_path / "half.jpg").write_bytes(cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))[1].tobytes()[:40])
    big = tmp_path / "huge.png"
    with open(big, "wb") as f:
        f.truncate(65 * MB)  # sparse: larger than the cap, never read
    (tmp_path / "bomb.png").write_bytes(png_bomb(20_000, 20_000))  # 390 KB; 400 Mpx, 1.2 GB decoded
    os.mkfifo(tmp_path / "fifo")
    cases = [
        ("missing.png", "no such file"),
        ("notes.txt", "not an image OpenCV can read"),
        ("half.jpg", "not an image OpenCV can read"),
        ("huge.png", f"larger than 64 MiB ({65 * MB} bytes)"),
        ("bomb.png", "more than 100 megapixels"),
        ("fifo", "not a regular file"),
        (".", "not a regular file"),
    ]
    for command in ("collect", "classify"):  # classify reads a file as collect does (imagefile.py)
        for name, why in cases:
            path = str(tmp_path / name)
            r, took = cli_capped(command, "-c", conf, path)
            assert r.returncode == 2, (command, name, r.stderr[-2000:])
            assert r.stderr == f"edge-agent: cannot read image {path!r}: {why}\n", r.stderr[-2000:]
            assert took < 10, name
    assert api.dataset.log() == [] and api.requests() == []


def test_bad_arguments_and_a_missing_key_exit_2(tmp_path, api):
    path = str(image_file(tmp_path))
    conf = dataset_config(tmp_path, api.url)
    for extra, says in [(["--camera", "Front Door"], "--camera must be a camera's name"),
                        (["--label", ""], "--label must be a class name of 1-200 printable characters"),
                        (["--label", "a\nb"], "--label must be a class name"),
                        (["--label", "x" * 201], "--label must be a class name")]:
        r = cli("collect", "-c", conf, path, *extra, env={"TEST_KEY": KEY})
        assert r.returncode == 2 and r.stderr.startswith(f"edge-agent: {says}"), (extra, r.stderr)
    # No key at all for Roboflow's own upload API: said before anything is read or sent.
    cfg = base("http://127.0.0.1:9")
    del cfg["api"]["api_key"]
    r = cli("collect", "-c", write(tmp_path, cfg), path)
    assert r.returncode == 2
    assert r.stderr == ("edge-agent: config error: dataset.api_key: is required for https://api.roboflow.com "
                        "(or api.api_key)\n")
    assert api.dataset.log() == []


def test_an_unreachable_upload_api_is_one_line(tmp_path):
    port = free_port()  # nothing listens there
    r = cli("collect", "-c", dataset_config(tmp_path, f"http://127.0.0.1:{port}", enabled=True),
            str(image_file(tmp_path)), env={"TEST_KEY": KEY})
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(f"edge-agent: upload failed: cannot connect to 127.0.0.1:{port}"), r.stderr
    assert r.stderr.count("\n") == 1


def test_the_stand_in_prints_its_folder_and_files_what_collect_sends(tmp_path):
    """The stand-in as a user starts it: it names itself a stand-in, prints where it
    files what it receives (a temporary folder here), and that folder holds the upload."""
    proc = subprocess.Popen([sys.executable, "-m", "tools.standin_api", "--port", "0", "--api-key", KEY], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        url = json.loads(proc.stdout.readline())["standin_api"]
        folder = Path(json.loads(proc.stdout.readline())["standin_dataset_folder"])
        banner = proc.stderr.readline()
        assert banner.startswith("STAND-IN for Roboflow's documented API contract, not a model")
        assert str(folder) in banner and "temporary" in banner
        r = cli("collect", "-c", dataset_config(tmp_path, url), str(image_file(tmp_path)), "--label", "red",
                env={"TEST_KEY": KEY})
        assert r.returncode == 0, r.stderr
        [got] = stored(folder)
        assert got.image_id == json.loads(r.stdout)["id"] and got.label == "red" and by_reason([got]) == {
            "on_demand": 1}
    finally:
        proc.terminate()
        proc.wait(10)
    assert not folder.exists()  # a temporary folder goes with the stand-in


def test_the_readme_gives_every_dataset_key_with_its_default():
    """The README's "Training data" config block is the defaults (and names every key)."""
    import dataclasses

    import yaml

    from edge_agent.config.model import DatasetConfig, SamplingConfig

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Training data for your dataset"):text.index("## MQTT topics")]
    block = section[section.index("```yaml\n") + 8:]
    block = block[:block.index("```")]
    shown = yaml.safe_load(block)["dataset"]
    for cls, values in ((DatasetConfig, shown), (SamplingConfig, shown["sampling"])):
        for f in dataclasses.fields(cls):
            assert f.name in block, f"README's dataset block does not name {f.name}"
            if f.name in values and f.name not in ("project", "sampling"):  # project: an example slug
                default = f.default
                assert values[f.name] == (list(default) if isinstance(default, tuple) else default), f.name
