"""Camera-like generated scenes for the change gate (tests, bench, demo).

A scene is still most of the time: a textured background (gradients, shapes, a
shelf of boxes) with sensor noise on every frame, and a large "door" panel whose
colour is the class the stand-in API or a fake classifier sees (its colour
dominates the frame's mean). Events happen on a timeline: the panel changes
colour (a real class change), a dark passer-by walks across (the picture changes,
the class does not), the light fades (a global change), an LED blinks and a clock
overlay ticks (tiny changes). ``truth(t)`` is the class a perfect model would give.
The panel's colours, size and place can be chosen (an indicator that turns from
red to green at the same brightness), and the light's colour can step (a lamp of
another colour switched on: the whole picture changes at once). ``write`` makes
an MJPEG AVI, ``write_h264`` an H.264 MP4 with a keyframe a second, as IP
cameras send.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

COLOURS = {"red": (30, 30, 210), "green": (40, 190, 40), "blue": (200, 40, 30)}  # BGR


@dataclass
class Scene:
    width: int = 320
    height: int = 240
    fps: float = 10.0
    seconds: float = 100.0
    classes: list[tuple[float, str]] = field(default_factory=lambda: [(0, "red"), (30, "green"), (70, "blue")])
    passer: tuple[float, float] | None = (45.0, 48.0)  # walks across between these times
    fade: tuple[float, float, float] | None = (80.0, 95.0, 0.55)  # light goes to this factor
    led: bool = True  # a small LED blinking once a second
    clock: bool = True  # a timestamp overlay in the top-right corner, ticking every second
    noise: float = 4.0  # sensor noise, grey levels (sigma)
    seed: int = 7
    colours: dict[str, tuple[int, int, int]] = field(default_factory=lambda: dict(COLOURS))  # class -> panel BGR
    panel: tuple[float, float, float, float] = (0.25, 0.12, 0.85, 0.98)  # x1, y1, x2, y2 fractions (52 %)
    light: list[tuple[float, tuple[float, float, float]]] | None = None  # (from time, BGR gains of the light)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        w, h = self.width, self.height
        x = np.linspace(0, 1, w, dtype=np.float32)
        y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
        base = 90 + 60 * x[None, :] * 0.8 + 40 * y  # a lit wall: gradients
        bg = np.repeat(base[:, :, None], 3, axis=2)
        for _ in range(14):  # shelves, boxes, a window frame: texture for the eye and the gate
            x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
            x1, y1 = x0 + int(rng.integers(8, w // 4)), y0 + int(rng.integers(6, h // 5))
            bg[y0:y1, x0:x1] = rng.integers(50, 200)
        self._bg = np.clip(bg, 0, 255).astype(np.uint8)
        self._noise = [rng.normal(0, self.noise, (h, w, 1)).astype(np.float32) for _ in range(8)]
        x0, y0, x1, y1 = self.panel
        self._panel = (int(x0 * w), int(y0 * h), int(x1 * w), int(y1 * h))

    @property
    def frames(self) -> int:
        return int(self.seconds * self.fps)

    def truth(self, t: float) -> str:
        current = self.classes[0][1]
        for start, cls in self.classes:
            if t >= start:
                current = cls
        return current

    def changes(self) -> list[tuple[float, str]]:
        """(time, new class) of every real class change after the start."""
        return [(t, c) for t, c in self.classes[1:]]

    def frame(self, i: int) -> np.ndarray:
        t = i / self.fps
        w, h = self.width, self.height
        img = self._bg.copy()
        x0, y0, x1, y1 = self._panel
        img[y0:y1, x0:x1] = self.colours[self.truth(t)]
        cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), (20, 20, 20), 2)  # the door's frame
        if self.passer is not None and self.passer[0] <= t < self.passer[1]:
            p = (t - self.passer[0]) / (self.passer[1] - self.passer[0])
            cx = int(-0.15 * w + p * 1.3 * w)
            cv2.rectangle(img, (cx, int(0.2 * h)), (cx + int(0.18 * w), h), (45, 45, 45), -1)
        if self.led and int(t * 2) % 2 == 0:
            cv2.circle(img, (int(0.05 * w), int(0.9 * h)), max(1, w // 120), (255, 255, 255), -1)
        if self.clock:
            cv2.rectangle(img, (int(0.72 * w), 0), (w, int(0.07 * h)), (0, 0, 0), -1)
            cv2.putText(img, f"12:00:{int(t) % 60:02d}", (int(0.73 * w), int(0.06 * h)),
                        cv2.FONT_HERSHEY_PLAIN, max(0.6, w / 400), (255, 255, 255), 1)
        out = img.astype(np.float32)
        gains = self.light_at(t)
        if gains is not None:
            out *= np.array(gains, np.float32)
        if self.fade is not None and t >= self.fade[0]:
            p = min(1.0, (t - self.fade[0]) / (self.fade[1] - self.fade[0]))
            out *= 1 - p * (1 - self.fade[2])
        out += self._noise[i % len(self._noise)]
        return np.clip(out, 0, 255).astype(np.uint8)

    def light_at(self, t: float) -> tuple[float, float, float] | None:
        """The light's BGR gains at ``t`` (None: white light, as by default)."""
        current = None
        for start, gains in self.light or ():
            if t >= start:
                current = gains
        return current

    # The clock overlay's box, as change.ignore wants it (x, y, w, h fractions).
    CLOCK_BOX = (0.72, 0.0, 0.28, 0.07)

    def write(self, path: Path, quality: int = 85) -> Path:
        """The scene as an MJPEG AVI (what many cameras send), for the agent to play."""
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), self.fps, (self.width, self.height))
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, quality)
        try:
            for i in range(self.frames):
                writer.write(self.frame(i))
        finally:
            writer.release()
        return path


    def write_h264(self, path: Path, gop_seconds: float = 1.0) -> Path:
        """The scene as H.264 (x264, yuv420p, no B-frames) with a keyframe every
        ``gop_seconds``, as an IP camera sends it; made by ffmpeg from raw frames."""
        cmd = ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24",
               "-s", f"{self.width}x{self.height}", "-r", f"{self.fps:g}", "-i", "-",
               "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-bf", "0",
               "-g", str(max(1, round(self.fps * gop_seconds))), "-sc_threshold", "0", str(path)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
        assert proc.stdin is not None
        try:
            for i in range(self.frames):
                proc.stdin.write(self.frame(i).tobytes())
        finally:
            proc.stdin.close()
            if proc.wait(120) != 0:
                raise RuntimeError(f"ffmpeg failed making {path}")
        return path


def dominant(image: np.ndarray) -> tuple[str, float]:
    """What a colour-blind-to-everything-else "model" says: the dominant channel, and its share."""
    means = image.reshape(-1, 3).mean(axis=0) + 1e-6
    shares = means / means.sum()
    i = int(np.argmax(shares))
    return ("blue", "green", "red")[i], float(shares[i])
