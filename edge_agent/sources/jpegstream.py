"""Split a byte stream of concatenated JPEGs (MJPEG on a pipe) into frames.

A program such as ``rpicam-vid --codec mjpeg -o -`` or ``ffmpeg -f mjpeg -``
writes one JPEG after another with nothing in between. Searching for the EOI
marker (FF D9) is not enough: an EXIF segment may hold a thumbnail JPEG with its
own SOI/EOI, which would cut the frame in two. So the splitter follows the JPEG
structure: after SOI it walks the marker segments by their lengths (a thumbnail
inside APP1 is skipped whole), and after SOS scans the entropy-coded data, where
an FF is followed by 00 (a stuffed byte), D0-D7 (restart markers) or FF (fill);
any other marker there ends the scan: EOI ends the frame, anything else (the next
scan of a progressive JPEG, DHT, DRI...) goes back to walking segments.

Pure and bounded: ``feed`` does work linear in the bytes fed (it resumes where it
stopped, never rescans, and jumps over entropy data with ``bytes.find``); memory
is at most ``max_frame_bytes`` plus the chunk being fed. Garbage between frames is
skipped (it resyncs on the next SOI); a frame that grows past ``max_frame_bytes``
is dropped, but its structure is still followed so the next frame is found at its
own SOI, not at one inside the dropped frame.
"""

from __future__ import annotations

from . import MAX_FRAME_BYTES

_SEEK = 0  # looking for SOI (FF D8)
_MARKER = 1  # expecting a marker: FF (fill FFs allowed), then its code
_LENGTH = 2  # reading a segment's 2-byte big-endian length
_SKIP = 3  # skipping a segment's payload
_ENTROPY = 4  # in entropy-coded data after SOS, looking for a marker

_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
# Start-of-frame markers (all share the layout: P, Y, X, ...); C4 (DHT), C8 (JPG)
# and CC (DAC) are not frames.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _standalone(code: int) -> bool:
    """Markers with no length field: TEM and the restart markers."""
    return code == 0x01 or 0xD0 <= code <= 0xD7


class JpegSplitter:
    """Feed it bytes as they come; it returns every JPEG completed by them.

    ``dropped_oversize`` counts frames dropped for growing past
    ``max_frame_bytes``; ``dropped_bad`` counts frames cut short by garbage (a
    broken segment, a new SOI before the EOI) or holding no image data.
    """

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES):
        self.max_frame_bytes = max_frame_bytes
        self.dropped_oversize = 0
        self.dropped_bad = 0
        self._mode = _SEEK
        self._frame = bytearray()  # the frame so far (empty while discarding one)
        self._keep = True  # False while following an oversize frame to its end
        self._ff = False  # the last byte seen was an FF whose meaning hangs on the next byte
        self._marker = 0  # the code of the segment being read
        self._length = bytearray()  # the length bytes read so far
        self._skip = 0  # payload bytes of the segment still to skip
        self._scanned = False  # this frame has had an SOS (an image, not just headers)

    @property
    def buffered(self) -> int:
        """Bytes held for the frame in progress."""
        return len(self._frame)

    def feed(self, data: bytes) -> list[bytes]:
        """The frames completed by ``data`` (oldest first); the rest is kept for later."""
        out: list[bytes] = []
        i, n = 0, len(data)
        while i < n:
            mode = self._mode
            if mode == _ENTROPY:
                if self._ff:
                    code = data[i]
                    self._add(data[i:i + 1])
                    i += 1
                    if code == 0xFF:
                        continue  # fill: the next byte decides
                    self._ff = False
                    if code != 0x00 and not 0xD0 <= code <= 0xD7:
                        self._on_marker(code, out)
                    continue
                j = data.find(b"\xff", i)
                end = n if j < 0 else j + 1
                # The hot path (most of a frame's bytes), with _add inlined.
                if self._keep and len(self._frame) + end - i <= self.max_frame_bytes:
                    self._frame += data[i:end] if i or end < n else data
                else:
                    self._add(data[i:end])
                if j < 0:
                    break
                i = end
                self._ff = True
            elif mode == _SKIP:
                take = min(self._skip, n - i)
                if take:
                    self._add(data[i:i + take])
                    i += take
                    self._skip -= take
                if self._skip == 0:
                    self._mode = _ENTROPY if self._marker == _SOS else _MARKER
            elif mode == _SEEK:
                if self._ff:
                    self._ff = False
                    if data[i] == _SOI:
                        self._start()
                        i += 1
                        continue
                j = data.find(b"\xff\xd8", i)
                if j < 0:
                    self._ff = data[n - 1] == 0xFF
                    break
                self._start()
                i = j + 2
            elif mode == _MARKER:
                code = data[i]
                if not self._ff:
                    if code != 0xFF:
                        self._bad()  # a segment should start here: garbage; look for SOI from here
                        continue
                    self._ff = True
                    self._add(data[i:i + 1])
                    i += 1
                    continue
                self._add(data[i:i + 1])
                i += 1
                if code == 0xFF:
                    continue  # fill before a marker
                self._ff = False
                self._on_marker(code, out)
            else:  # _LENGTH
                take = min(2 - len(self._length), n - i)
                piece = data[i:i + take]
                self._length += piece
                self._add(piece)
                i += take
                if len(self._length) == 2:
                    length = int.from_bytes(self._length, "big")
                    self._length.clear()
                    if length < 2:
                        self._bad()
                        continue
                    self._skip = length - 2
                    self._mode = _SKIP
        return out

    # -- internals ------------------------------------------------------------

    def _start(self) -> None:
        """An SOI: a new frame begins (whatever was in progress was cut short)."""
        if self._mode != _SEEK and self._keep:
            self.dropped_bad += 1
        self._frame = bytearray(b"\xff\xd8")
        self._keep = True
        self._ff = False
        self._scanned = False
        self._length.clear()
        self._mode = _MARKER

    def _bad(self) -> None:
        """The frame in progress is broken: drop it and look for the next SOI."""
        if self._keep:
            self.dropped_bad += 1
        self._frame = bytearray()
        self._keep = True
        self._ff = False
        self._length.clear()
        self._mode = _SEEK

    def _add(self, piece: bytes) -> None:
        if not self._keep:
            return
        if len(self._frame) + len(piece) > self.max_frame_bytes:
            # Keep following its structure (without its bytes) to find its end.
            self.dropped_oversize += 1
            self._keep = False
            self._frame = bytearray()
            return
        self._frame += piece

    def _on_marker(self, code: int, out: list[bytes]) -> None:
        """A marker code just read (its FF and code are already added)."""
        if code == _EOI:
            if self._keep:
                if self._scanned:
                    out.append(bytes(self._frame))
                else:
                    self.dropped_bad += 1  # headers only, no image
            self._frame = bytearray()
            self._keep = True
            self._mode = _SEEK
        elif code == _SOI:
            self._start()
        elif _standalone(code):
            self._mode = _MARKER
        elif code < 0xC0:
            # 00 is no marker, 02-BF are reserved: never in a real JPEG. Most likely
            # the "SOI" was garbage; resyncing now keeps a bogus length from
            # swallowing up to 64 KiB (and the real SOI within).
            self._bad()
        else:
            self._marker = code
            if code == _SOS:
                self._scanned = True
            self._mode = _LENGTH


def jpeg_size(frame: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame segment; None if not found."""
    n = len(frame)
    if n < 4 or frame[0] != 0xFF or frame[1] != _SOI:
        return None
    i = 2
    while i + 4 <= n:
        if frame[i] != 0xFF:
            return None
        code = frame[i + 1]
        if code == 0xFF:
            i += 1  # fill
            continue
        if _standalone(code):
            i += 2
            continue
        if code in (_SOS, _EOI, _SOI):
            return None
        length = int.from_bytes(frame[i + 2:i + 4], "big")
        if length < 2:
            return None
        if code in _SOF:
            if length < 7 or i + 9 > n:
                return None
            height = int.from_bytes(frame[i + 5:i + 7], "big")
            width = int.from_bytes(frame[i + 7:i + 9], "big")
            return (width, height) if width and height else None
        i += 2 + length
    return None
