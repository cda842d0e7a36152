"""The README's demo command does what it says (run here without its set-up step)."""

import subprocess
import sys

from tests.helpers import ROOT


def test_demo_prints_states_as_a_subscriber_sees_them():
    r = subprocess.run([sys.executable, "-m", "tools.demo", "--seconds", "7"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "mqtt  edge_agent/demo/availability  online" in r.stdout
    assert 'mqtt  edge_agent/demo/door/state  {"class":"red"' in r.stdout
    assert "mqtt  edge_agent/demo/door/result" in r.stdout
    assert "demo-key" not in r.stdout + r.stderr
    assert "API calls in" in r.stdout and "would have allowed" in r.stdout
