"""The README's demo command does what it says (run here without its set-up step)."""

import subprocess
import sys

from tests.helpers import ROOT
from tools.standin_dataset import REASONS, by_reason, stored


def test_demo_prints_states_as_a_subscriber_sees_them():
    r = subprocess.run([sys.executable, "-m", "tools.demo", "--seconds", "7"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "mqtt  edge_agent/demo/availability  online" in r.stdout
    assert 'mqtt  edge_agent/demo/door/state  {"class":"red"' in r.stdout
    assert "mqtt  edge_agent/demo/door/result" in r.stdout
    assert "demo-key" not in r.stdout + r.stderr
    assert "API calls in" in r.stdout and "would have allowed" in r.stdout

    # Collection is on: the frames saved reached the stand-in's upload route, each
    # with its reason; the closing lines count them by reason from that folder.
    folder = ROOT / "demo-run" / "dataset"
    images = stored(folder)
    assert images, "no frame was saved for training:\n" + r.stdout[-3000:] + r.stderr[-3000:]
    reasons = by_reason(images)
    # The first state (red) is always decided within the run, and its deciding frame saved.
    assert "change" in reasons, reasons
    for image in images:
        assert image.project == "colours" and image.batch.startswith("edge-agent ")
        assert image.reason in REASONS and image.metadata["camera"] == "door"
        assert {"edge-agent", "door", image.reason, "demo", "colours-1"} <= set(image.tags), image.tags
    assert f"demo: {len(images)} frame(s) saved for training, filed by the stand-in in demo-run/dataset " in r.stdout
    for reason, count in reasons.items():
        assert f"{count:3d} {reason:10s} " in r.stdout
    assert "demo: asking for the last frame over MQTT: edge_agent/demo/door/collect" in r.stdout
