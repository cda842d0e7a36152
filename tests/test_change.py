"""The change detector on synthetic, camera-like 640x480 frames.

A scene is a float "radiance" picture (gradients, coloured rectangles, fine
texture); a capture adds sensor noise (sigma 8), optional gain/offset (lighting,
auto-exposure) and JPEG compression. Every random draw is seeded."""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import cv2
import numpy as np
import pytest

from edge_agent.change import THUMB_SIDE, ChangeDetector, ignore_mask, thumbnail
from edge_agent.config import ChangeConfig

W, H = 640, 480
THRESHOLD = ChangeConfig().threshold
CLOCK_AT = (10, 8)  # top left of the 120x20 timestamp overlay
CLOCK_BOX = (CLOCK_AT[0] / W, CLOCK_AT[1] / H, 120 / W, 20 / H)  # x, y, w, h fractions
LED_AT = (560, 60)


@lru_cache(maxsize=None)
def scene(seed: int = 1) -> np.ndarray:
    """A textured background as float32 BGR radiance (read-only)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.empty((H, W, 3), np.float32)
    for c in range(3):
        img[..., c] = rng.uniform(80, 170) + rng.uniform(-50, 50) * xx / W + rng.uniform(-50, 50) * yy / H
    for _ in range(25):
        x, y = int(rng.integers(0, W - 20)), int(rng.integers(0, H - 20))
        w, h = int(rng.integers(15, 200)), int(rng.integers(15, 150))
        colour = rng.uniform(20, 235) + rng.uniform(-30, 30, 3)  # brightness, then a tint
        cv2.rectangle(img, (x, y), (x + w, y + h), colour.tolist(), -1)
    for _ in range(6):
        p1 = (int(rng.integers(0, W)), int(rng.integers(0, H)))
        p2 = (int(rng.integers(0, W)), int(rng.integers(0, H)))
        cv2.line(img, p1, p2, rng.uniform(20, 235, 3).tolist(), int(rng.integers(1, 4)))
    texture = cv2.GaussianBlur(rng.normal(0, 14, (H, W)).astype(np.float32), (0, 0), 1.2)
    img += texture[..., None]
    # The LED's dark housing, so the LED blinks against a fixed background.
    cv2.rectangle(img, (LED_AT[0] - 15, LED_AT[1] - 10), (LED_AT[0] + 15, LED_AT[1] + 10), (30, 30, 30), -1)
    img = np.clip(img, 5, 250)
    img.setflags(write=False)
    return img


def capture(radiance: np.ndarray, seed: int, *, gain: float = 1.0, offset: float = 0.0,
            noise: float = 8.0, quality: int | None = 80) -> np.ndarray:
    """What the camera delivers: exposure, sensor noise, JPEG (decoded back to BGR)."""
    rng = np.random.default_rng(seed)
    img = radiance * gain + offset + rng.normal(0, noise, radiance.shape).astype(np.float32)
    frame = np.clip(img, 0, 255).astype(np.uint8)
    if quality is not None:
        frame = cv2.imdecode(jpeg(frame, quality), cv2.IMREAD_COLOR)
    return frame


def jpeg(frame: np.ndarray, quality: int = 85) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf


def luma(radiance: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> float:
    patch = radiance[y1:y2, x1:x2].reshape(-1, 3).mean(axis=0)
    return float(patch @ np.array([0.114, 0.587, 0.299]))


def person(radiance: np.ndarray, cx: int = 320, cy: int = 260) -> np.ndarray:
    """A person-sized blob: an ellipse of 15 % of the frame, dark clothes."""
    out = radiance.copy()
    cv2.ellipse(out, (cx, cy), (75, 195), 0, 0, 360, (90, 60, 40), -1)
    cv2.circle(out, (cx, cy - 150), 30, (120, 150, 190), -1)  # head
    return out


def car(radiance: np.ndarray) -> np.ndarray:
    out = radiance.copy()
    cv2.rectangle(out, (180, 330), (440, 450), (185, 185, 180), -1)  # body: 10 % of the frame
    cv2.rectangle(out, (230, 290), (390, 335), (60, 50, 50), -1)  # windows
    for x in (230, 390):
        cv2.circle(out, (x, 450), 22, (20, 20, 20), -1)
    return out


def door(radiance: np.ndarray, open_: bool) -> np.ndarray:
    """A door of 14 % of the frame: brown when shut, the dark room behind when open."""
    out = radiance.copy()
    x1, y1, x2, y2 = 420, 140, 560, 440
    if open_:
        out[y1:y2, x1:x2] = (28, 28, 34)
        cv2.rectangle(out, (x1 + 20, y1 + 120), (x1 + 60, y2), (45, 45, 50), -1)  # something inside
    else:
        out[y1:y2, x1:x2] = (40, 75, 115)
        cv2.circle(out, (x2 - 18, (y1 + y2) // 2), 6, (140, 170, 190), -1)  # handle
    return out


def led(radiance: np.ndarray, on: bool) -> np.ndarray:
    out = radiance.copy()
    if on:
        cv2.rectangle(out, (LED_AT[0] - 5, LED_AT[1] - 5), (LED_AT[0] + 4, LED_AT[1] + 4), (120, 130, 255), -1)
    return out


def clock(frame: np.ndarray, text: str) -> np.ndarray:
    """A camera's timestamp overlay (burnt into the delivered frame): white digits,
    black outline, in a 120x20 box."""
    out = frame.copy()
    org = (CLOCK_AT[0] + 2, CLOCK_AT[1] + 16)
    cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def with_clock(radiance: np.ndarray, seed: int, text: str, quality: int = 80) -> np.ndarray:
    overlaid = clock(capture(radiance, seed, quality=None), text)
    return cv2.imdecode(jpeg(overlaid, quality), cv2.IMREAD_COLOR)


class Case(NamedTuple):
    ref: np.ndarray
    cur: np.ndarray
    fires: bool
    ignore: tuple = ()
    region: tuple | None = None


def _cases() -> dict[str, Case]:
    s = scene(1)
    ref = capture(s, 100)
    return {
        # --- must not fire
        "sensor noise": Case(capture(s, 1, quality=None), capture(s, 2, quality=None), False),
        "jpeg q90 -> q60": Case(capture(s, 1, quality=90), capture(s, 2, quality=60), False),
        "dusk: 60% darker": Case(ref, capture(s, 3, gain=0.4), False),
        "auto-exposure brighter": Case(ref, capture(s, 4, gain=1.3, offset=-25), False),
        "auto-exposure darker": Case(ref, capture(s, 5, gain=0.7, offset=20), False),
        "LED blink": Case(capture(led(s, False), 6), capture(led(s, True), 7), False),
        "clock, ignore box": Case(with_clock(s, 8, "08:59:59"), with_clock(s, 9, "09:00:00"), False,
                                  ignore=(CLOCK_BOX,)),
        "clock, no ignore box": Case(with_clock(s, 8, "08:59:59"), with_clock(s, 9, "09:00:00"), False),
        "region: person outside": Case(ref, capture(person(s, cx=150), 10), False, region=(0.5, 0.0, 1.0, 1.0)),
        # --- must fire
        "person enters (15%)": Case(ref, capture(person(s), 11), True),
        "car enters (10%)": Case(ref, capture(car(s), 12), True),
        "door opens": Case(capture(door(s, False), 13), capture(door(s, True), 14), True),
        "scene change": Case(ref, capture(scene(2), 15), True),
        "3% patch, contrast 60": Case(ref, capture(contrasting_patch(s, 100, 300, 196, 396), 16), True),
        "2% patch, contrast 60": Case(ref, capture(contrasting_patch(s, 100, 300, 178, 378), 17), True),
        "region: person inside": Case(ref, capture(person(s, cx=480), 18), True, region=(0.5, 0.0, 1.0, 1.0)),
        "person enters at dusk": Case(ref, capture(person(s), 19, gain=0.4), True),
    }


def contrasting_patch(radiance: np.ndarray, x1: int, y1: int, x2: int, y2: int,
                      contrast: float = 60) -> np.ndarray:
    """A flat grey patch ``contrast`` grey levels away from the mean brightness there."""
    out = radiance.copy()
    level = luma(radiance, x1, y1, x2, y2)
    out[y1:y2, x1:x2] = level + contrast if level + contrast <= 240 else level - contrast
    return out


@lru_cache(maxsize=None)
def cases() -> dict[str, Case]:
    return _cases()


def measure(case: Case) -> float:
    det = ChangeDetector(THRESHOLD, case.ignore, case.region)
    det.set_reference(thumbnail(case.ref, case.region))
    return det.share(thumbnail(case.cur, case.region))


# ----------------------------------------------------------------------- outcomes

QUIET = [
    "sensor noise", "jpeg q90 -> q60", "dusk: 60% darker", "auto-exposure brighter", "auto-exposure darker",
    "LED blink", "clock, ignore box", "clock, no ignore box", "region: person outside"]
FIRES = ["person enters (15%)", "car enters (10%)", "door opens", "scene change", "3% patch, contrast 60",
         "2% patch, contrast 60", "region: person inside", "person enters at dusk"]


@pytest.mark.parametrize("name", QUIET)
def test_does_not_fire(name):
    case = cases()[name]
    assert not case.fires
    assert measure(case) < THRESHOLD / 2  # with a margin below the default threshold


@pytest.mark.parametrize("name", FIRES)
def test_fires(name):
    case = cases()[name]
    assert case.fires
    assert measure(case) >= 2 * THRESHOLD  # with a margin above the default threshold


def test_share_tracks_the_changed_area():
    """A person of 15 % of the frame is 10-20 % of the picture, not all of it: the
    lighting fit is not thrown off by the change itself."""
    assert 0.10 <= measure(cases()["person enters (15%)"]) <= 0.20
    assert 0.10 <= measure(cases()["door opens"]) <= 0.20
    assert 0.02 <= measure(cases()["2% patch, contrast 60"]) <= 0.04


def test_every_case_is_covered():
    assert sorted(QUIET + FIRES) == sorted(cases())


@pytest.mark.parametrize("name", QUIET + FIRES)
def test_reduced_greyscale_jpeg_decode_decides_the_same(name):
    """An MJPEG frame decoded at 1/8 size in greyscale gives the same decision as
    the full BGR decode of the same JPEG."""
    case = cases()[name]
    ref, cur = jpeg(case.ref), jpeg(case.cur)
    shares = []
    for flag in (cv2.IMREAD_COLOR, cv2.IMREAD_REDUCED_GRAYSCALE_8):
        det = ChangeDetector(THRESHOLD, case.ignore, case.region)
        det.set_reference(thumbnail(cv2.imdecode(ref, flag), case.region))
        shares.append(det.share(thumbnail(cv2.imdecode(cur, flag), case.region)))
    full, reduced = shares
    assert (full >= THRESHOLD) == (reduced >= THRESHOLD) == case.fires
    assert abs(full - reduced) < 0.01


def test_thumbnail_of_full_and_reduced_decode_nearly_equal():
    buf = jpeg(cases()["sensor noise"].ref)
    full = thumbnail(cv2.imdecode(buf, cv2.IMREAD_COLOR), None)
    reduced = thumbnail(cv2.imdecode(buf, cv2.IMREAD_REDUCED_GRAYSCALE_8), None)
    assert full.shape == reduced.shape == (48, 64)
    assert np.abs(full.astype(int) - reduced.astype(int)).max() <= 2


# ----------------------------------------------------------------------- thumbnail

def test_thumbnail_shape_and_type():
    frame = capture(scene(1), 1)
    t = thumbnail(frame, None)
    assert t.dtype == np.uint8 and t.shape == (48, 64) and max(t.shape) == THUMB_SIDE
    assert thumbnail(frame, (0.5, 0.0, 1.0, 1.0)).shape == (64, 43)  # a 320x480 crop
    assert thumbnail(frame[:30, :40], None).shape == (30, 40)  # never upscaled
    assert thumbnail(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), None).shape == (48, 64)
    assert abs(int(thumbnail(frame, None).mean()) - int(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).mean())) <= 1
    with pytest.raises(ValueError):
        thumbnail(np.zeros((10, 10, 4), np.uint8), None)


def test_thumbnail_of_a_region_is_the_crop():
    frame = np.zeros((H, W, 3), np.uint8)
    frame[:, W // 2:] = 200  # right half bright
    assert thumbnail(frame, (0.5, 0.0, 1.0, 1.0)).min() == 200
    assert thumbnail(frame, (0.0, 0.0, 0.5, 1.0)).max() == 0


# ----------------------------------------------------------------------- detector

def test_no_reference_shape_mismatch_and_reset():
    det = ChangeDetector(THRESHOLD)
    t = thumbnail(capture(scene(1), 1), None)
    assert not det.has_reference
    assert det.share(t) == 1.0 and det.changed(t)
    det.set_reference(t)
    assert det.has_reference
    assert det.share(t) == 0.0 and not det.changed(t)
    assert det.share(t[:, :40].copy()) == 1.0  # a different shape: changed
    det.reset()
    assert not det.has_reference and det.share(t) == 1.0


def test_everything_ignored_is_never_a_change():
    det = ChangeDetector(THRESHOLD, ignore=((0.0, 0.0, 1.0, 1.0),))
    det.set_reference(thumbnail(capture(scene(1), 1), None))
    assert det.share(thumbnail(capture(scene(2), 2), None)) == 0.0


def test_threshold_is_checked():
    with pytest.raises(ValueError):
        ChangeDetector(0.0)
    det = ChangeDetector(0.5)
    case = cases()["person enters (15%)"]
    det.set_reference(thumbnail(case.ref, None))
    assert not det.changed(thumbnail(case.cur, None))  # ~13 % < 50 %
    det.threshold = 0.05
    assert det.changed(thumbnail(case.cur, None))


def test_ignore_box_hides_a_change_that_fires_without_it():
    """Digit changes average out in a 64x48 thumbnail even with no box (see the
    clock cases); an overlay that appears as a solid caption bar (5 % of the frame)
    does fire, unless it is inside an ignore box."""
    s = scene(1)
    bar = (0.0, 0.9, 0.5, 0.1)  # x, y, w, h: the bottom left caption bar
    ref = capture(s, 1)
    cur = capture(s, 2, quality=None)
    cur[432:480, 0:320] = 0
    cv2.putText(cur, "MOTION 09:00:00", (8, 468), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
    assert measure(Case(ref, cur, True)) >= 2 * THRESHOLD
    assert measure(Case(ref, cur, False, ignore=(bar,))) == 0.0


def test_ignore_boxes_in_region_coordinates():
    region = (0.5, 0.5, 1.0, 1.0)  # bottom right quarter; thumbnail 64x48
    # A box in the middle of the region: frame x 0.625..0.875, y 0.625..0.875
    # -> region 0.25..0.75 both ways -> thumbnail x 16..48, y 12..36, plus the blur's 1 px.
    keep = ignore_mask((48, 64), ((0.625, 0.625, 0.25, 0.25),), region)
    ignored = np.argwhere(~keep)
    assert ignored.min(axis=0).tolist() == [11, 15] and ignored.max(axis=0).tolist() == [36, 48]
    # Outside the region: irrelevant. Straddling its edge: clipped to it.
    assert ignore_mask((48, 64), ((0.0, 0.0, 0.4, 0.4),), region).all()
    keep = ignore_mask((48, 64), ((0.4, 0.4, 0.2, 0.2),), region)  # frame 0.4..0.6 -> region 0..0.2
    ignored = np.argwhere(~keep)
    assert ignored.min(axis=0).tolist() == [0, 0] and ignored.max(axis=0).tolist() == [10, 13]
    # Without a region the box is in frame coordinates.
    keep = ignore_mask((48, 64), ((0.5, 0.5, 0.25, 0.25),), None)
    ignored = np.argwhere(~keep)
    assert ignored.min(axis=0).tolist() == [23, 31] and ignored.max(axis=0).tolist() == [36, 48]


def test_ignore_box_works_inside_a_region():
    """A change inside an ignore box in a region's corner does not fire; the same
    change fires when the box is elsewhere."""
    s = scene(1)
    region = (0.5, 0.5, 1.0, 1.0)
    x1, y1, x2, y2 = 500, 380, 620, 460  # inside the region: 5 % of the frame, 20 % of the region
    ref, cur = capture(s, 1), capture(contrasting_patch(s, x1, y1, x2, y2, 80), 2)
    box = (x1 / W, y1 / H, (x2 - x1) / W, (y2 - y1) / H)
    assert measure(Case(ref, cur, True, region=region)) >= 0.1
    assert measure(Case(ref, cur, False, ignore=(box,), region=region)) == 0.0
    elsewhere = (0.1, 0.1, box[2], box[3])  # outside the region: irrelevant
    assert measure(Case(ref, cur, True, ignore=(elsewhere,), region=region)) >= 0.1
