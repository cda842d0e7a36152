"""``edge-agent install-service``: the unit, a config skeleton, and what to do next."""

from __future__ import annotations

import os
import shutil
import sys
from importlib import resources
from pathlib import Path

UNIT_NAME = "edge-agent.service"
DEFAULT_EXE = "/opt/edge-agent/.venv/bin/edge-agent"

CONFIG_SKELETON = """\
# edge-agent config (see README.md). Check it as the service will read it:
#   sudo /opt/edge-agent/.venv/bin/edge-agent check --service -c /etc/edge-agent/config.yaml
api:
  url: https://classify.roboflow.com
  model: your-dataset/1                        # <dataset-slug>/<version>
  api_key_file: ${CREDENTIALS_DIRECTORY}/api_key  # systemd's LoadCredential= puts the key here
mqtt:
  host: localhost
  port: 1883
cameras:
  - name: door
    source: /dev/video0
    fps: 2
"""


def unit_text(exe: str) -> str:
    text = resources.files("edge_agent").joinpath("data", UNIT_NAME).read_text()
    return text.replace(DEFAULT_EXE, exe)


def this_exe() -> str:
    """The edge-agent script next to the running interpreter (the venv's)."""
    candidate = Path(sys.executable).with_name("edge-agent")
    if candidate.exists():
        return str(candidate.resolve().parent / "edge-agent") if candidate.is_symlink() else str(candidate)
    return shutil.which("edge-agent") or DEFAULT_EXE


def install(root: Path, exe: str, force: bool = False) -> list[str]:
    """Write the unit and the config skeleton under ``root``; return what was done."""
    done = []
    unit = root / "etc/systemd/system" / UNIT_NAME
    unit.parent.mkdir(parents=True, exist_ok=True)
    if unit.exists() and not force:
        done.append(f"kept {unit} (exists; --force replaces it)")
    else:
        unit.write_text(unit_text(exe))
        unit.chmod(0o644)
        done.append(f"wrote {unit}")
    conf_dir = root / "etc/edge-agent"
    conf_dir.mkdir(parents=True, exist_ok=True)
    conf_dir.chmod(0o750)
    conf = conf_dir / "config.yaml"
    if conf.exists():
        done.append(f"kept {conf} (exists)")
    else:
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "w") as f:
            f.write(CONFIG_SKELETON.replace(DEFAULT_EXE, exe))  # a path that exists on this machine
        conf.chmod(0o640)  # whatever the umask was
        done.append(f"wrote {conf} (mode 0640)")
    return done


def next_steps(root: Path) -> str:
    etc = Path("/") / "etc/edge-agent" if root == Path("/") else root / "etc/edge-agent"
    return (f"Edit {etc}/config.yaml (model, cameras, broker; the service reads it at start), then:\n"
            f"  1. sudo sh -c 'umask 077; cat > {etc}/api_key'     # paste the API key, then Ctrl-D\n"
            f"  2. sudo systemctl daemon-reload && sudo systemctl enable --now edge-agent\n"
            f"Watch it with: systemctl status edge-agent; journalctl -u edge-agent -f")
