import logging
import os
import shutil
import sqlite3
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.storage import eventdb, eventstore
from edge_agent.storage.event import Event
from edge_agent.storage.eventdb import StoreError
from edge_agent.storage.eventstore import EventStore

DAY = 86400.0
T0 = 1_700_000_000.0


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("edge_agent.storage.event") and r.levelno >= logging.WARNING]


def opened(path: Path, **kw) -> EventStore:
    s = EventStore(path, **kw)
    s.open()
    return s


def jpeg(w: int = 320, h: int = 240) -> bytes:
    img = np.random.default_rng(1).integers(0, 255, (h, w, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert ok
    return buf.tobytes()


def fake_jpeg(n: int) -> bytes:
    return b"\xff\xd8" + os.urandom(n - 2)  # incompressible, like a real JPEG


def test_fresh_database_settings(tmp_path: Path):
    s = opened(tmp_path / "events.db")
    s.close()
    c = sqlite3.connect(tmp_path / "events.db")
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert c.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL
    assert c.execute("PRAGMA user_version").fetchone()[0] == eventdb.SCHEMA_VERSION
    c.close()


def test_ids_increase_across_reopen_and_payload(tmp_path: Path):
    path = tmp_path / "events.db"
    s = opened(path)
    e1 = s.add("door", "open", 0.91234567, T0 + 0.12345, None)
    e2 = s.add("door", "closed", 0.8, T0 + 1, None)
    s.close()
    s = opened(path)
    e3 = s.add("door", "open", 0.7, T0 + 2, None)
    assert e1.id < e2.id < e3.id
    assert e1.payload() == {"id": e1.id, "camera": "door", "class": "open", "previous": None,
                            "confidence": 0.912346, "at": round(T0 + 0.12345, 3)}
    # Ids are never reused, even when the newest events are gone (AUTOINCREMENT).
    s.mark_delivered([e1.id, e2.id, e3.id])
    s.keep_days = 0
    s._clock = lambda: T0 + 10
    assert s.prune() == 3
    s.close()
    s = opened(path)
    assert s.add("door", "closed", 0.7, T0 + 3, None).id > e3.id
    s.close()


def test_previous_continues_the_chain_across_reopen(tmp_path: Path):
    path = tmp_path / "events.db"
    s = opened(path)
    assert s.last_state("door") is None
    assert s.add("door", "open", 0.9, T0, None).previous is None
    assert s.add("gate", "closed", 0.9, T0 + 1, None).previous is None
    assert s.add("door", "closed", 0.9, T0 + 2, None).previous == "open"
    s.close()
    s = opened(path)
    assert s.last_state("door") == ("closed", T0 + 2)
    assert s.last_state("gate") == ("closed", T0 + 1)
    e = s.add("door", "ajar", 0.9, T0 + 3, None)
    assert e.previous == "closed" and e.payload()["previous"] == "closed"
    assert s.last_state("door") == ("ajar", T0 + 3)
    s.close()


def test_undelivered_in_order_and_mark_delivered(tmp_path: Path):
    s = opened(tmp_path / "events.db")
    ids = [s.add(f"cam{i % 3}", f"c{i}", 0.5, T0 + i, None).id for i in range(10)]
    assert [e.id for e in s.undelivered()] == ids
    assert [e.id for e in s.undelivered(limit=3)] == ids[:3]
    s.mark_delivered([ids[0], ids[2], 999_999])  # an unknown id changes nothing
    s.mark_delivered([ids[0]])  # twice: still fine
    assert [e.id for e in s.undelivered()] == [i for i in ids if i not in (ids[0], ids[2])]
    assert s.stats()["undelivered"] == 8 and s.stats()["events"] == 10
    assert s.history(limit=1000)[-1].delivered is True  # the oldest one
    s.mark_delivered(ids)
    assert s.undelivered() == [] and s.stats()["undelivered"] == 0
    s.close()
    s = opened(tmp_path / "events.db")
    assert s.undelivered() == [] and s.stats()["undelivered"] == 0
    s.close()


def test_sigkill_keeps_every_committed_event(tmp_path: Path):
    path = tmp_path / "events.db"
    a = opened(path)
    ids = [a.add("door", f"c{i}", 0.5, T0 + i, fake_jpeg(1000)).id for i in range(20)]
    a.mark_delivered(ids[:5])
    # No close(): a second process opens the same file, as after a SIGKILL.
    b = opened(path)
    assert [e.id for e in b.undelivered()] == ids[5:]
    assert b.last_state("door") == ("c19", T0 + 19)
    assert b.add("door", "x", 0.5, T0 + 99, None).id > ids[-1]
    assert b.thumbnail(ids[-1]) is not None
    b.close()
    a.close()


def test_power_cut_copy_of_db_and_wal_keeps_every_committed_event(tmp_path: Path):
    path = tmp_path / "events.db"
    s = opened(path)
    ids = [s.add("door", f"c{i}", 0.5, T0 + i, None).id for i in range(30)]
    s.mark_delivered(ids[:10])
    # Mid-run, while the connection is open: what is on the card at a power cut.
    assert (tmp_path / "events.db-wal").stat().st_size > 0
    cut = tmp_path / "cut"
    cut.mkdir()
    shutil.copyfile(path, cut / "events.db")
    shutil.copyfile(tmp_path / "events.db-wal", cut / "events.db-wal")  # no -shm: it is rebuilt
    c = opened(cut / "events.db")
    assert [e.id for e in c.undelivered()] == ids[10:]
    assert c.stats()["events"] == 30
    assert c.last_state("door") == ("c29", T0 + 29)
    assert c.add("door", "y", 0.5, T0 + 99, None).previous == "c29"
    c.close()
    s.close()


def test_max_pending_drops_the_oldest_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    s = opened(tmp_path / "events.db", max_pending=5)
    ids = [s.add("door", f"c{i}", 0.5, T0 + i, None).id for i in range(50)]
    assert [e.id for e in s.undelivered()] == ids[-5:]
    assert s.dropped == 45 and s.stats()["dropped"] == 45 and s.stats()["undelivered"] == 5
    msgs = warnings(caplog)
    assert len(msgs) == 1 and "the oldest were dropped" in msgs[0]
    hist = s.history(limit=1000)
    assert len(hist) == 50 and not any(e.delivered for e in hist)  # dropped events stay in the history
    # After a restart the bound still holds (the pending count is read back).
    s.close()
    s = opened(tmp_path / "events.db", max_pending=5)
    assert s.stats()["undelivered"] == 5
    s.add("door", "again", 0.5, T0 + 60, None)
    assert [e.id for e in s.undelivered()][0] == ids[-4]
    s.mark_delivered(e.id for e in s.undelivered())  # the broker is back: the episode ends
    caplog.clear()
    for i in range(10):
        s.add("door", f"d{i}", 0.5, T0 + 100 + i, None)
    assert len(warnings(caplog)) == 1  # a new episode: one more warning
    s.close()


def _random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def _truncated(path: Path) -> None:
    s = opened(path)
    for i in range(300):
        s.add(f"cam{i % 4}", f"c{i}", 0.5, T0 + i, fake_jpeg(3000))
    s.close()
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 3)


def _garbage_pages(path: Path) -> None:
    _truncated(path)
    with open(path, "r+b") as f:
        f.seek(4096 * 3)
        f.write(os.urandom(4096 * 5))


def _directory(path: Path) -> None:
    path.mkdir()
    (path / "x").write_text("x")


def _wrong_schema(path: Path) -> None:
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE foo (a, b)")
    c.commit()
    c.close()


def _wrong_columns(path: Path) -> None:
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, camera TEXT)")
    c.execute(f"PRAGMA user_version={eventdb.SCHEMA_VERSION}")
    c.commit()
    c.close()


def _newer_version(path: Path) -> None:
    s = opened(path)
    s.add("door", "open", 0.5, T0, None)
    s.close()
    c = sqlite3.connect(path)
    c.execute("PRAGMA user_version=99")
    c.commit()
    c.close()


@pytest.mark.parametrize("make, problem", [
    (_random_bytes, "cannot be read as a database"),
    (_truncated, ""),
    (_garbage_pages, ""),
    (_directory, "not a regular file"),
    (_wrong_schema, "schema version 0"),
    (_wrong_columns, "unexpected table"),
    (_newer_version, "schema version 99"),
])
def test_corrupt_database_is_moved_aside_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                          make, problem: str):
    path = tmp_path / "events.db"
    make(path)
    caplog.clear()
    s = opened(path, clock=lambda: T0)
    msgs = warnings(caplog)
    assert len(msgs) == 1, msgs
    assert str(path) in msgs[0] and problem in msgs[0]
    aside = [p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert f"events.db.corrupt-{int(T0)}" in aside
    e = s.add("door", "open", 0.5, T0, None)
    assert e.id == 1 and e.previous is None
    assert [x.id for x in s.undelivered()] == [1]
    s.close()
    assert len(warnings(caplog)) == 1
    s = opened(path)  # the fresh one opens cleanly afterwards
    assert s.stats()["events"] == 1 and len(warnings(caplog)) == 1
    s.close()


def test_corruption_found_while_running_moves_the_file_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    path = tmp_path / "events.db"
    s = opened(path, clock=lambda: T0)
    for i in range(300):
        s.add(f"cam{i % 4}", f"c{i}", 0.5, T0 + i, fake_jpeg(3000))
    conn = s._conn
    assert conn is not None
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    conn.execute("PRAGMA cache_size=1")  # so the damage is read from the card, not from memory
    with open(path, "r+b") as f:  # the card rots under the running agent
        f.seek(4096)
        f.write(os.urandom(4096 * 20))
    with pytest.raises(StoreError):
        for _ in range(3):
            s.history(limit=1000)
            s.add("cam0", "x", 0.5, T0, None)
    assert (tmp_path / f"events.db.corrupt-{int(T0)}").exists()
    e = s.add("cam0", "open", 0.5, T0, None)  # a fresh database, already open
    assert e.id == 1 and e.previous is None
    assert s.stats()["undelivered"] == 1
    assert sum("moved aside" in m for m in warnings(caplog)) == 1
    s.close()


def test_corrupt_twice_in_the_same_second_keeps_both(tmp_path: Path):
    path = tmp_path / "events.db"
    for _ in range(2):
        _random_bytes(path)
        opened(path, clock=lambda: T0).close()
    assert sorted(p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name) == \
        [f"events.db.corrupt-{int(T0)}", f"events.db.corrupt-{int(T0)}.1"]


def test_no_folder_raises_store_error_then_every_call_does(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    s = EventStore(tmp_path / "missing" / "events.db")
    with pytest.raises(StoreError):
        s.open()
    assert len(warnings(caplog)) == 1
    with pytest.raises(StoreError):
        s.add("door", "open", 0.5, T0, None)
    assert len(warnings(caplog)) == 1


def test_disk_full_and_read_only_are_store_errors_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    s = opened(tmp_path / "events.db")
    s.add("door", "open", 0.5, T0, None)
    conn = s._conn
    assert conn is not None
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")  # the disk is full
    for i in range(5):
        with pytest.raises(StoreError):
            s.add("door", f"c{i}", 0.5, T0 + i, fake_jpeg(50_000))
    conn.execute("PRAGMA query_only=ON")  # now read-only: another kind, one more line
    for i in range(5):
        with pytest.raises(StoreError):
            s.add("door", f"c{i}", 0.5, T0 + i, None)
    msgs = warnings(caplog)
    assert len(msgs) == 2 and "full" in msgs[0] and "readonly" in msgs[1].replace("read-only", "readonly")
    conn.execute("PRAGMA query_only=OFF")
    conn.execute("PRAGMA max_page_count=1073741823")
    e = s.add("door", "closed", 0.5, T0 + 9, None)
    assert e.previous == "open" and e.id == 2  # nothing half-written by the failures
    assert any("works again after 10 failures" in r.getMessage() for r in caplog.records)
    assert s.stats()["undelivered"] == 2
    s.close()


def test_history_filters_order_and_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    s = opened(tmp_path / "events.db")
    for i in range(20):
        s.add("door" if i % 2 else "gate", f"c{i}", 0.5, T0 + i, None)
    s.add("door", "late-clock", 0.5, T0 - 100, None)  # decided last, captured with an earlier clock
    h = s.history()
    assert [e.at for e in h] == sorted((e.at for e in h), reverse=True)
    assert h[0].cls == "c19" and h[-1].cls == "late-clock"
    assert {e.camera for e in s.history(camera="door")} == {"door"}
    assert len(s.history(camera="door")) == 11
    assert [e.cls for e in s.history(camera="gate", since=T0 + 10, until=T0 + 16)] == ["c14", "c12", "c10"]
    assert [e.cls for e in s.history(since=T0 + 17)] == ["c19", "c18", "c17"]
    assert [e.cls for e in s.history(limit=2)] == ["c19", "c18"]
    assert s.history(camera="nobody") == [] and s.history(limit=0) == []
    monkeypatch.setattr(eventstore, "MAX_LIMIT", 5)
    assert len(s.history(limit=10_000)) == 5
    assert s.history(camera="x" * 500) == []
    long = s.add("c" * 500, "k" * 500, 0.5, T0, None)
    assert len(long.camera) == 200 and len(long.cls) == 200
    assert s.history(camera="c" * 500)[0].id == long.id
    s.close()


def test_thumbnail_round_trip_and_refusals(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    s = opened(tmp_path / "events.db")
    thumb = jpeg()
    e = s.add("door", "open", 0.5, T0, thumb)
    assert e.has_thumbnail
    assert s.thumbnail(e.id) == thumb
    img = cv2.imdecode(np.frombuffer(s.thumbnail(e.id) or b"", np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (240, 320, 3)
    assert s.history()[0].has_thumbnail
    n = s.add("door", "closed", 0.5, T0 + 1, None)
    assert not n.has_thumbnail and s.thumbnail(n.id) is None and s.thumbnail(12345) is None
    big = s.add("door", "open", 0.5, T0 + 2, fake_jpeg(256 * 1024 + 1))
    png = s.add("door", "closed", 0.5, T0 + 3, b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    assert not big.has_thumbnail and not png.has_thumbnail and s.thumbnail(big.id) is None
    assert len(warnings(caplog)) == 1
    assert s.add("door", "open", 0.5, T0 + 4, fake_jpeg(256 * 1024)).has_thumbnail  # the limit itself is fine
    s.close()


def test_prune_by_days(tmp_path: Path):
    now = [T0]
    s = opened(tmp_path / "events.db", keep_days=14, clock=lambda: now[0])
    old = [s.add("door", f"old{i}", 0.5, T0 - 20 * DAY + i, fake_jpeg(2000)) for i in range(5)]
    new = [s.add("door", f"new{i}", 0.5, T0 - 1 * DAY + i, fake_jpeg(2000)) for i in range(5)]
    s.mark_delivered(e.id for e in old[:4] + new)  # old[4] is still undelivered
    assert s.prune() == 4
    left = {e.id for e in s.history(limit=100)}
    assert left == {old[4].id} | {e.id for e in new}
    assert all(s.thumbnail(e.id) is None for e in old[:4])
    assert s.thumbnail(old[4].id) is not None  # undelivered: never removed by age
    now[0] = T0 + 14 * DAY  # two weeks on: the "new" ones are old now
    assert s.prune() == 5
    assert [e.id for e in s.history()] == [old[4].id]
    assert s.prune() == 0
    s.close()


def test_prune_by_size_removes_the_oldest_and_keeps_undelivered(tmp_path: Path):
    path = tmp_path / "events.db"
    s = opened(path, max_mb=1, keep_days=3650, clock=lambda: T0)
    events = [s.add(f"cam{i % 2}", f"c{i}", 0.5, T0 + i, fake_jpeg(20_000)) for i in range(200)]
    s.mark_delivered(e.id for e in events[10:190])  # 10 oldest and 10 newest undelivered
    before = s.stats()["bytes"]
    assert before > 4_000_000
    removed = s.prune()
    st = s.stats()
    assert st["bytes"] <= 1024 * 1024, st
    assert st["events"] == 200 - removed and removed > 150
    left = [e.id for e in s.history(limit=1000)]
    delivered_left = sorted(i for i in left if events[10].id <= i <= events[189].id)
    assert delivered_left == [e.id for e in events[190 - len(delivered_left):190]]  # the oldest went first
    assert {e.id for e in s.undelivered()} == {e.id for e in events[:10] + events[190:]}
    assert all(s.thumbnail(e.id) is not None for e in events[190:])
    s.close()
    # The space is back on the file system, not just free inside the file.
    assert path.stat().st_size <= 1024 * 1024 + 65536
    assert not (tmp_path / "events.db-wal").exists() or (tmp_path / "events.db-wal").stat().st_size == 0


def test_prune_when_undelivered_alone_fill_the_cap_drops_their_thumbnails(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture):
    s = opened(tmp_path / "events.db", max_mb=0.5, clock=lambda: T0)
    events = [s.add("door", f"c{i}", 0.5, T0 + i, fake_jpeg(20_000)) for i in range(60)]
    assert s.prune() == 0
    assert s.stats()["bytes"] <= 512 * 1024
    assert [e.id for e in s.undelivered()] == [e.id for e in events]  # every event kept
    assert s.thumbnail(events[0].id) is None and s.thumbnail(events[-1].id) is not None
    assert warnings(caplog) == []
    s.max_mb = 0.01  # not even the rows fit: one warning, nothing removed
    assert s.prune() == 0 and s.prune() == 0
    assert len(warnings(caplog)) == 1 and "undelivered" in warnings(caplog)[0]
    assert len(s.undelivered()) == 60
    s.close()


def test_add_fsync_cost(tmp_path: Path):
    s = opened(tmp_path / "events.db")
    thumb = jpeg()
    times = []
    for i in range(200):
        t = time.perf_counter()
        s.add(f"cam{i % 4}", f"c{i}", 0.5, T0 + i, thumb)
        times.append(time.perf_counter() - t)
    s.close()
    print(f"\nadd() median {statistics.median(times) * 1000:.2f} ms, max {max(times) * 1000:.2f} ms "
          f"over 200 events with a {len(thumb)} byte thumbnail (synchronous=FULL)")


def test_event_is_frozen():
    e = Event(1, "door", "open", None, 0.5, T0, False, False)
    with pytest.raises(AttributeError):
        e.id = 2  # type: ignore[misc]


def test_the_state_decided_before_keeps_its_since_across_reopen(tmp_path: Path):
    """What a restart compares its first decided state with: the class and since when it holds."""
    path = tmp_path / "events.db"
    s = opened(path)
    assert s.decided_before("door") is None
    s.add("door", "open", 0.9, T0 + 2, None, since=T0 + 1)
    s.add("gate", "closed", 0.9, T0 + 5, None)  # no since given: the event's at
    s.close()
    s = opened(path)
    assert s.decided_before("door") == ("open", T0 + 1)
    assert s.decided_before("gate") == ("closed", T0 + 5)
    assert s.last_state("door") == ("open", T0 + 2)  # unchanged: the event's at
    with pytest.raises(ValueError):
        s.add("door", "open", 0.9, T0, None, since=float("nan"))
    s.close()


def test_a_database_of_the_version_before_gets_the_since_table_and_stays_readable_by_it(tmp_path: Path):
    path = tmp_path / "events.db"
    s = opened(path)
    s.add("door", "open", 0.9, T0 + 2, None, since=T0 + 1)
    s.close()
    c = sqlite3.connect(path)  # as the version before made it: no state_since table
    c.execute("DROP TABLE state_since")
    c.commit()
    c.close()
    s = opened(path)
    assert not list(tmp_path.glob("*.corrupt-*"))  # not moved aside
    assert s.decided_before("door") == ("open", T0 + 2)  # the best it knows: the event's at
    s.add("door", "closed", 0.9, T0 + 4, None, since=T0 + 3)
    s.close()
    # The version before writes last_state only: a since of an older event is not used.
    c = sqlite3.connect(path)
    c.execute("INSERT INTO events (camera, class, previous, confidence, at) VALUES ('door', 'ajar', 'closed', 0.9, ?)",
              (T0 + 6,))
    c.execute("UPDATE last_state SET class = 'ajar', at = ?, event_id = (SELECT MAX(id) FROM events)", (T0 + 6,))
    c.commit()
    c.close()
    s = opened(path)
    assert s.decided_before("door") == ("ajar", T0 + 6)
    s.close()
