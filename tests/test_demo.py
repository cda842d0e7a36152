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


async def test_the_closing_lines_count_what_the_stand_in_filed_by_reason(tmp_path):
    """The demo's summary, on uploads made over the real contract: the reason from the
    metadata, else from the tags; labels told apart by whether they were a prediction."""
    from tests.test_dataset_upload import KEY, annotate, jpeg, upload
    from tools.demo import saved_summary
    from tools.standin_api import StandinApi, ThreadedStandin

    folder = tmp_path / "dataset"
    with ThreadedStandin(StandinApi(api_key=KEY, dataset_dir=folder)) as api:
        sent = [("overruled", True), ("change", True), ("overruled", True), ("on_demand", False), ("uncertain", None)]
        for seed, (reason, guess) in enumerate(sent):
            meta = {"camera": "door", "reason": reason} if seed != 2 else {"camera": "door"}  # reason: tags only
            up = await upload(api, jpeg(seed=seed), tags=["edge-agent", "door", reason, "demo", "colours-1"],
                              metadata=meta)
            if guess is not None:
                await annotate(api, up.image_id, "red", prediction=guess)
        await upload(api, jpeg(seed=0))  # the same bytes again: a duplicate, filed once
    images = stored(folder)
    assert [i.reason for i in images] == [r for r, _ in sent]
    assert by_reason(images) == {"overruled": 2, "change": 1, "on_demand": 1, "uncertain": 1}
    lines = saved_summary(images, folder)
    assert lines[0] == (f"demo: 5 frame(s) saved for training, filed by the stand-in in {folder} "
                        "(3 labelled with the model's guess for you to review, 1 by a person):")
    assert lines[1].split()[:2] == ["2", "overruled"] and "did not follow" in lines[1]
    assert len(lines) == 5
    assert saved_summary([], folder) == [f"demo: no frame was saved for training (the stand-in's folder {folder} "
                                         "is empty)"]
