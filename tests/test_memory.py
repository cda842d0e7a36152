"""memory.py: a frame-sized buffer made and dropped frame after frame is reused from
the heap (no page faults after the first), where a fixed 128 KiB mmap threshold
maps and faults it in every time; release() and the periodic trim hand freed heap
back to the kernel. Each probe in a fresh interpreter (malloc settings are
process-wide)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from edge_agent import memory

PROBE = textwrap.dedent("""
    import ctypes, json, os, resource, sys, time
    from edge_agent import memory
    what = sys.argv[1]
    def anon():
        with open(f"/proc/{os.getpid()}/smaps_rollup") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("Anonymous:")) / 1024
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    tuned = memory.tune(float(sys.argv[2]) if len(sys.argv) > 2 else None)
    if what == "fixed":  # the setting this module had before #23
        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    out = {"tuned": tuned}
    if what in ("frames", "fixed"):
        for _ in range(3):
            buf = bytearray(640 * 480 * 3)  # a 640x480 BGR frame, written all over
            del buf
        f0 = faults()
        for _ in range(20):
            buf = bytearray(640 * 480 * 3)
            del buf
        out["faults_per_frame"] = (faults() - f0) / 20
    else:
        buf = bytearray(16 << 20)  # mapped, then freed: glibc's thresholds rise to 16 MB (mmap) and 32 (trim)
        del buf
        before = anon()
        burst = [bytearray(3 << 20) for _ in range(4)]  # 12 MB of mid-sized blocks, now from the heap
        out["burst_mb"] = anon() - before
        del burst
        if what == "release":
            memory.release()
        elif what == "periodic":
            time.sleep(1.0)  # the trim thread's interval is 0.2 s here
        out["kept_mb"] = anon() - before
    print(json.dumps(out))
""")


def probe(*args: str, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], env={**os.environ, **(env or {})},
                         capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)


needs_glibc = pytest.mark.skipif(memory._libc() is None, reason="glibc's mallopt is not here")


@needs_glibc
def test_frame_sized_buffers_are_reused_not_faulted_in_each_time():
    tuned = probe("frames")
    assert tuned["tuned"]
    assert tuned["faults_per_frame"] < 5  # from the heap, its pages already there
    # the control: a fixed 128 KiB threshold maps each one afresh, 225 pages faulted in
    fixed = probe("fixed")
    assert fixed["faults_per_frame"] > 200


@needs_glibc
def test_release_hands_freed_heap_back():
    kept = probe("none")
    assert kept["burst_mb"] > 8.0
    assert kept["kept_mb"] > 8.0  # the control: glibc keeps what the burst freed
    released = probe("release")
    assert released["burst_mb"] > 8.0
    assert released["kept_mb"] < 4.0


@needs_glibc
def test_the_periodic_trim_hands_it_back_by_itself():
    trimmed = probe("periodic", "0.2")
    assert trimmed["burst_mb"] > 8.0
    assert trimmed["kept_mb"] < 4.0
    untrimmed = probe("periodic")  # no trim thread: the control
    assert untrimmed["kept_mb"] > 8.0


@needs_glibc
def test_glibc_defaults_by_environment():
    default = probe("release", env={"EDGE_AGENT_MALLOC": "glibc"})
    assert not default["tuned"]
    assert default["kept_mb"] > 8.0  # release() is a no-op then


def test_no_op_without_glibc(monkeypatch):
    monkeypatch.setattr(memory, "_LIBC", None)
    assert memory.tune() is False
    assert memory._trimmer is None  # no trim thread either
    memory.release()  # nothing to do, nothing raised
