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

from . import __version__
from .config import Config, ConfigError, load_config, masked
from .redact import Redactor

EXIT_OK, EXIT_FATAL, EXIT_CONFIG = 0, 1, 2
log = logging.getLogger("edge_agent")


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
    common(sub.add_parser("check", help="validate the config and print it, secrets masked"))
    sp = sub.add_parser("classify", help="classify one local image and print the API's JSON reply")
    common(sp)
    sp.add_argument("image", help="image file (any format OpenCV reads)")
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


def cmd_check(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    print(yaml.safe_dump(masked(cfg), sort_keys=False), end="")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    redactor = _setup(args.log_level, cfg)
    # RTSP over TCP: no lost UDP packets (smeared frames) on Wi-Fi. Users may override.
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
    from .agent import Agent

    async def main() -> int:
        agent = Agent(cfg, redactor)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, agent.request_stop)
        return await agent.run()

    try:
        return asyncio.run(main())
    except Exception as exc:  # noqa: BLE001 - last line of defence; say what broke, exit 1
        log.critical("fatal: %s", redactor(f"{type(exc).__name__}: {exc}"), exc_info=exc)
        return EXIT_FATAL


def cmd_classify(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    redactor = _setup(args.log_level, cfg)
    import cv2

    from .classify import ApiError, ClassifyClient, new_session
    from .encode import prepare

    image = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if image is None:
        print(f"edge-agent: cannot read image {args.image!r}", file=sys.stderr)
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"run": cmd_run, "check": cmd_check, "classify": cmd_classify}[args.command]
    return handler(args)
