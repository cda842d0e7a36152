import cv2
import numpy as np
import pytest

from edge_agent.encode import (Scratch, decode_jpeg, halvings, jpeg_scale, prepare, prepare_with_preview, region_box,
                                 resize_for_api, shrink, target_size)


@pytest.mark.parametrize("w,h,longest,expected", [
    (1920, 1080, 416, (416, 234)),
    (1080, 1920, 416, (234, 416)),
    (640, 480, 416, (416, 312)),
    (416, 416, 416, (416, 416)),
    (320, 240, 416, (320, 240)),     # never upscaled
    (5000, 10, 416, (416, 1)),       # extreme aspect keeps at least 1 px
    (1, 1, 32, (1, 1)),
])
def test_target_size(w, h, longest, expected):
    assert target_size(w, h, longest) == expected


@pytest.mark.parametrize("w,h,longest", [(0, 10, 416), (10, -1, 416), (10, 10, 0)])
def test_target_size_rejects_nonsense(w, h, longest):
    with pytest.raises(ValueError):
        target_size(w, h, longest)


def test_target_size_keeps_aspect_within_rounding():
    for w, h in [(1280, 720), (2592, 1944), (1000, 333), (333, 1000)]:
        tw, th = target_size(w, h, 300)
        assert max(tw, th) == 300
        assert abs(tw / th - w / h) < 0.02 * (w / h) + 1 / min(tw, th)


def test_prepare_sends_a_jpeg_no_larger_than_the_limit():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, :, 2] = 255
    jpeg = prepare(frame, 200, 80)
    assert jpeg[:2] == b"\xff\xd8"
    back = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert back.shape[:2] == (150, 200)
    assert back[..., 2].mean() > 240 and back[..., 0].mean() < 15


def test_prepare_quality_changes_size():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    assert len(prepare(frame, 416, 30)) < len(prepare(frame, 416, 95))


@pytest.mark.parametrize("w,h,region,box", [
    (640, 480, (0.25, 0.5, 0.75, 1.0), (160, 240, 480, 480)),
    (640, 480, (0, 0, 1, 1), (0, 0, 640, 480)),
    (100, 100, (0.999, 0.999, 1.0, 1.0), (99, 99, 100, 100)),   # never empty
    (1920, 1080, (0.1, 0.1, 0.1001, 0.1001), (192, 108, 193, 109)),
])
def test_region_box(w, h, region, box):
    assert region_box(w, h, region) == box


def test_prepare_sends_only_the_region():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 320:] = (255, 0, 0)  # right half blue
    jpeg = prepare(frame, 416, 90, region=(0.5, 0.0, 1.0, 1.0))
    back = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert back.shape[:2] == (416, 277)  # a 320x480 crop, longest side 416
    assert back[..., 0].mean() > 240 and back[..., 2].mean() < 15


@pytest.mark.parametrize("w,h,region,expected", [
    (640, 480, None, 1),            # 320 < 416 and < 640 preview: no scaling
    (1280, 720, None, 2),           # 640 keeps the preview; 640 > 416
    (1920, 1080, None, 2),          # 480 would shrink the preview below 640
    (3840, 2160, None, 4),          # 960: enough for both
    (5120, 2880, None, 8),
    (320, 240, None, 1),            # small frames are never scaled
    (1920, 1080, (0.0, 0.0, 0.25, 0.25), 1),   # a 480x270 region needs every pixel for 416
    (3840, 2160, (0.0, 0.0, 0.5, 0.5), 4),     # a 1920x1080 region: 480 at 1/4 is still > 416
    (3840, 2160, (0.0, 0.0, 0.1, 0.1), 1),     # 384x216 region: smaller than 416, keep it all
])
def test_jpeg_scale(w, h, region, expected):
    assert jpeg_scale(w, h, 416, region, 640) == expected


def test_decode_jpeg_at_reduced_size():
    img = np.zeros((720, 1280, 3), np.uint8)
    img[:] = (255, 0, 0)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    full, half = decode_jpeg(buf.tobytes()), decode_jpeg(buf, 2)
    assert full.shape == (720, 1280, 3) and half.shape == (360, 640, 3)
    assert half[..., 0].mean() > 250 and half[..., 2].mean() < 5
    assert decode_jpeg(b"not a jpeg") is None


@pytest.mark.parametrize("src,size", [((1920, 1080), (416, 234)), ((1280, 720), (416, 234)), ((3840, 2160), (416, 234))])
def test_shrink_averages_fine_detail_instead_of_aliasing(src, size):
    # A one-pixel checkerboard is pure detail above what the smaller image can show:
    # a proper downscale turns it grey; sampling (nearest, plain bilinear at 4x) would not.
    # (Below 2x the last bilinear step is used as is: see the camera-like test below.)
    board = (np.indices((src[1], src[0])).sum(axis=0) % 2 * 255).astype(np.uint8)
    out = shrink(cv2.merge([board, board, board]), size)
    assert (out.shape[1], out.shape[0]) == size
    assert abs(float(out.mean()) - 127.5) < 3
    assert float(out.std()) < 10  # plain bilinear leaves a std of ~42 here


def test_shrink_is_close_to_area_averaging_on_camera_like_content():
    rng = np.random.default_rng(1)
    base = cv2.resize(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), (1920, 1080), interpolation=cv2.INTER_CUBIC)
    noisy = cv2.add(base, rng.integers(0, 24, base.shape, dtype=np.uint8))
    for size in ((416, 234), (640, 360), (1280, 720)):
        ref = cv2.resize(noisy, size, interpolation=cv2.INTER_AREA)
        assert cv2.PSNR(ref, shrink(noisy, size)) > 30


def camera_like(w: int, h: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8), (w, h),
                      interpolation=cv2.INTER_CUBIC)
    return cv2.add(base, rng.integers(0, 24, base.shape, dtype=np.uint8))


@pytest.mark.parametrize("w,h,size,n", [(1920, 1080, (416, 234), 2), (1920, 1080, (640, 360), 1),
                                        (640, 480, (416, 312), 0), (3840, 2160, (416, 234), 3),
                                        (832, 468, (416, 234), 1)])
def test_halvings_counts_what_shrink_does(w, h, size, n):
    assert halvings(w, h, size) == n


@pytest.mark.parametrize("longest", [416, 640])  # 640: the API image is the preview's size
@pytest.mark.parametrize("w,h,region", [(1920, 1080, None), (1280, 720, None), (640, 480, None),
                                        (320, 240, None), (1080, 1920, None), (2592, 1944, None),
                                        (3840, 2160, (0.1, 0.1, 0.6, 0.9)), (1920, 1080, (0.25, 0.1, 0.9, 0.8))])
def test_prepare_with_preview_is_prepare_and_resize_for_api_at_once(w, h, region, longest):
    # The shared halvings and the kept buffers change nothing: the same bytes, the same pixels.
    scratch = Scratch()
    for seed in (1, 2, 3):  # later frames reuse the first one's buffers
        frame = camera_like(w, h, seed)
        jpeg, preview = prepare_with_preview(frame, longest, 80, region, 640, scratch, frame_is_kept=True)
        assert jpeg == prepare(frame, longest, 80, region)
        assert np.array_equal(preview, resize_for_api(frame, 640))
        assert not scratch.holds(preview) and not np.shares_memory(preview, frame)


def test_prepare_with_preview_copies_a_frame_the_source_reuses():
    frame = camera_like(640, 480)
    _, preview = prepare_with_preview(frame, 416, 80, None, 640)
    assert preview is frame  # nothing to shrink: the frame itself, when it is the caller's to give
    _, preview = prepare_with_preview(frame, 416, 80, None, 640, frame_is_kept=True)
    assert preview is not frame and np.array_equal(preview, frame)


def test_scratch_writes_big_results_into_the_last_frames_buffer_and_keeps_few():
    scratch = Scratch()
    frame = camera_like(1920, 1080)
    first = scratch.resize(frame, (960, 540))  # 1.5 MB: kept
    again = scratch.resize(camera_like(1920, 1080, 2), (960, 540))
    assert again is first and scratch.holds(again)
    assert np.array_equal(again, cv2.resize(camera_like(1920, 1080, 2), (960, 540), interpolation=cv2.INTER_LINEAR))
    small = scratch.resize(frame, (416, 234))  # 0.3 MB: allocated as usual, not kept
    assert not scratch.holds(small)
    grey = scratch.grey(frame)
    assert scratch.holds(grey) and np.array_equal(grey, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    for w in range(1000, 1000 + 8 * 40, 40):  # sizes never seen again: the oldest are dropped
        scratch.resize(frame, (w, 540))
    assert len(scratch._kept) == Scratch.MAX_KEPT
    scratch.clear()
    assert not scratch.holds(again)
