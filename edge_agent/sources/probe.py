"""Does a network camera send a picture? Asked in the camera's own thread, before
OpenCV opens it.

OpenCV's FFmpeg backend opens every capture under one process-wide lock, so a
camera that answers but never sends a picture (hung firmware, a dead encoder
behind a live web server) would hold every other camera's (re)open for the whole
open timeout, at every retry. This probe waits on the network outside that lock,
within one deadline, and never sends credentials (FFmpeg makes the real
connection afterwards, with them):

* HTTP(S): ``GET``, the reply's headers, and its body's first bytes; for a
  multipart (MJPEG) reply, past the first part's headers to the first bytes of
  its picture. A reply other than 2xx (a 401 or 403, a redirect, a 404) has
  answered: FFmpeg takes it from there.
* RTSP(S): ``OPTIONS``, then ``DESCRIBE``. A camera that describes its stream
  without credentials is asked for its video track (``SETUP`` over TCP, ``PLAY``)
  and its first media bytes are awaited, then ``TEARDOWN``. A camera that asks for
  credentials (401) is as far as a probe without them can see: its half-dead case
  is bounded by the source instead (``opencv.py``: such a camera's next open waits).
* RTMP: the connection alone. Other schemes (udp, srt, tcp): nothing to ask.

The parsing (replies, SDP) is pure; ``probe_stream`` is the I/O.
"""

from __future__ import annotations

import enum
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

from ..redact import redact_url

PROBE_PORTS = {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322, "rtmp": 1935}
READ_CAP = 64 * 1024  # bytes read at most: a reply this long is sending something
MULTIPART_SLACK = 2048  # body bytes that count as a picture begun even without a part's blank line


class Reply(enum.Enum):
    """How far an HTTP reply has come (pure)."""

    WAITING = "waiting"  # headers, or the first picture's first bytes, still to come
    ANSWERED = "answered"  # a refusal, a redirect, an error: something answered, FFmpeg takes it
    PICTURE = "picture"  # the body (the first part's picture, for multipart) has begun


def _blank_line(data: bytes, start: int = 0) -> int:
    """The index just past the first empty line at or after ``start`` (CRLF or bare
    LF, as embedded web servers write them), or -1."""
    ends = [(i, len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if (i := data.find(sep, start)) >= 0]
    if not ends:
        return -1
    i, n = min(ends)
    return i + n


def http_reply(data: bytes) -> Reply:
    """Has an HTTP camera's reply so far (``data``, from its first byte) reached a
    picture's first bytes (pure)?"""
    body_at = _blank_line(data)
    if body_at < 0:
        return Reply.WAITING
    status = data.split(b"\n", 1)[0].split()
    if len(status) < 2 or not status[1].startswith(b"2"):
        return Reply.ANSWERED
    head, body = data[:body_at].lower(), data[body_at:]
    if b"content-type: multipart/" not in head and b"content-type:multipart/" not in head:
        return Reply.PICTURE if body else Reply.WAITING
    # multipart/x-mixed-replace: "--boundary", the part's headers, a blank line, the JPEG
    part_at = _blank_line(body, body.find(b"--") + 1 if b"--" in body else 0)
    begun = (part_at >= 0 and len(body) > part_at) or len(body) >= MULTIPART_SLACK
    return Reply.PICTURE if begun else Reply.WAITING


@dataclass
class RtspMessage:
    """One RTSP reply: its status code, headers (names in lower case) and body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def rtsp_message(data: bytes) -> tuple[RtspMessage | None, bytes]:
    """The first whole RTSP message in ``data`` and what follows it, or (None,
    data) while it is incomplete (pure). A message that is not a reply (a request
    from the camera) has status 0."""
    end = _blank_line(data)
    if end < 0:
        return None, data
    lines = data[:end].decode("latin-1").splitlines()
    headers = {k.strip().lower(): v.strip() for k, sep, v in (ln.partition(":") for ln in lines[1:]) if sep}
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        length = 0
    if len(data) < end + length:
        return None, data
    first = lines[0].split() if lines else []
    status = int(first[1]) if len(first) >= 2 and first[0].startswith("RTSP/") and first[1].isdigit() else 0
    return RtspMessage(status, headers, data[end:end + length]), data[end + length:]


def video_track(sdp: bytes, base: str) -> str | None:
    """The URL to SETUP a stream's first video track, from its SDP and the base URL
    (``Content-Base`` or the request's), or None when it has no video (pure)."""
    in_video = False
    control = None
    for line in sdp.decode("latin-1").splitlines():
        if line.startswith("m="):
            if in_video:
                break
            in_video = line.startswith("m=video")
        elif in_video and line.startswith("a=control:"):
            control = line[len("a=control:"):].strip()
    if not in_video:
        return None
    if not control or control == "*":
        return base
    if "://" in control:
        return control
    path, query = base.split("?", 1) if "?" in base else (base, "")
    return path.rstrip("/") + "/" + control + (f"?{query}" if query else "")  # as FFmpeg joins them


def bare_url(parts: SplitResult, port: int) -> str:
    """The URL without credentials, with its port (pure)."""
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme.lower()}://{host}:{port}{parts.path or '/'}{query}"


class _Closed(Exception):
    """The camera closed the connection before a picture."""


class _Wire:
    """A socket read into a buffer, every wait within one deadline."""

    def __init__(self, sock: socket.socket, deadline: float):
        self.sock, self.deadline, self.buf = sock, deadline, b""
        self.heard = False  # the camera has said something (a timeout now means it went quiet)

    def more(self) -> None:
        """Read what comes next."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout
        self.sock.settimeout(left)
        data = self.sock.recv(16384)
        if not data:
            raise _Closed
        self.heard = True
        self.buf += data

    def reply(self, request: str) -> RtspMessage:
        """Send an RTSP request and read its reply."""
        self.sock.sendall(request.encode())
        while True:
            msg, rest = rtsp_message(self.buf)
            if msg is not None:
                self.buf = rest
                if msg.status:
                    return msg
                continue  # a request from the camera: not our reply
            if len(self.buf) > READ_CAP:
                raise _Closed  # not RTSP
            self.more()


def _http(wire: _Wire, parts: SplitResult, port: int) -> None:
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    default = PROBE_PORTS[parts.scheme.lower()] == port
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    wire.sock.sendall(f"GET {target} HTTP/1.0\r\nHost: {host}{'' if default else f':{port}'}\r\n"
                      f"Accept: */*\r\n\r\n".encode())
    while http_reply(wire.buf) is Reply.WAITING and len(wire.buf) < READ_CAP:
        wire.more()


def _rtsp(wire: _Wire, parts: SplitResult, port: int) -> None:
    url = bare_url(parts, port)
    seq = iter(range(1, 100))

    def ask(method: str, target: str, extra: str = "") -> RtspMessage | None:
        return wire.reply(f"{method} {target} RTSP/1.0\r\nCSeq: {next(seq)}\r\n{extra}\r\n")

    ask("OPTIONS", url)
    described = ask("DESCRIBE", url, "Accept: application/sdp\r\n")
    if described.status != 200:
        return  # 401: as far as a probe without credentials sees; anything else: FFmpeg says what
    base = described.headers.get("content-base") or described.headers.get("content-location") or url
    track = video_track(described.body, base)
    if track is None:
        return
    setup = ask("SETUP", track, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n")
    if setup.status != 200 or "session" not in setup.headers:
        return  # no TCP (a camera for UDP only), or no session: not for this probe to judge
    session = setup.headers["session"].split(";", 1)[0]
    if ask("PLAY", base, f"Session: {session}\r\nRange: npt=0.000-\r\n").status != 200:
        return
    while wire.buf[:1] != b"$":  # interleaved media begins with "$"; a message from the camera is skipped
        msg, rest = rtsp_message(wire.buf)
        if msg is not None:
            wire.buf = rest
        elif len(wire.buf) > READ_CAP:
            break  # not media, but plenty: something is sent
        else:
            wire.more()
    try:
        wire.sock.sendall(f"TEARDOWN {base} RTSP/1.0\r\nCSeq: {next(seq)}\r\nSession: {session}\r\n\r\n".encode())
    except OSError:
        pass


def probe_stream(url: str, timeout: float) -> str | None:
    """Does a network camera send a picture (as far as can be seen without
    credentials)? None if it does, else why not. The whole probe takes at most
    ``timeout`` s."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in PROBE_PORTS or not parts.hostname:
        return None  # udp, srt, tcp...: nothing to ask, leave it to FFmpeg's timeouts
    try:
        port = parts.port or PROBE_PORTS[scheme]
    except ValueError:
        return f"cannot open {redact_url(url)}: bad port"
    shown = redact_url(url)
    deadline = time.monotonic() + timeout
    wire: _Wire | None = None
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout) as raw:
            sock: socket.socket = raw
            if scheme in ("https", "rtsps"):
                ctx = ssl.create_default_context()
                ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # liveness only
                raw.settimeout(max(0.001, deadline - time.monotonic()))
                sock = ctx.wrap_socket(raw, server_hostname=parts.hostname)
            wire = _Wire(sock, deadline)
            if scheme in ("http", "https"):
                _http(wire, parts, port)
            elif scheme in ("rtsp", "rtsps"):
                _rtsp(wire, parts, port)
    except socket.timeout:
        if wire is not None and wire.heard:
            return f"cannot open {shown}: it answers but sent no picture within {timeout:g} s"
        return f"cannot open {shown}: no answer within {timeout:g} s"
    except _Closed:
        return f"cannot open {shown}: the camera closed the connection without a picture"
    except (OSError, ssl.SSLError) as exc:
        return f"cannot open {shown}: {exc.strerror or type(exc).__name__}"
    return None
