"""memory.tune(): a large buffer, once freed, goes back to the kernel, where glibc's
defaults would keep it in the heap. In a fresh interpreter each (malloc settings
are process-wide)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from edge_agent import memory

PROBE = textwrap.dedent("""
    import json, os, sys
    from edge_agent import memory
    def anon():
        with open(f"/proc/{os.getpid()}/smaps_rollup") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("Anonymous:")) / 1024
    tuned = memory.tune()
    before = anon()
    for _ in range(3):  # a frame-sized buffer made and dropped, as for each frame taken
        buf = bytearray(8 << 20)
        del buf
    memory.release()
    print(json.dumps({"tuned": tuned, "kept_mb": anon() - before}))
""")


def probe(env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env}, capture_output=True,
                         text=True, timeout=30, check=True)
    return json.loads(out.stdout)


needs_glibc = pytest.mark.skipif(memory._libc() is None, reason="glibc's mallopt is not here")


@needs_glibc
def test_freed_frame_buffers_leave_the_heap():
    tuned = probe({})
    default = probe({"EDGE_AGENT_MALLOC": "glibc"})
    assert tuned["tuned"] and not default["tuned"]
    assert tuned["kept_mb"] < 1.0
    # the control: glibc's moving threshold keeps the later buffers in the heap
    assert default["kept_mb"] > 6.0


def test_no_op_without_glibc(monkeypatch):
    monkeypatch.setattr(memory, "_LIBC", None)
    assert memory.tune() is False
    memory.release()  # nothing to do, nothing raised
