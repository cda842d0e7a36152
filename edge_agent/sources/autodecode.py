"""``decode: auto`` for an FFmpeg source: when is decoding keyframes only enough?

Pure logic, free of OpenCV: the source (``opencv.py``) passes in what it reads of
each grabbed frame (its packet's key flag, its timestamp) and the clock; this
module learns, decides and watches, and asks for a reopen (``reopen_wanted``)
when the way to decode changes. The rules:

``decode: auto`` never decodes less than the camera needs: every open of a live
stream, and a file's first pass, decode every frame, and the keyframe interval
is learned meanwhile from the packets' key flags (``CAP_PROP_LRF_HAS_KEY_FRAME``),
so nothing is dropped while learning. Keyframes-only is turned on (by a reopen;
for a file, at its loop) only once the interval is known to be no longer than
the camera's look interval (1/fps): a stream after two intervals (their median),
a file after a whole pass (its longest gap, its tail included), so a file is
never shortened. Keyframes-only frames are at most one keyframe interval old,
and a live stream whose keyframes later come further apart (a "smart codec"
stretching its GOP on a still scene), or a camera set to look more often
(``set/fps``), goes back to decoding every frame. Frames without timestamps
that move (raw H.264 over ``tcp://``, as ``rpicam-vid --listen`` serves it) are
timed by the clock, over more intervals, the longest deciding. Keyframes-only
is never chosen where a keyframe twice as late as usual would miss the read
timeout (``stall_timeout``): that return to every frame would read as an outage.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

log = logging.getLogger(__name__)

LEARN_GAPS = 2  # keyframe intervals a live stream is timed over before ``auto`` decides (their median)
CLOCK_GAPS = 4  # the same without frame timestamps, by the clock: more of them, and the longest decides
STALL_SHARE = 0.45  # keyframes-only only while twice the interval fits in the read timeout (stall_timeout)
AUTO_MARGIN = 1.05  # keyframes-only when the interval is at most 5 % over the look interval
TAIL_SLACK = 0.5  # s: a file's frames after its last key flag also hold the decoder's few frames of delay
TOO_FAR = 2.0  # keyframes-only: a gap over this many intervals (and looks) goes back to every frame


def auto_keyframes(keyframe_interval: float | None, look_interval: float, stall_timeout: float = math.inf) -> bool:
    """``decode: auto``: keyframes only when the camera looks no more often than keyframes
    come, and a keyframe twice as late as usual (an encoder stretching its GOP) would
    still come within the read timeout, so the return to every frame is a reopen, not
    an outage (pure). None: no second keyframe seen in time: the interval is too long."""
    return (keyframe_interval is not None and 0 < keyframe_interval <= look_interval * AUTO_MARGIN
            and keyframe_interval <= STALL_SHARE * stall_timeout)


def file_interval(keys: list[float], end: float | None) -> float | None:
    """A file's keyframe interval for ``auto``, from one whole pass decoded frame by
    frame (pure): the longest gap between the positions (s) of the key flags seen,
    and from the last one to the end of the file (less the decoder's delay, which
    makes a flag show a few frames early). None: fewer than two keyframes were seen
    (they are as far apart as the file is long): every frame is decoded."""
    if len(keys) < 2:
        return None
    gaps = [b - a for a, b in zip(keys, keys[1:])]
    if end is not None:
        gaps.append(max(0.0, end - keys[-1] - TAIL_SLACK))
    return max(gaps)


def stream_interval(gaps: list[float], timed: bool = True) -> float:
    """A live stream's keyframe interval (pure): from frame timestamps, the median of
    the gaps, so one odd gap does not decide; by the clock (a stream without
    timestamps, e.g. raw H.264 over tcp://), the longest: arrival times are only
    ever shortened by a burst of buffered frames, never lengthened by it."""
    ordered = sorted(gaps)
    return ordered[len(ordered) // 2] if timed else ordered[-1]


class AutoDecode:
    """One source's ``decode: auto`` state: what it learned and chose, and the
    keyframes timed so far (this open, or this pass of a file).

    The source calls :meth:`learn` for each frame grabbed while every frame is
    decoded and nothing is chosen yet, :meth:`watch` for each (key)frame while
    keyframes only are read, :meth:`decide` at the end of a file's first pass, and
    :meth:`restart` / :meth:`rewound` at each open / rewind. ``ms`` is the grabbed
    frame's timestamp as FFmpeg gives it (None: no capture open). ``name``: the
    camera's, for the log."""

    def __init__(self, name: str, *, is_file: bool, look_interval: Callable[[], float], stall_timeout: float,
                 clock: Callable[[], float]):
        self.name = name
        self.is_file = is_file
        self.stall_timeout = stall_timeout
        self._look_interval = look_interval
        self._clock = clock
        self.choice: bool | None = None  # keyframes only? (None: not learned yet)
        self.learned: float | None = None  # the keyframe interval, s (None: unknown or too long)
        self.reopen_wanted = False  # the way to decode changes: the source is to be reopened
        self._keys: list[float] = []  # learning: times of the key flags seen (this open, or pass)
        self._last_key: float | None = None  # keyframes only: when the last keyframe came
        self._started: float | None = None  # when this open's (or pass's) first frame came
        self._timed: bool | None = None  # this open's frames carry timestamps that move (None: not known yet)
        self._last_ms: float | None = None  # the last timestamp seen (ms)

    def restart(self) -> None:
        """A new open: nothing timed yet."""
        self._keys, self._last_key, self._started, self._timed, self._last_ms = [], None, None, None, None

    def rewound(self) -> None:
        """A file's new pass (a rewind): its keyframes are timed afresh."""
        self._keys, self._started, self._timed, self._last_ms = [], None, None, None

    def _end(self, pos: float | None, fps: float | None) -> float | None:
        """The end of a file, on the timeline keyframes were timed on (s), when known,
        from the position (s) of its last frame and its frame rate."""
        if self._timed is False:
            return self._clock()
        return pos + 1 / fps if pos is not None and fps else pos

    def decide_file(self, pos: float | None, fps: float | None) -> None:
        """A file's first pass is over (decoded frame by frame): decide from all its gaps."""
        self.decide(file_interval(self._keys, self._end(pos, fps)))

    def _now(self, ms: float | None) -> float:
        """The grabbed frame's timestamp (s), else the clock. Timestamps, not arrival
        times: FFmpeg hands over the seconds of stream it read while probing a live
        stream in a burst, and a busy machine makes arrivals uneven. A source whose
        timestamps do not move (raw H.264, over tcp:// or in a file: every frame at 0)
        is timed by the clock for the rest of this open, and what was timed so far
        is forgotten."""
        if self._timed is not False and ms is not None:
            if math.isfinite(ms) and ms >= 0 and (self._last_ms is None or ms > self._last_ms):
                if self._last_ms is not None:
                    self._timed = True  # two frames, and time moved
                self._last_ms = ms
                return ms / 1000
            self._timed = False
            self._keys, self._started, self._last_key = [], None, None
            log.debug("%s: frames without moving timestamps: keyframes are timed by the clock", self.name)
        return self._clock()

    def learn(self, key: bool, ms: float | None) -> None:
        """Every frame is decoded while learning; the frames whose packet is a keyframe
        are timed. A live stream decides after ``LEARN_GAPS`` intervals, or as soon as
        one interval is clearly too long (it would decide so anyway); a file decides
        at the end of the pass (``decide_file``), having seen every gap."""
        at = self._now(ms)  # never earlier than the last (timestamps that do not move give way to the clock)
        if self._started is None:
            self._started = at  # the first frame timed, on this timeline
        if self.is_file:
            if key:
                self._keys.append(at)
            return
        look = self._look_interval() * AUTO_MARGIN
        since = self._keys[-1] if self._keys else self._started
        if at - since > TOO_FAR * look + 1.0:
            self.decide(None)  # no keyframe for that long: keyframes only would miss frames
            return
        if not key:
            return
        self._keys.append(at)
        gaps = [b - a for a, b in zip(self._keys, self._keys[1:])]
        timed = self._timed is not False
        if len(gaps) >= (LEARN_GAPS if timed else CLOCK_GAPS):
            self.decide(stream_interval(gaps, timed))

    def watch(self, ms: float | None) -> None:
        """Keyframes only: each grab is a keyframe. The camera now looking more often
        than they come (``set/fps``), or, on a live stream, one keyframe much later
        than the interval learned (the encoder stretched its GOP): every frame is
        decoded again (a reopen; a file starts its pass again), and a stream learns
        the interval anew."""
        look = self._look_interval()
        if self.learned is not None and not auto_keyframes(self.learned, look, self.stall_timeout):
            log.info("%s: a look every %.1f s now, keyframes every %.1f s: decoding every frame",
                     self.name, look, self.learned)
            self.choice = False if self.is_file else None
            self.reopen_wanted = True
            return
        if self.is_file:
            return  # the same file at every pass: its gaps were all measured
        at = self._now(ms)
        last, self._last_key = self._last_key, at
        if last is None or self.learned is None:
            return
        gap = at - last
        if gap > TOO_FAR * max(self.learned, look):
            log.info("%s: a keyframe %.1f s after the last (they came every %.1f s): decoding every frame "
                     "until the interval is learned again", self.name, gap, self.learned)
            self.choice, self.learned = None, None
            self.reopen_wanted = True

    def decide(self, interval: float | None) -> None:
        look = self._look_interval()
        if interval is not None and interval <= 0:
            interval = None  # keyframes at one instant: no interval at all
        keep = auto_keyframes(interval, look, self.stall_timeout)
        self.learned, self.choice = interval, keep
        if keep:
            log.info("%s: keyframes every %.1f s, a look every %.1f s: decoding keyframes only",
                     self.name, interval, look)
            self.reopen_wanted = True  # a reopen reads keyframes only
        else:
            what = f"every {interval:.1f} s" if interval is not None else "too far apart, or none"
            log.info("%s: keyframes %s, a look every %.1f s: decoding every frame", self.name, what, look)
