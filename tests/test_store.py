import errno
import json
import logging
import os
import stat
from pathlib import Path

import pytest

from edge_agent.storage import files
from edge_agent.storage.files import JsonFile, ensure_state_dir


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "edge_agent.storage.files" and r.levelno >= logging.WARNING]


def test_round_trip_and_file_is_private(tmp_path: Path):
    f = JsonFile(tmp_path / "state.json")
    assert f.load() == {}
    doc = {"day": "2024-03-10", "calls": 3, "credits": 0.0006, "nested": {"a": [1, 2]}}
    assert f.save(doc) is True
    assert JsonFile(tmp_path / "state.json").load() == doc
    assert stat.S_IMODE(os.stat(tmp_path / "state.json").st_mode) == 0o600
    assert f.save({"day": "2024-03-11"}) is True
    assert f.load() == {"day": "2024-03-11"}
    assert sorted(os.listdir(tmp_path)) == ["state.json"]  # no temp file left behind


def test_missing_file_is_empty_without_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    assert JsonFile(tmp_path / "nope.json").load() == {}
    assert warnings(caplog) == []


@pytest.mark.parametrize("content, problem", [
    (b'{"day": "2024-03-10", "calls": 3', "not valid JSON"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
    (b"", "not valid JSON"),
    (b"[1, 2, 3]", "JSON list"),
    (b'"a string"', "JSON str"),
    (b"null", "JSON NoneType"),
    (b"[" * 100_000 + b"]" * 100_000, ""),  # nesting deep enough to exhaust the recursion limit
])
def test_bad_content_is_one_warning_and_a_fresh_start(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                      content: bytes, problem: str):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    f = JsonFile(path, max_bytes=10_000_000)
    assert f.load() == {}
    msgs = warnings(caplog)
    assert len(msgs) == 1
    assert str(path) in msgs[0] and problem in msgs[0]


def test_oversize_file_is_not_read(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"pad": "x" * 200}))
    assert JsonFile(path, max_bytes=1000).load() != {}
    assert JsonFile(path, max_bytes=100).load() == {}
    msgs = warnings(caplog)
    assert len(msgs) == 1 and "larger than 100 bytes" in msgs[0]


def test_a_directory_in_place_of_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    path = tmp_path / "state.json"
    path.mkdir()
    f = JsonFile(path)
    assert f.load() == {}
    assert len(warnings(caplog)) == 1 and str(path) in warnings(caplog)[0]
    caplog.clear()
    assert f.save({"a": 1}) is False  # os.replace cannot put a file over a directory
    assert len(warnings(caplog)) == 1
    assert os.listdir(tmp_path) == ["state.json"] and os.listdir(path) == []


def test_a_fifo_in_place_of_the_file_does_not_hang(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    path = tmp_path / "state.json"
    os.mkfifo(path)
    assert JsonFile(path).load() == {}
    assert len(warnings(caplog)) == 1 and "not a regular file" in warnings(caplog)[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_save_to_a_read_only_dir(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    folder = tmp_path / "ro"
    folder.mkdir()
    f = JsonFile(folder / "state.json")
    folder.chmod(0o500)
    try:
        assert f.save({"a": 1}) is False
        assert f.save({"a": 2}) is False
    finally:
        folder.chmod(0o700)
    assert len(warnings(caplog)) == 1
    assert os.listdir(folder) == []


def test_failing_disk_is_logged_once_per_episode_and_leaves_no_temp_file(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch):
    # Runs as root too: the file system itself says "read-only", then "full".
    caplog.set_level(logging.INFO, logger="edge_agent.storage.files")
    f = JsonFile(tmp_path / "state.json")
    assert f.save({"v": 1})
    real_replace = os.replace
    failure = [errno.EROFS]

    def broken_replace(src, dst):
        raise OSError(failure[0], os.strerror(failure[0]))

    monkeypatch.setattr(files.os, "replace", broken_replace)
    assert f.save({"v": 2}) is False
    assert f.save({"v": 3}) is False
    assert len(warnings(caplog)) == 1 and "Read-only" in warnings(caplog)[0]
    failure[0] = errno.ENOSPC  # a new kind of trouble within the episode: one more line
    assert f.save({"v": 4}) is False
    assert f.save({"v": 5}) is False
    assert len(warnings(caplog)) == 2 and "No space" in warnings(caplog)[1]
    assert sorted(os.listdir(tmp_path)) == ["state.json"]
    assert f.load() == {"v": 1}  # the last good copy is intact

    monkeypatch.setattr(files.os, "replace", real_replace)
    assert f.save({"v": 6}) is True
    assert any("written again after 4 failed writes" in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(files.os, "replace", broken_replace)
    assert f.save({"v": 7}) is False  # a new episode is logged again
    assert len(warnings(caplog)) == 3


def test_failing_write_midway_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    f = JsonFile(tmp_path / "state.json")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    assert f.save({"v": 1}) is False
    assert os.listdir(tmp_path) == []


def test_save_under_a_file_fails_without_raising(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    (tmp_path / "plain").write_text("x")
    f = JsonFile(tmp_path / "plain" / "state.json")
    assert f.save({"a": 1}) is False
    assert f.save({"a": 1}) is False
    assert len(warnings(caplog)) == 1


def test_unencodable_or_oversize_documents_are_not_written(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    f = JsonFile(tmp_path / "state.json", max_bytes=50)
    assert f.save({"a": float("nan")}) is False
    assert f.save({"a": object()}) is False
    assert f.save({"pad": "x" * 100}) is False
    assert not (tmp_path / "state.json").exists()
    assert f.save({"a": 1}) is True


def test_ensure_state_dir_creates_private_dir_with_parents(tmp_path: Path):
    target = tmp_path / "a" / "b" / "edge-agent"
    old = os.umask(0o022)
    try:
        got = ensure_state_dir(str(target))
    finally:
        os.umask(old)
    assert got == target and target.is_dir()
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert ensure_state_dir(target) == target  # idempotent


def test_ensure_state_dir_tightens_a_loose_dir_we_own(tmp_path: Path):
    target = tmp_path / "state"
    target.mkdir()
    target.chmod(0o755)
    ensure_state_dir(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o700


def test_ensure_state_dir_raises_when_a_file_is_in_the_way(tmp_path: Path):
    (tmp_path / "state").write_text("x")
    with pytest.raises(OSError):
        ensure_state_dir(tmp_path / "state")
