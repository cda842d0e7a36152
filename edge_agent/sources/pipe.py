"""A command's stdout carrying MJPEG (``source: "exec:<command line>"``).

The agent runs the command itself (argv as split by the caller, never through a
shell) and reads the concatenated JPEGs it writes; ``jpegstream.JpegSplitter``
cuts them apart. Frames are not decoded here: the capture thread decodes only the
frames it takes (``jpeg``).

The command runs in its own process group (its own session), so stopping it
stops everything it started too: SIGTERM to the group, up to 2 s of grace, then
SIGKILL to the group, then the command is reaped. The command's exit is observed
without reaping it first (``waitid(WNOWAIT)``), so its pid, which is the group's
id, cannot be reused by an unrelated process while signals go to the group.

Its stderr is logged at DEBUG with the camera's name, at most
``STDERR_LINES_PER_MINUTE`` lines a minute (then one line saying how many were
left out), by a small daemon thread that ends when the pipe closes; the last line
is kept for the error of a command that exits (the status page shows it).
"""

from __future__ import annotations

import logging
import math
import os
import select
import signal
import subprocess
import threading
import time
from typing import IO

import numpy as np

from ..redact import bounded, redact_url
from . import MAX_FRAME_BYTES, FrameSource
from .jpegstream import JpegSplitter, jpeg_size

log = logging.getLogger(__name__)

READ_CHUNK = 64 << 10  # a Linux pipe's buffer: one read usually drains it
TERM_GRACE = 2.0  # seconds between SIGTERM and SIGKILL
STDERR_LINES_PER_MINUTE = 20
STDERR_LINE_CHARS = 200
STDERR_LINE_BYTES = 4096  # bytes of one stderr line kept (the rest until the newline is dropped)


def _describe_exit(code: int, signalled: bool) -> str:
    if signalled:
        try:
            name = signal.Signals(code).name
        except ValueError:
            name = str(code)
        return f"the command was killed by signal {code} ({name})"
    return f"the command exited with status {code}"


class PipeSource(FrameSource):
    """MJPEG from a child process's stdout, as a ``FrameSource``.

    ``grab()`` reads until one whole JPEG is in and keeps the newest if a read
    brought several (``skipped`` counts the others). After a False ``grab()`` the
    child has been stopped already; the caller still calls ``close()``.
    ``interrupt()`` (another thread) is sticky: from then on ``open()`` and
    ``grab()`` fail at once, so an agent stop is never held up by the command.
    """

    is_file = False
    jpeg = True

    def __init__(self, name: str, argv: list[str], *, stall_timeout: float, shown: str,
                 max_frame_bytes: int = MAX_FRAME_BYTES):
        self.name = name
        self.argv = list(argv)
        self.stall_timeout = stall_timeout
        self.shown = shown
        self.max_frame_bytes = max_frame_bytes
        self.error: str | None = None
        self.skipped = 0  # complete frames passed over for a newer one in the same read
        self.last_stderr: str | None = None  # the command's last stderr line (redacted, cut)
        self._proc: subprocess.Popen[bytes] | None = None
        self._splitter = JpegSplitter(max_frame_bytes)
        self._frame: bytes | None = None
        self._size: tuple[int, int] | None = None
        self._stderr_thread: threading.Thread | None = None
        # interrupt() writes to the wake pipe from another thread, close() closes it:
        # the lock keeps a write from ever reaching a closed (or reused) descriptor.
        self._wake_lock = threading.Lock()
        self._wake: tuple[int, int] | None = None
        self._interrupted = False
        self._oversize_logged = False

    # -- FrameSource -----------------------------------------------------------

    def open(self) -> str | None:
        self.close()
        self.error = self._start()
        return self.error

    def grab(self) -> bool:
        proc, wake = self._proc, self._wake
        if proc is None or proc.stdout is None or wake is None:
            self.error = self.error or "not open"
            return False
        if self._interrupted:
            self.error = "interrupted"
            return False
        out = proc.stdout.fileno()
        poller = select.poll()  # not select(): no limit on descriptor numbers
        poller.register(out, select.POLLIN)
        poller.register(wake[0], select.POLLIN)
        deadline = time.monotonic() + self.stall_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.error = f"no frame for {self.stall_timeout:g} s"
                self._stop_child()
                return False
            ready = poller.poll(math.ceil(remaining * 1000))
            if self._interrupted or any(fd == wake[0] for fd, _ in ready):
                self.error = "interrupted"
                return False
            if not ready:
                continue
            data = os.read(out, READ_CHUNK)  # POLLIN or POLLHUP: does not block
            if not data:
                self.error = self._ended()
                return False
            splitter = self._splitter
            frames = splitter.feed(data)
            if splitter.dropped_oversize and not self._oversize_logged:
                self._oversize_logged = True
                log.warning("%s: a frame over %d MB was dropped (logged once)", self.name,
                            self.max_frame_bytes >> 20)
            if frames:
                self.skipped += len(frames) - 1
                self._frame = frames[-1]
                if self._size is None:
                    self._size = jpeg_size(self._frame)
                return True

    def retrieve(self) -> np.ndarray | None:
        return np.frombuffer(self._frame, np.uint8) if self._frame is not None else None

    # holds, rewind, frame_rate, position: the protocol's defaults (a new bytes object per
    # frame; a stream, not a file)

    def size(self) -> tuple[int, int] | None:
        return self._size

    def info(self) -> str:
        return "MJPEG from a command's output"

    def describe(self) -> str:
        return self.shown

    def close(self) -> None:
        """Stop the command (its whole process group) and release the pipes. Idempotent."""
        self._stop_child()
        with self._wake_lock:
            if self._wake is not None:
                for fd in self._wake:
                    os.close(fd)
                self._wake = None

    def interrupt(self) -> None:
        self._interrupted = True
        with self._wake_lock:
            if self._wake is not None:
                try:
                    os.write(self._wake[1], b"!")
                except OSError:
                    pass  # full (non-blocking): a wake-up is already pending

    # -- the child ---------------------------------------------------------------

    def _start(self) -> str | None:
        if self._interrupted:
            return "interrupted"
        if not self.argv:
            return "no command given"
        program = redact_url(self.argv[0])
        self._splitter = JpegSplitter(self.max_frame_bytes)
        self._frame = None
        self._size = None
        self.last_stderr = None
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True, close_fds=True,
                                    bufsize=0)
        except FileNotFoundError:
            return f"cannot run {program}: not found"
        except PermissionError:
            return f"cannot run {program}: permission denied"
        except OSError as exc:
            return f"cannot run {program}: {exc.strerror or type(exc).__name__}"
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with self._wake_lock:
            self._wake = (r, w)
        self._proc = proc
        assert proc.stderr is not None
        self._stderr_thread = threading.Thread(target=self._log_stderr, args=(proc.stderr,),
                                               name=f"stderr-{self.name}", daemon=True)
        self._stderr_thread.start()
        if self._interrupted:  # interrupt() came while the wake pipe did not exist yet
            self.close()
            return "interrupted"
        return None

    @staticmethod
    def _peek_exit(proc: "subprocess.Popen[bytes]", timeout: float) -> tuple[int, bool] | None:
        """(status or signal number, killed by a signal) once the command has exited,
        waiting up to ``timeout``; None while it runs. It is NOT reaped, so its pid
        (the group's id) stays ours until ``_stop_child`` has signalled the group."""
        deadline = time.monotonic() + timeout
        while True:
            if proc.returncode is not None:  # reaped already
                code = proc.returncode
                return (-code, True) if code < 0 else (code, False)
            try:
                info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return None
            if info is not None and info.si_pid == proc.pid:
                return info.si_status, info.si_code != os.CLD_EXITED
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def _ended(self) -> str:
        """Its stdout reached EOF: why, with the command's last stderr line if any."""
        status = self._peek_exit(self._proc, 1.0) if self._proc is not None else None
        self._stop_child()  # also waits for the stderr thread to read the last line
        reason = _describe_exit(*status) if status is not None else "the command closed its output"
        last = self.last_stderr
        return f"{reason}: {last}" if last else reason

    def _stop_child(self) -> None:
        """SIGTERM to the group, up to ``TERM_GRACE`` for the command to go, SIGKILL
        to the group (stragglers, grandchildren), reap. No zombie, no orphan."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.returncode is None:
                if self._peek_exit(proc, 0) is None:
                    self._signal_group(proc.pid, signal.SIGTERM)
                    self._peek_exit(proc, TERM_GRACE)
                # Still unreaped, so the group id is still ours: members that ignored
                # SIGTERM, or that the command started and left behind, go now.
                self._signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
            thread, self._stderr_thread = self._stderr_thread, None
            if thread is not None:
                thread.join(1.0)  # EOF once the group is gone (a member that left the group may hold it)

    @staticmethod
    def _signal_group(pgid: int, sig: int) -> None:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _log_stderr(self, pipe: IO[bytes]) -> None:
        """Daemon thread: the command's stderr, line by line, to the DEBUG log (rate
        limited); ends at EOF and closes the pipe."""
        fd = pipe.fileno()
        window_start = time.monotonic()
        in_window = left_out = 0
        line = bytearray()
        cut = False

        def emit(raw: bytes, was_cut: bool) -> None:
            nonlocal window_start, in_window, left_out
            text = raw.decode("utf-8", "replace").strip()
            if not text:
                return
            if was_cut:
                text += "…"
            text = bounded(text, STDERR_LINE_CHARS)
            self.last_stderr = text
            now = time.monotonic()
            if now - window_start >= 60.0:
                if left_out:
                    log.debug("%s: %d more lines of the command's stderr left out", self.name, left_out)
                window_start, in_window, left_out = now, 0, 0
            if in_window < STDERR_LINES_PER_MINUTE:
                in_window += 1
                log.debug("%s: command says: %s", self.name, text)
            else:
                left_out += 1

        try:
            while True:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                parts = data.replace(b"\r", b"\n").split(b"\n")
                for k, part in enumerate(parts):
                    room = STDERR_LINE_BYTES - len(line)
                    if len(part) > room:
                        line += part[:max(room, 0)]
                        cut = True
                    else:
                        line += part
                    if k < len(parts) - 1:  # a line end followed this part
                        emit(bytes(line), cut)
                        line.clear()
                        cut = False
            if line:
                emit(bytes(line), cut)
            if left_out:
                log.debug("%s: %d more lines of the command's stderr left out", self.name, left_out)
        finally:
            pipe.close()
