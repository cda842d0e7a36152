#!/usr/bin/env python3
"""A stand-in for ``rpicam-vid`` in tests: records its argv, streams MJPEG.

A test installs it first on PATH as ``rpicam-vid`` with ``install(directory)``,
which writes a small wrapper whose ``#!`` line is this interpreter (the venv's
python, which has OpenCV) and which runs this file.

Run as rpicam-vid, it writes its argv as JSON to the file named by
``FAKE_RPICAM_ARGS`` (if set), then writes JPEGs of one colour
(``FAKE_RPICAM_COLOR``: red, green, blue, white or black; red by default) at the
``--width``/``--height``/``--framerate`` it was given to stdout until killed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

COLOURS = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0),
           "white": (255, 255, 255), "black": (0, 0, 0)}


def install(directory: Path, name: str = "rpicam-vid") -> Path:
    """An executable ``name`` in ``directory`` that runs this script with this
    interpreter; put ``directory`` first on PATH to use it."""
    path = Path(directory) / name
    path.write_text(f"#!{sys.executable}\n"
                    "import runpy, sys\n"
                    f"sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})\n"
                    f"runpy.run_path({str(Path(__file__).resolve())!r}, run_name='__main__')\n")
    path.chmod(0o755)
    return path


def option(argv: list[str], name: str, default: str) -> str:
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else default


def main(argv: list[str]) -> int:
    record = os.environ.get("FAKE_RPICAM_ARGS")
    if record:
        Path(record).write_text(json.dumps(argv))
    import cv2
    import numpy as np

    width = int(option(argv, "--width", "640"))
    height = int(option(argv, "--height", "480"))
    fps = float(option(argv, "--framerate", "30"))
    colour = COLOURS[os.environ.get("FAKE_RPICAM_COLOR", "red")]
    ok, data = cv2.imencode(".jpg", np.full((height, width, 3), colour, np.uint8))
    if not ok:
        return 1
    frame = data.tobytes()
    print(f"fake rpicam-vid: {width}x{height} at {fps:g} fps", file=sys.stderr, flush=True)
    out = sys.stdout.buffer
    start = time.monotonic()
    n = 0
    try:
        while True:
            out.write(frame)
            out.flush()
            n += 1
            time.sleep(max(0.0, start + n / fps - time.monotonic()))
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
