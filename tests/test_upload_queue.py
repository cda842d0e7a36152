"""The durable upload queue (storage/uploads.py): order, durability across a reopen and
a SIGKILL of a real process, the size bound, the caps on an item, a bad file, modes."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edge_agent.storage import uploaddb
from edge_agent.storage.eventdb import StoreError
from edge_agent.storage.uploaddb import LabelSource, UploadItem
from edge_agent.storage.uploads import UploadLog, UploadQueue

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_700_000_000.0
KB = 1024


def logs(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("edge_agent.storage.upload") and r.levelno == level]


def jpeg(i: int, n: int = 2000) -> bytes:
    """Incompressible bytes that start like a JPEG, the same for the same ``i``."""
    seed, out = str(i).encode(), bytearray(b"\xff\xd8")
    while len(out) < n:
        out += hashlib.sha256(seed + len(out).to_bytes(4, "big")).digest()
    return bytes(out[:n])


def item(i: int, n: int = 2000, **kw) -> UploadItem:
    base = dict(camera="door", reason="uncertain", jpeg=jpeg(i, n), captured_at=T0 + i,
                batch="edge-agent 2026-12-03", metadata={"i": i, "top": "open", "confidence": 0.42},
                tags=("edge-agent", "door", "uncertain"))
    base.update(kw)
    return UploadItem(**base)  # type: ignore[arg-type]


def opened(path: Path, **kw) -> UploadQueue:
    q = UploadQueue(path, **kw)
    q.open()
    return q


def test_order_peek_done_and_attempts(tmp_path: Path):
    q = opened(tmp_path / "uploads.db")
    assert q.oldest() is None and q.peek(5) == []
    ids = [q.put(item(i)) for i in range(12)]
    assert ids == sorted(ids) and len(set(ids)) == 12
    assert [x.id for x in q.peek(3)] == ids[:3]
    assert [x.id for x in q.peek(100)] == ids[:10]  # at most 10 at a time
    assert [x.id for x in q.peek(3, after=ids[9])] == ids[10:]
    # A failed try is counted on the item; it stays first.
    assert q.attempt(ids[0], "HTTP 503 from https://api.roboflow.com/dataset/p/upload?api_key=SECRETKEY&batch=x")
    assert q.attempt(ids[0], "timeout " + "x" * 5000)
    first = q.oldest()
    assert first is not None and first.id == ids[0] and first.attempts == 2
    assert first.last_error is not None and first.last_error.startswith("timeout") and len(first.last_error) < 400
    assert q.peek(2)[1].attempts == 0 and q.peek(2)[1].last_error is None
    assert q.done(ids[0]) and not q.done(ids[0]) and not q.attempt(ids[0], "gone")
    assert q.done(ids[5])  # out of order (e.g. a duplicate found later): the rest keep their order
    assert [x.id for x in q.peek(10)] == [i for i in ids if i not in (ids[0], ids[5])][:10]
    s = q.stats()
    assert s.queued == 10 and s.dropped == 0 and s.oldest_captured_at == T0 + 1
    assert s.bytes == sum(item(i).encoded()[2] for i in range(12) if i not in (0, 5))
    q.close()


def test_last_error_is_redacted(tmp_path: Path):
    q = opened(tmp_path / "uploads.db")
    iid = q.put(item(0))
    q.attempt(iid, "POST https://api.roboflow.com/dataset/p/upload?api_key=SECRETKEY&batch=x: 401")
    err = q.oldest().last_error  # type: ignore[union-attr]
    assert err is not None and "SECRETKEY" not in err and "401" in err
    q.close()


def test_items_intact_and_in_order_across_reopen(tmp_path: Path):
    path = tmp_path / "uploads.db"
    q = opened(path, clock=lambda: T0 + 500)
    items = [item(0), item(1, 300 * KB, label="open", label_source=LabelSource.MODEL),
             item(2, label="closed", label_source=LabelSource.PERSON, reason="on_demand", tags=(),
                  metadata={"nested": {"a": [1, 2.5, None, True]}, "ü": "é"}),
             item(3, camera="gate", reason="overruled")]
    ids = [q.put(x) for x in items]
    q.attempt(ids[1], "HTTP 500")
    q.close()
    q = opened(path)
    got = q.peek(10)
    assert [x.id for x in got] == ids
    assert [x.item for x in got] == items  # every field, the JPEG's bytes included
    assert got[1].attempts == 1 and got[1].last_error == "HTTP 500" and got[0].queued_at == T0 + 500
    assert got[2].item.label_source is LabelSource.PERSON
    assert q.stats().queued == 4 and q.stats().bytes == sum(x.encoded()[2] for x in items)
    # Ids are never reused, even when the newest items are gone.
    for i in ids:
        q.done(i)
    q.close()
    q = opened(path)
    assert q.put(item(9)) > ids[-1]
    q.close()


def test_repr_leaves_the_picture_out():
    assert "jpeg" not in repr(item(0, 100 * KB)) and len(repr(item(0, 100 * KB))) < 1000


CHILD = textwrap.dedent("""
    import sys
    import time
    from tests.test_upload_queue import item
    from edge_agent.storage.uploads import UploadQueue
    q = UploadQueue(sys.argv[1], max_mb=1000)
    q.open()
    pause_at = int(sys.argv[2])
    i = 0
    while True:
        iid = q.put(item(i, 1000 + (i * 7919) % 60000))
        print(iid, i, flush=True)
        i += 1
        if i == pause_at:
            time.sleep(120)
""")


@pytest.mark.parametrize("pause_at", [0, 40], ids=["mid-put", "right-after-an-ack"])
def test_sigkill_during_puts_loses_no_acknowledged_item(tmp_path: Path, pause_at: int):
    """Killed in a tight loop of puts (mostly in the middle of one), or right after the
    40th put returned (no later commit can carry it to disk)."""
    path = tmp_path / "uploads.db"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(pause_at)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env, cwd=ROOT, text=True)
    acked: list[tuple[int, int]] = []
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 60
        while len(acked) < 40 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            acked.append(tuple(int(x) for x in line.split()))  # type: ignore[arg-type]
        assert len(acked) >= 40, child.stderr.read() if child.stderr else ""
        child.send_signal(signal.SIGKILL)  # in the middle of the next puts
        rest, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    acked += [tuple(int(x) for x in line.split()) for line in rest.splitlines() if line.strip()]  # type: ignore[misc]
    q = opened(path)
    found: list[tuple[int, int]] = []
    after = 0
    while batch := q.peek(10, after):
        for x in batch:
            i = x.item.metadata["i"]
            assert x.item == item(i, 1000 + (i * 7919) % 60000)  # intact, byte for byte
            found.append((x.id, i))
        after = batch[-1].id
    # Every acknowledged item is there, in order; at most the one being put when killed is extra.
    assert found[:len(acked)] == acked
    assert len(found) - len(acked) <= 1
    assert [i for _, i in found] == list(range(len(found)))
    assert q.stats().queued == len(found)
    q.close()


def test_full_queue_drops_the_oldest_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    path = tmp_path / "uploads.db"
    size = item(10, 20 * KB).encoded()[2]  # the same for every i from 10 to 99
    q = opened(path, max_mb=10 * size / 1024 / 1024)  # room for 10 of them
    ids = [q.put(item(i, 20 * KB)) for i in range(35)]
    assert [x.id for x in q.peek(10)] == ids[-10:]
    s = q.stats()
    assert s.queued == 10 and s.dropped == 25 and s.bytes == q.max_bytes
    assert s.oldest_captured_at == T0 + 25
    warned = logs(caplog)
    assert len(warned) == 1 and "oldest" in warned[0] and "dropped" in warned[0]
    # Uploads make room (under half of max_mb): the episode ends with one info line.
    for i in ids[25:30]:
        q.done(i)
    assert logs(caplog, logging.INFO) == []  # half: not yet
    q.done(ids[30])
    infos = logs(caplog, logging.INFO)
    assert len(infos) == 1 and "25 frames were dropped" in infos[0]
    for i in range(40, 46):
        q.put(item(i, 20 * KB))  # full to the byte: nothing dropped
    assert q.stats().dropped == 25 and len(logs(caplog)) == 1
    # A big item drops as many of the oldest as it needs: a new episode, one more warning.
    q.put(item(99, 3 * 20 * KB))
    q.put(item(98, 20 * KB))
    assert len(logs(caplog)) == 2
    assert q.stats().bytes <= q.max_bytes and q.stats().dropped == 25 + 3 + 1
    # The bound and the order hold across a reopen.
    q.close()
    q = opened(path, max_mb=10 * size / 1024 / 1024)
    assert [x.item.metadata["i"] for x in q.peek(10)] == [40, 41, 42, 43, 44, 45, 99, 98]
    assert q.stats().bytes <= q.max_bytes and q.stats().queued == 8
    q.close()


def test_a_queue_kept_full_by_slow_uploads_is_one_episode(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """Frames keep coming while uploads trickle out (one for every three frames): each
    upload makes room for a moment, but that is still one line, not one per upload."""
    caplog.set_level(logging.INFO)
    q = opened(tmp_path / "uploads.db", max_mb=0.5)
    for i in range(300):
        q.put(item(i, 10 * KB + (i * 7919) % (40 * KB)))
        if i % 3 == 0:
            q.done(q.oldest().id)  # type: ignore[union-attr]
        assert q.stats().bytes <= q.max_bytes
    assert q.dropped > 100
    assert len(logs(caplog)) == 1 and logs(caplog, logging.INFO) == []
    # The uploads catch up: the episode ends, and the space goes back to the file system.
    while (x := q.oldest()) is not None:
        q.done(x.id)
    assert len(logs(caplog, logging.INFO)) == 1
    assert (tmp_path / "uploads.db").stat().st_size < 100 * KB
    q.close()


@pytest.mark.parametrize("bad, why", [
    (dict(jpeg=b"\xff\xd8" + b"\0" * (4 * 1024 * 1024)), "more than"),
    (dict(jpeg=b"GIF89a" + b"\0" * 100), "not a JPEG"),
    (dict(jpeg="not bytes"), "not a JPEG"),
    (dict(metadata={"x": "y" * 17000}), "metadata is more than"),
    (dict(metadata={"x": object()}), "cannot be encoded"),
    (dict(metadata={"x": float("nan")}), "cannot be encoded"),
    (dict(metadata=["a list"]), "mapping"),
    (dict(tags=tuple(f"t{i}" for i in range(21))), "tags"),
    (dict(tags=("ok", "")), "tag"),
    (dict(tags=("x" * 101,)), "tag"),
    (dict(tags=(3,)), "tag"),
    (dict(camera=""), "camera"),
    (dict(label="c" * 201), "label"),
    (dict(batch=None), "batch"),
    (dict(label_source="robot"), "robot"),
    (dict(captured_at=float("inf")), "captured_at"),
])
def test_an_item_out_of_bounds_is_refused_and_nothing_stored(tmp_path: Path, bad: dict, why: str):
    q = opened(tmp_path / "uploads.db")
    with pytest.raises(ValueError, match=why):
        q.put(item(0, **bad))
    assert q.stats().queued == 0 and q.oldest() is None
    q.put(item(1, 4 * 1024 * 1024 - 100, metadata={"x": "y" * 16000}, tags=tuple(f"t{i}" for i in range(20))))
    assert q.stats().queued == 1  # just under the caps is fine
    q.close()


def test_an_item_bigger_than_the_whole_queue_is_refused(tmp_path: Path):
    q = opened(tmp_path / "uploads.db", max_mb=0.05)  # 51 KB
    q.put(item(0, 20 * KB))
    with pytest.raises(ValueError, match="max_mb"):
        q.put(item(1, 60 * KB))
    assert [x.item.metadata["i"] for x in q.peek(5)] == [0] and q.dropped == 0  # nothing dropped for it
    q.close()


def _random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def _truncated(path: Path) -> None:
    q = opened(path)
    for i in range(100):
        q.put(item(i, 5000))
    q.close()
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 3)


def _wrong_schema(path: Path) -> None:
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE items (a, b)")
    c.execute("PRAGMA user_version=1")
    c.commit()
    c.close()


def _newer_version(path: Path) -> None:
    opened(path).close()
    c = sqlite3.connect(path)
    c.execute("PRAGMA user_version=2")
    c.close()


def _directory(path: Path) -> None:
    path.mkdir()
    (path / "x").write_text("x")


@pytest.mark.parametrize("damage", [_random_bytes, _truncated, _wrong_schema, _newer_version, _directory])
def test_a_bad_file_is_moved_aside_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture, damage):
    path = tmp_path / "uploads.db"
    damage(path)
    caplog.clear()
    q = opened(path, clock=lambda: T0)
    assert q.stats().queued == 0
    iid = q.put(item(7))
    assert q.oldest().id == iid  # type: ignore[union-attr]
    q.close()
    assert (tmp_path / f"uploads.db.corrupt-{int(T0)}").exists()
    warned = logs(caplog)
    assert len(warned) == 1 and "moved aside" in warned[0] and "uploads.db" in warned[0]


def test_corruption_found_while_running_moves_the_file_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    path = tmp_path / "uploads.db"
    q = opened(path, clock=lambda: T0)
    for i in range(50):
        q.put(item(i, 5000))
    q._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
    with open(path, "r+b") as f:  # pages of the tables go bad under the running queue
        f.seek(4096)
        f.write(os.urandom(4096 * 60))
    with pytest.raises(StoreError):
        for _ in range(10):
            q.peek(10)
            q.put(item(100, 5000))
    assert any("moved aside" in m for m in logs(caplog))
    assert list(tmp_path.glob("uploads.db.corrupt-*"))
    q.put(item(101))  # an empty queue again, working
    assert q.stats().queued == 1
    q.close()


def test_no_folder_is_a_store_error(tmp_path: Path):
    with pytest.raises(StoreError):
        opened(tmp_path / "missing" / "uploads.db")


def test_files_are_private(tmp_path: Path):
    old = os.umask(0)
    try:
        q = opened(tmp_path / "uploads.db")
        q.put(item(0))
        for name in ("uploads.db", "uploads.db-wal"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
        q.close()
        # A file left with a looser mode is tightened when opened.
        (tmp_path / "uploads.db").chmod(0o644)
        opened(tmp_path / "uploads.db").close()
        assert stat.S_IMODE((tmp_path / "uploads.db").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_an_emptied_queue_gives_its_space_back(tmp_path: Path):
    path = tmp_path / "uploads.db"
    q = opened(path)
    ids = [q.put(item(i, 200 * KB)) for i in range(20)]  # 4 MB
    for i in ids:
        q.done(i)
    assert path.stat().st_size < 200 * KB
    assert not (tmp_path / "uploads.db-wal").exists() or (tmp_path / "uploads.db-wal").stat().st_size < 200 * KB
    q.close()


def test_fresh_file_settings(tmp_path: Path):
    opened(tmp_path / "uploads.db").close()
    c = sqlite3.connect(tmp_path / "uploads.db")
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert c.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL
    assert c.execute("PRAGMA user_version").fetchone()[0] == uploaddb.SCHEMA_VERSION
    c.close()


def test_the_loops_wrapper(tmp_path: Path):
    async def main() -> None:
        log = UploadLog(tmp_path / "uploads.db", max_mb=10)
        assert await log.open()
        ids = [await log.put(item(i)) for i in range(3)]
        assert log.stats().queued == 3 and log.stats().oldest_captured_at == T0
        assert await log.attempt(ids[0], "HTTP 502")  # type: ignore[arg-type]
        first = await log.oldest()
        assert first is not None and first.id == ids[0] and first.attempts == 1
        assert await log.done(ids[0])  # type: ignore[arg-type]
        assert [x.id for x in await log.peek(5)] == ids[1:]
        await asyncio.sleep(0.05)
        assert log.stats().queued == 2
        with pytest.raises(ValueError):
            await log.put(item(9, metadata={"x": object()}))
        await log.close()
        # Without a usable folder: the agent carries on without the queue.
        none = UploadLog(tmp_path / "missing" / "uploads.db")
        assert not await none.open()
        assert await none.put(item(0)) is None and await none.oldest() is None and none.stats().queued == 0
        await none.close()

    asyncio.run(main())
