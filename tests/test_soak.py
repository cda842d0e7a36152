"""The soak as a 90-s smoke: bench/soak.py at 10 classifications/s with every kind
of fault injected (API 500s, 429, hang, garbage, broker restart), then the hostile
replies in turn. It must end with RSS settled and no spike, no more descriptors or
threads than it started with, and exit 0."""

import subprocess
import sys

from tests.helpers import ROOT


def test_soak_smoke():
    r = subprocess.run([sys.executable, str(ROOT / "bench/soak.py"), "--duration", "65", "--fault-every", "10", "--events-phase", "12",
                        # a 32-s second half sees first-time allocations as a slope: the 10-minute soak
                        # holds the real 1 MB/min line
                        "--max-growth", "4",
                        "--warmup", "15"], capture_output=True, text=True, timeout=400)
    print(r.stdout[-3000:])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "broker restart" in r.stdout and "API garbage" in r.stdout  # every fault kind happened
    assert "soak: passed" in r.stdout
    assert "hostile replies: 50 MB body, gzip bomb" in r.stdout  # the hostile phase ran and held
    assert "events phase: " in r.stdout  # thousands of events on a long run; a couple of hundred here
