"""The MJPEG splitter: whole frames out of any chunking, EXIF thumbnails kept
inside their frame, garbage skipped, oversize frames dropped, linear time."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from edge_agent.sources.jpegstream import JpegSplitter, jpeg_size


def jpeg(width: int, height: int, colour: tuple[int, int, int] = (0, 0, 255), noise: bool = False,
         quality: int = 90) -> bytes:
    if noise:
        image = np.random.default_rng(width * height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    else:
        image = np.full((height, width, 3), colour, np.uint8)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


def with_exif_thumbnail(frame: bytes, thumb: bytes) -> bytes:
    """``frame`` with an APP1 "Exif" segment right after SOI whose payload holds
    a whole JPEG (its own SOI .. EOI), as cameras embed thumbnails."""
    payload = b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\x00\x08" + thumb
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    return frame[:2] + segment + frame[2:]


def feed_in_chunks(data: bytes, size: int, splitter: JpegSplitter | None = None) -> list[bytes]:
    s = splitter or JpegSplitter()
    out: list[bytes] = []
    for i in range(0, len(data), size):
        out.extend(s.feed(data[i:i + size]))
    return out


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    return [jpeg(64, 48, (0, 0, 255)), jpeg(32, 16, (255, 0, 0)), jpeg(80, 60, noise=True),
            jpeg(8, 8, (0, 255, 0))]


def test_every_chunk_size_gives_the_same_frames(frames: list[bytes]) -> None:
    stream = b"".join(frames)
    for size in range(1, len(stream) + 1):
        assert feed_in_chunks(stream, size) == frames, size


def test_every_split_point(frames: list[bytes]) -> None:
    stream = b"".join(frames[:2])
    for cut in range(len(stream) + 1):
        s = JpegSplitter()
        assert s.feed(stream[:cut]) + s.feed(stream[cut:]) == frames[:2], cut


def test_frames_decode_with_their_colour_and_size(frames: list[bytes]) -> None:
    got = feed_in_chunks(b"".join(frames), 100)
    image = cv2.imdecode(np.frombuffer(got[0], np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (48, 64, 3)
    assert tuple(int(v) for v in image[24, 32]) == pytest.approx((0, 0, 255), abs=3)
    assert [jpeg_size(f) for f in got] == [(64, 48), (32, 16), (80, 60), (8, 8)]


def test_garbage_before_and_between_frames_is_skipped(frames: list[bytes]) -> None:
    # Garbage holding FF bytes, a lone FF at the end, and an FF D9 that is no EOI.
    junk = b"hello\xff\x00\xff\xd9 world\xff"
    stream = junk + frames[0] + junk + junk + frames[1] + b"\x00" * 1000 + frames[2] + junk
    for size in (1, 7, 64, 4096, len(stream)):
        s = JpegSplitter()
        assert feed_in_chunks(stream, size, s) == frames[:3], size
        assert s.dropped_bad == 0 and s.dropped_oversize == 0


def test_a_false_soi_in_garbage_does_not_swallow_the_next_frame(frames: list[bytes]) -> None:
    # FF 20 is no marker (02-BF are reserved): resync at once, rather than read
    # "mo" as a 28 kB segment length that would swallow the frames after it.
    junk = b"\xff\xd8\xff more junk"
    s = JpegSplitter()
    assert feed_in_chunks(junk + frames[0] + frames[1], 1, s) == frames[:2]
    assert s.dropped_bad == 1


def test_a_frame_cut_short_by_the_next_one_is_dropped(frames: list[bytes]) -> None:
    # Cut inside its entropy-coded data (most of a frame). A cut inside the headers
    # may swallow the next SOI as segment payload: pipes do not lose bytes, and the
    # pipe source starts a new splitter with each new process.
    broken = frames[2][: len(frames[2]) * 3 // 4]
    s = JpegSplitter()
    assert feed_in_chunks(broken + frames[1] + frames[0], 33, s) == [frames[1], frames[0]]
    assert s.dropped_bad == 1


def test_an_exif_thumbnail_does_not_cut_the_frame(frames: list[bytes]) -> None:
    thumb = jpeg(16, 12, (255, 255, 255))
    big = with_exif_thumbnail(jpeg(120, 90, (0, 0, 255)), thumb)
    assert cv2.imdecode(np.frombuffer(big, np.uint8), cv2.IMREAD_COLOR).shape == (90, 120, 3)
    stream = frames[1] + big + frames[0]
    for size in (1, 5, 512, len(stream)):
        got = feed_in_chunks(stream, size)
        assert got == [frames[1], big, frames[0]], size
    # The size is the frame's own, not the thumbnail's.
    assert jpeg_size(big) == (120, 90)


def test_an_oversize_frame_is_dropped_and_the_next_one_found(frames: list[bytes]) -> None:
    huge = with_exif_thumbnail(jpeg(400, 300, noise=True), frames[3])  # a thumbnail inside it too
    limit = 20_000
    assert len(huge) > limit
    stream = frames[0] + huge + frames[1]
    for size in (1, 1000, 65536, len(stream)):
        s = JpegSplitter(max_frame_bytes=limit)
        peak = 0
        out: list[bytes] = []
        for i in range(0, len(stream), size):
            out.extend(s.feed(stream[i:i + size]))
            peak = max(peak, s.buffered)
        # Not the thumbnail inside the dropped frame: the next real one.
        assert out == [frames[0], frames[1]], size
        assert s.dropped_oversize == 1
        assert peak <= limit


def test_progressive_jpeg_with_several_scans() -> None:
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok
    prog = data.tobytes()
    assert prog.count(b"\xff\xda") > 1  # really several scans
    assert feed_in_chunks(prog + prog, 3) == [prog, prog]


def test_restart_markers_and_fill_bytes() -> None:
    image = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_RST_INTERVAL, 1])
    assert ok
    frame = data.tobytes()
    assert b"\xff\xd0" in frame
    padded = frame[:2] + b"\xff\xff\xff" + frame[2:]  # fill bytes before a marker are allowed
    assert feed_in_chunks(frame + padded, 1) == [frame, padded]


def test_headers_without_image_data_are_not_a_frame(frames: list[bytes]) -> None:
    s = JpegSplitter()
    assert s.feed(b"\xff\xd8\xff\xd9" + frames[0]) == [frames[0]]
    assert s.dropped_bad == 1


def test_one_byte_feeds_of_a_megabyte_are_linear() -> None:
    frame = jpeg(640, 480, noise=True, quality=80)
    stream = (frame * (2 + (1 << 20) // len(frame)))[: 1 << 20]
    pieces = [stream[i:i + 1] for i in range(len(stream))]
    s = JpegSplitter()
    feed = s.feed
    start = time.perf_counter()
    count = 0
    for piece in pieces:
        count += len(feed(piece))
    elapsed = time.perf_counter() - start
    assert count == len(stream) // len(frame)
    assert elapsed < 1.0, elapsed


def test_whole_feeds_are_fast() -> None:
    frame = jpeg(1280, 720, noise=True, quality=80)  # a large frame: mostly entropy data
    stream = frame * 20
    s = JpegSplitter()
    start = time.perf_counter()
    got = feed_in_chunks(stream, 65536, s)
    elapsed = time.perf_counter() - start
    assert len(got) == 20
    assert elapsed < 1.0, elapsed


def test_jpeg_size() -> None:
    for w, h in [(1, 1), (320, 240), (1920, 1080), (17, 333)]:
        assert jpeg_size(jpeg(w, h)) == (w, h)
    assert jpeg_size(b"") is None
    assert jpeg_size(b"not a jpeg") is None
    assert jpeg_size(jpeg(32, 32)[:20]) is None  # cut before its SOF
    assert jpeg_size(b"\xff\xd8\xff\xd9") is None
