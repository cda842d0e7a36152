"""Command line: ``edge-agent run|check|classify -c FILE``.

Exit codes: 0 done, 2 config or usage error, 1 anything else fatal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from typing import Sequence

import yaml

from . import __version__, memory
from .config import Config, ConfigError, load_config, masked
from .redact import Redactor

EXIT_OK, EXIT_FATAL, EXIT_CONFIG = 0, 1, 2
log = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 2, like config errors
        self.print_usage(sys.stderr)
        print(f"edge-agent: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="edge-agent", description="Camera -> image-classification API -> MQTT.")
    p.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-c", "--config", required=True, metavar="FILE", help="YAML config file")
        sp.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    common(sub.add_parser("run", help="run until SIGINT/SIGTERM (or every file camera has ended)"))
    sp = sub.add_parser("check", help="validate the config and print it, secrets masked")
    common(sp)
    sp.add_argument("--service", action="store_true",
                    help="check the service's config as systemd will run it: ${CREDENTIALS_DIRECTORY} is "
                         "/etc/edge-agent (where LoadCredential= takes the key from) unless set")
    sp = sub.add_parser("classify", help="classify one local image and print the API's JSON reply")
    common(sp)
    sp.add_argument("image", help="image file (any format OpenCV reads)")
    sp = sub.add_parser("install-service", help="write the systemd unit and a config skeleton in /etc/edge-agent")
    sp.add_argument("--root", default="/", help="install under this directory instead of / (for packaging)")
    sp.add_argument("--exe", default=None, help="path of the edge-agent executable the unit runs "
                                                "(default: the one next to this Python)")
    sp.add_argument("--force", action="store_true", help="replace an existing unit file")
    sp.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def _load(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"edge-agent: config error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def _setup(level: str, cfg: Config | None) -> Redactor:
    from .logs import setup_logging

    redactor = Redactor(cfg.secrets() if cfg else ())
    setup_logging(level, redactor)
    return redactor


PLACEHOLDER_MODEL = "your-dataset/1"  # install-service's skeleton


def cmd_check(args: argparse.Namespace) -> int:
    if getattr(args, "service", False):
        os.environ.setdefault("CREDENTIALS_DIRECTORY", "/etc/edge-agent")
    cfg = _load(args.config)
    print(yaml.safe_dump(masked(cfg), sort_keys=False), end="")
    if cfg.api.model == PLACEHOLDER_MODEL:
        print(f"edge-agent: warning: api.model is still the skeleton's placeholder {PLACEHOLDER_MODEL!r}: "
              "put your model's <dataset-slug>/<version> there", file=sys.stderr)
    return EXIT_OK


def _warn_if_readable(path: str, cfg: Config) -> None:
    """A config or key file that everyone may read must not hold a secret."""
    from .config import literal_secrets

    from pathlib import Path

    from .config import MAX_CONFIG_BYTES, read_bounded_text

    try:
        text = read_bounded_text(Path(path), MAX_CONFIG_BYTES, "", "config file")
    except ConfigError:
        return
    checks = []
    if literal_secrets(text):
        checks.append((path, "holds a secret"))
    if cfg.api.api_key_file:
        checks.append((cfg.api.api_key_file, "holds the API key"))
    for file, what in checks:
        try:
            mode = os.stat(file).st_mode
        except OSError:
            continue
        if mode & 0o004:
            log.warning("%s %s and is readable by every user (mode %o): chmod o-r %s", file, what,
                        mode & 0o777, file)


def cmd_run(args: argparse.Namespace) -> int:
    memory.tune()  # before cv2 and the first frame: see memory.py
    cfg = _load(args.config)
    redactor = _setup(args.log_level, cfg)
    _warn_if_readable(args.config, cfg)
    # RTSP over TCP: no lost UDP packets (smeared frames) on Wi-Fi. Users may override.
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
    # FFmpeg's and OpenCV's own messages go straight to stderr, past our log format
    # and redaction (a URL with its password, once per corrupt frame): quiet by
    # default; the agent reports those conditions itself. Read when cv2 is imported.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    # FFmpeg decodes with a thread per core: at most 4 (a Pi's cores), so a camera
    # costs at most 6 threads and MAX_CAMERAS fits the unit's TasksMax (config/limits.py).
    os.environ.setdefault("OPENCV_FFMPEG_THREADS", str(min(4, os.cpu_count() or 1)))
    # No linear algebra here: one OpenBLAS thread (numpy's and OpenCV's each start
    # an idle pool at import otherwise). Must be set before numpy is imported.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from .agent import Agent

    last: list[Agent] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()
        current = cfg
        while True:
            agent = Agent(current, redactor)
            last[:] = [agent]
            new: list[Config] = []

            def reload(agent: Agent = agent, new: list[Config] = new) -> None:
                """SIGHUP (systemctl reload): a valid new config restarts the agent with it;
                a bad one is logged and the running config kept."""
                try:
                    candidate = load_config(args.config)
                except ConfigError as exc:
                    log.error("reload: config error: %s; keeping the running config", redactor(str(exc)))
                    return
                redactor.add(candidate.secrets())
                log.info("reload: %s is valid; restarting with it", args.config)
                new[:] = [candidate]
                agent.reloading = True
                agent.request_stop()

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, agent.request_stop)
            loop.add_signal_handler(signal.SIGHUP, reload)
            rc = await agent.run()
            if not new:
                return rc
            current = new[0]

    try:
        rc = asyncio.run(main())
    except ConfigError as exc:  # found only when it runs (a busy port): a config problem all the same
        print(f"edge-agent: config error: {exc}", file=sys.stderr)
        rc = EXIT_CONFIG
    except Exception as exc:  # noqa: BLE001 - last line of defence; say what broke, exit 1
        log.critical("fatal: %s", redactor(f"{type(exc).__name__}: {exc}"), exc_info=exc)
        rc = EXIT_FATAL
    if last and last[0].threads_stuck():
        # A capture thread is still inside a blocking OpenCV/FFmpeg call (a source that
        # hangs in open or read). Letting the interpreter tear down under it aborts the
        # process in C++ (exit 134); the agent has stopped cleanly, so leave now.
        logging.shutdown()
        sys.stderr.flush()
        os._exit(rc)
    return rc


def cmd_classify(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    redactor = _setup(args.log_level, cfg)
    import cv2

    from .classify import ApiError, ClassifyClient, new_session
    from .encode import prepare

    if not os.path.isfile(args.image):  # before OpenCV, which would print a warning of its own first
        print(f"edge-agent: cannot read image {args.image!r}: no such file", file=sys.stderr)
        return EXIT_CONFIG
    image = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if image is None:
        print(f"edge-agent: cannot read image {args.image!r}: not an image OpenCV can read", file=sys.stderr)
        return EXIT_CONFIG
    jpeg = prepare(image, cfg.api.image_size, cfg.api.jpeg_quality)

    async def once() -> object:
        async with new_session(cfg.api) as session:
            return (await ClassifyClient(cfg.api, session).classify(jpeg)).body

    try:
        body = asyncio.run(once())
    except ApiError as err:
        print(f"edge-agent: {redactor(err.description)}", file=sys.stderr)
        return EXIT_FATAL
    print(json.dumps(body, indent=2))
    return EXIT_OK


def cmd_install_service(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .install import install, next_steps, this_exe

    root = Path(args.root)
    try:
        for line in install(root, args.exe or this_exe(), force=args.force):
            print(line)
    except PermissionError as exc:
        print(f"edge-agent: {exc.strerror}: {exc.filename} (run it with sudo)", file=sys.stderr)
        return EXIT_FATAL
    print(next_steps(root))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"run": cmd_run, "check": cmd_check, "classify": cmd_classify,
               "install-service": cmd_install_service}[args.command]
    return handler(args)
