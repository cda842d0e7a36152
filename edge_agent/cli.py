"""Command line: ``edge-agent run|check|classify|collect -c FILE``.

Exit codes: 0 done, 2 config or usage error (a file that is not an image too), 1
anything else fatal (the API refused or failed). ``classify`` and ``collect`` print
the reply as JSON on stdout (``classify`` says on stderr which endpoint answered);
a problem is one line on stderr, redacted: no key is ever printed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any, Sequence

import yaml

from . import __version__, memory
from .config import ApiConfig, Config, ConfigError, load_config, masked
from .config.display import endpoint_lines
from .imagefile import NotAnImage, load_image
from .redact import Redactor

if TYPE_CHECKING:
    from .dataset.describe import Description
    from .dataset.upload import UploadError

EXIT_OK, EXIT_FATAL, EXIT_CONFIG = 0, 1, 2
CLI_CAMERA = "cli"  # the camera an image from ``collect`` is tagged with, unless --camera names one
PRIMARY, FALLBACK = "primary", "fallback"  # ``classify --endpoint``: api.url, or api.fallback alone
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
    sp.add_argument("--camera", metavar="NAME[/VIEW]", default=None,
                    help="classify as this camera (or view of a camera) does: its region and its model")
    sp.add_argument("--endpoint", choices=[PRIMARY, FALLBACK], default=PRIMARY,
                    help="ask the primary (api.url, the default) or the fallback alone (api.fallback: its url, "
                         "key and model)")
    sp = sub.add_parser("collect", help="upload one local image to the dataset (dataset.project) and print "
                                        "the reply: the check of the dataset's key and project")
    common(sp)
    sp.add_argument("image", help="image file (any format OpenCV reads), sent whole: no region or mask")
    sp.add_argument("--label", metavar="CLASS", default=None,
                    help="its class, labelled as a person's (default: uploaded unlabelled)")
    sp.add_argument("--camera", metavar="NAME", default=None,
                    help=f"the camera it is from, for its tags and metadata (default: {CLI_CAMERA})")
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
    print("# what is classified (a view is published as camera <camera>-<view>):")
    for t in cfg.targets():
        where = f"view {t.view!r} of camera {t.view_of!r}" if t.view_of else "camera"
        region = "the whole frame" if t.region is None else f"region {list(t.region)}"
        print(f"#   {t.name}: {where}, model {t.model}, {region}")
    print("# endpoints (see README, A fallback endpoint):")
    for line in endpoint_lines(cfg):
        print(f"#   {line}")
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
    if cfg.api.fallback is not None and cfg.api.fallback.api_key_file:
        checks.append((cfg.api.fallback.api_key_file, "holds the fallback's API key"))
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
    # OpenCV's own pool (resize, colour conversion) split a frame's steps across a
    # thread per core: for a camera's frames the hand-off cost more than it saved,
    # 13 % of the agent's CPU at 640x480 (bench_agent.py live). One thread, its caller.
    os.environ.setdefault("OPENCV_FOR_THREADS_NUM", "1")
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
    from .classify import ApiError, ClassifyClient, new_session

    endpoint = getattr(args, "endpoint", PRIMARY)
    if endpoint == FALLBACK and cfg.api.fallback is None:
        print("edge-agent: --endpoint fallback: the config has no api.fallback (give api.fallback: {url: ...})",
              file=sys.stderr)
        return EXIT_CONFIG
    try:
        image, _ = load_image(args.image)  # bounded, as collect's: before cv2 is imported (its pixel cap)
    except NotAnImage as exc:
        print(f"edge-agent: cannot read image {args.image!r}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from .encode import prepare

    target = None
    if args.camera is not None:
        target, problem = _target(cfg, args.camera)
        if target is None:
            print(f"edge-agent: --camera {args.camera!r}: {problem}", file=sys.stderr)
            return EXIT_CONFIG
    jpeg = prepare(image, cfg.api.image_size, cfg.api.jpeg_quality, target.region if target else None)
    api = _endpoint_api(cfg, endpoint, target.model if target and target.model else cfg.api.model)

    async def once() -> Any:
        async with new_session(api) as session:
            return await ClassifyClient(api, session).classify(jpeg)

    try:
        reply = asyncio.run(once())
    except ApiError as err:
        where = "" if endpoint == PRIMARY else f"{FALLBACK} {redactor(api.url)}: "
        print(f"edge-agent: {where}{redactor(err.description)}", file=sys.stderr)
        return EXIT_FATAL
    print(json.dumps(reply.body, indent=2))
    print(f"edge-agent: answered by the {endpoint} endpoint, {redactor(api.url)}, model {api.model}, "
          f"in {reply.latency_ms:.0f} ms", file=sys.stderr)
    return EXIT_OK


def _endpoint_api(cfg: Config, endpoint: str, model: str) -> ApiConfig:
    """The ApiConfig ``classify`` calls for a target whose effective model is ``model``:
    the primary's, or the fallback's alone (its url, key and TLS; asked for
    ``fallback.model`` in place of ``api.model``, a camera's own model as it is)."""
    if endpoint == PRIMARY:
        return dataclasses.replace(cfg.api, model=model)
    fallback, api = cfg.api.fallback, cfg.api.fallback_api()
    assert fallback is not None and api is not None  # checked by the caller: a usage error
    return dataclasses.replace(api, model=fallback.model_for(model, cfg.api.model))


def _target(cfg: Config, spec: str) -> tuple[Any, str]:
    """The camera ``NAME`` or the view ``NAME/VIEW`` (a target of ``cfg``), or None and why not."""
    camera, _, view = spec.partition("/")
    targets = cfg.targets()
    known = ", ".join(f"{t.view_of}/{t.view}" if t.view_of else t.name for t in targets)
    for t in targets:
        if (t.view_of, t.view) == (camera, view) if view else (t.view_of is None and t.name == camera):
            return t, ""
    if not view and any(t.view_of == camera for t in targets):
        return None, f"camera {camera!r} has views: name one as {camera}/VIEW (known: {known})"
    return None, f"no such camera or view (known: {known})"


# -- collect: one image into the dataset ------------------------------------------------------

def _collect_error(err: "UploadError", cfg: Config, *, annotating: bool) -> str:
    """One line naming what to fix: the key (401/403), the project (404), else what happened."""
    from .dataset.upload import UploadErrorKind

    ds = cfg.dataset
    what = "annotation" if annotating else "upload"
    where = f"project {ds.project!r} at {ds.url}"
    if err.kind is UploadErrorKind.UNAUTHORIZED:
        return (f"{what} refused: the API key may not write to {where} (HTTP {err.status}): check dataset.api_key "
                "(default: api.api_key)")
    if err.kind is UploadErrorKind.NOT_FOUND and not annotating:
        return (f"{what} refused: there is no {where} (HTTP 404): check dataset.project "
                "(default: api.model before the /)")
    return f"{what} failed: {err.description}"


def cmd_collect(args: argparse.Namespace) -> int:
    """One image into the dataset, unlabelled or with a person's label: what the
    agent uploads for an on-demand request, from a file. It is the first thing to
    run to check the dataset's key and project, so it works with dataset.enabled false."""
    # Before cv2 is imported (OpenCV reads it once, when it loads; load_image sets its pixel cap).
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # libjpeg's warnings are not ours to print
    cfg = _load(args.config)
    redactor = _setup(args.log_level, cfg)
    from .config.convert import NAME_RE
    from .dataset.upload import MAX_LABEL_CHARS

    ds = cfg.dataset
    camera = CLI_CAMERA if args.camera is None else args.camera
    if not NAME_RE.match(camera) or len(camera) > 100:
        print(f"edge-agent: --camera must be a camera's name ([a-z0-9_-], at most 100), not {camera!r}",
              file=sys.stderr)
        return EXIT_CONFIG
    label = args.label
    if label is not None and (not label or len(label) > MAX_LABEL_CHARS or not label.isprintable()):
        print(f"edge-agent: --label must be a class name of 1-{MAX_LABEL_CHARS} printable characters",
              file=sys.stderr)
        return EXIT_CONFIG
    if not ds.api_key and "roboflow.com" in ds.url:
        print(f"edge-agent: config error: dataset.api_key: is required for {redactor(ds.url)} (or api.api_key)",
              file=sys.stderr)
        return EXIT_CONFIG
    try:
        image, captured_at = load_image(args.image)
    except NotAnImage as exc:
        print(f"edge-agent: cannot read image {args.image!r}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from .dataset.describe import describe
    from .dataset.picture import picture_of_file
    from .dataset.sampling import Reason

    jpeg = picture_of_file(image, max_size=ds.max_size)
    if not ds.enabled:
        print("edge-agent: note: dataset.enabled is false: the agent itself saves nothing for training; "
              "this one image is uploaded all the same", file=sys.stderr)
    request = describe(cfg, camera=camera, reason=str(Reason.ON_DEMAND), captured_at=captured_at,
                       batch_at=time.time(), label=label)
    shown, problem = asyncio.run(_collect(cfg, jpeg, f"{uuid.uuid4().hex}.jpg", request, label))
    if shown is not None:
        print(json.dumps(shown, indent=2))
    if problem is not None:
        print(f"edge-agent: {redactor(problem)}", file=sys.stderr)
        return EXIT_FATAL
    return EXIT_OK


async def _collect(cfg: Config, jpeg: bytes, name: str, request: Description,
                   label: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """Upload, then label (a person's label) when one is given: what to print (None
    when nothing was uploaded) and the problem (None when there is none)."""
    from .classify import new_session
    from .dataset.upload import UploadClient, UploadError

    ds = cfg.dataset
    async with new_session(cfg.api) as session:
        client = UploadClient(session, api_key=ds.api_key or None, url=ds.url, timeout=ds.timeout)
        try:
            uploaded = await client.upload(jpeg, name=name, project=ds.project, batch=request.batch,
                                           tags=request.tags, metadata=request.metadata)
        except UploadError as err:
            return None, _collect_error(err, cfg, annotating=False)
        shown: dict[str, Any] = {"project": ds.project, "name": name, "batch": request.batch,
                                 "tags": list(request.tags), "id": uploaded.image_id,
                                 "duplicate": uploaded.duplicate}
        if label is None:
            return shown, None
        shown.update(label=label, annotation=None)
        if uploaded.image_id is None:
            return shown, "the image was in the dataset already and the reply named no id: not labelled"
        try:
            annotated = await client.annotate(uploaded.image_id, label, project=ds.project, prediction=False)
        except UploadError as err:
            return shown, _collect_error(err, cfg, annotating=True)
        shown["annotation"] = str(annotated)
        return shown, None


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
    handler = {"run": cmd_run, "check": cmd_check, "classify": cmd_classify, "collect": cmd_collect,
               "install-service": cmd_install_service}[args.command]
    return handler(args)
