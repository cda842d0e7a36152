"""What the status page, /api/status, /api/events and /healthz show (plain data built
from the agent's state; no I/O). The log's and systemd's one-liners are in ``report.py``.

Training data (``dataset``) is shown per camera whose frames are collected, as the
status topic carries it, and each event says whether its frame was saved for training.

Views (issue #21): ``agent.cameras`` holds one runtime per target, a view being a target
named ``<camera>-<view>``. /api/status lists every target as before and says what each
is (``view_of``: its camera or None, ``view``: its own name or None, ``model``: the
model it calls), so a client groups a camera's views; the page does. What is the
camera's (its picture, health) is read once per camera: its views share its capture
thread and health.

A fallback endpoint (issue #22): ``api.endpoint`` says which endpoint calls go to, and
``api.fallback`` describes the fallback as the status topic does (``active``, ``reason``,
``since``, ``calls``, ``failed``) with its URL (redacted) and model; null without one.
``api.url`` and ``api.model`` stay the primary's; ``api.status`` and ``last_error`` are the
endpoint in use's."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..messages import budget_payload
from ..health import assess
from ..camera import by_camera
from ..stats import percentile

if TYPE_CHECKING:
    import numpy as np

    from ..readmodel import AgentView
    from ..camera import CameraRuntime
    from ..storage.event import Event


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def dataset_view(agent: "AgentView", camera: str) -> dict[str, Any] | None:
    """The camera's training data (DatasetStatus.payload()); None unless it is collected."""
    collection = agent.collection
    if collection is None or not collection.enabled_for(camera):
        return None
    out = collection.status(camera).payload()
    if out["last_error"]:
        out["last_error"] = agent.redact(out["last_error"])
    return out


def event_view(agent: "AgentView", event: "Event") -> dict[str, Any]:
    """An event as /api/events lists it: its picture's URL, and whether the frame that
    decided it was saved for training."""
    collection = agent.collection
    saved = (collection is not None and event.at >= agent.started_at  # saved() knows this start's frames only
             and collection.saved(event.camera, event.at))
    return {**event.payload(), "thumbnail": f"/api/events/{event.id}.jpg" if event.has_thumbnail else None,
            "saved_for_training": saved}


def fallback_view(agent: "AgentView") -> dict[str, Any] | None:
    """``api.fallback``: the fallback's URL (redacted), model and figures; None without one."""
    fallback, shown = agent.endpoints.fallback, agent.endpoints.view().payload()
    if fallback is None or shown is None:
        return None
    return {"url": agent.redact(fallback.api.url), "model": fallback.api.model, **shown}


def camera_view(agent: "AgentView", cam: "CameraRuntime", now: float) -> dict[str, Any]:
    counts = cam.counters()
    lat = cam.figures.latency.summary(now)
    state = cam.debouncer.state
    latest = cam.results.latest
    return {
        "name": cam.name,
        "view_of": cam.cfg.view_of,  # the camera this view looks through; None: a camera without views
        "view": cam.cfg.view,
        "model": cam.cfg.model or agent.cfg.api.model,
        "source": cam.worker.spec.describe() if cam.worker else agent.redact(cam.cfg.source),
        "online": cam.health.online,
        "enabled": cam.enabled,
        "fps": round(cam.fps, 3),
        "region": list(cam.cfg.region) if cam.cfg.region else None,
        "state": None if state is None else {"class": state.cls, "confidence": round(state.confidence, 4),
                                             "since": round(state.since, 3)},
        "latest": None if latest is None else {
            "seq": latest.seq, "top": latest.result.top, "confidence": round(latest.result.confidence, 4),
            "captured_at": round(latest.captured_at, 3), "latency_ms": _ms(latest.latency_ms),
            "image": f"/cameras/{cam.name}/latest.jpg?seq={latest.seq}"},
        # Online while the API fails: the frame that was sent, to aim the camera by.
        "unclassified_image": f"/cameras/{cam.name}/latest.jpg?u={cam.figures.requests_failed}"
        if latest is None and cam.results.unclassified is not None else None,
        "frames_in_per_s": round(cam.figures.rate_in.per_second(), 2),
        "frames_out_per_s": round(cam.figures.rate_out.per_second(), 2),
        "frames_captured": counts["captured"],
        "frames_dropped": counts["dropped"],
        "frames_sent": counts["sent"],
        "frames_unchanged": counts["unchanged"],
        "decode": cam.worker.source_info if cam.worker else None,
        "calls": dict(cam.admission.calls),
        "change_gate": {"enabled": cam.cfg.change.enabled, "threshold": cam.cfg.change.threshold,
                        "heartbeat": cam.cfg.change.heartbeat},
        "last_change": None if cam.admission.last_change_at is None else round(cam.admission.last_change_at, 3),
        "requests_ok": cam.figures.requests_ok,
        "requests_failed": cam.figures.requests_failed,
        "camera_failures": cam.health.failures,
        "latency_ms": {"median": _ms(lat["median"]), "p95": _ms(lat["p95"]), "count": lat["count"]},
        "last_error": cam.health.last_error,
        "recent": [{"at": round(at, 3), "top": top, "confidence": round(conf, 4)}
                   for at, top, conf in cam.results.recent],
        "dataset": dataset_view(agent, cam.name),
    }


def status_view(agent: "AgentView") -> dict[str, Any]:
    now = time.monotonic()
    pub = agent.mqtt()
    all_latencies = [v for cam in agent.cameras.values() for v in cam.figures.latency.values(now)]
    return {
        "device_id": agent.cfg.device_id,
        "version": __version__,
        "uptime_s": round(time.time() - agent.started_at, 1),
        "api": {"status": agent.guard.status, "model": agent.cfg.api.model, "url": agent.redact(agent.cfg.api.url),
                "endpoint": str(agent.endpoints.active.name), "fallback": fallback_view(agent),
                "last_error": agent.guard.last_error and agent.redact(agent.guard.last_error),
                "latency_ms": {"median": _ms(percentile(all_latencies, 50)), "p95": _ms(percentile(all_latencies, 95)),
                               "count": len(all_latencies)},
                "in_flight": agent.inflight.count, "max_in_flight": agent.inflight.limit},
        "mqtt": {"connected": bool(pub and pub.connected), "broker": f"{agent.cfg.mqtt.host}:{agent.cfg.mqtt.port}",
                 "messages_dropped": pub.messages_dropped if pub else 0, "queued": pub.pending if pub else 0,
                 "disconnects": pub.disconnects if pub else 0},
        "budget": budget_payload(agent.budget.view()),
        "events": {**agent.events.stats(),
                   "commit_ms": {"median": _ms(percentile([s * 1000 for s in agent.events.add_seconds], 50)),
                                 "p95": _ms(percentile([s * 1000 for s in agent.events.add_seconds], 95))}},
        "cameras": [camera_view(agent, cam, now) for cam in agent.cameras.values()],
    }


def camera_frame(agent: "AgentView", camera: str) -> tuple[str, "np.ndarray"] | None:
    """The newest whole frame a camera with views was classified on (any view's), or,
    before any was, one sent whose classification failed: ``(key, preview)``, the key
    naming that frame (``<target>.<seq>``, ``<target>.u<failed requests>``). None: no such
    camera, or no frame yet."""
    views = [c for c in agent.cameras.values() if c.cfg.view_of == camera]
    shown = [(c.name, c.results.latest) for c in views if c.results.latest is not None]
    if shown:
        name, newest = max(shown, key=lambda s: s[1].captured_at)
        return f"{name}.{newest.seq}", newest.preview
    for cam in views:
        if cam.results.unclassified is not None:
            return f"{cam.name}.u{cam.figures.requests_failed}", cam.results.unclassified
    return None


def health(agent: "AgentView") -> tuple[bool, list[str]]:
    """Healthy when every camera delivered a frame within its stall timeout and MQTT is
    connected; a camera with views is one camera here (its views share its capture)."""
    now = time.monotonic()
    reasons = []
    for camera, views in by_camera(agent.cameras.values()).items():
        cam = views[0]
        problem = assess(cam.worker, now).problem() if cam.worker else "no frame yet"
        if problem is not None:
            # The reason /api/status gives ("file ... not found"), where there is one.
            if not cam.health.online and cam.health.last_error and cam.health.last_error.startswith("camera: "):
                problem = cam.health.last_error[len("camera: "):]
            reasons.append(f"camera {camera}: {problem}")
    pub = agent.mqtt()
    if not (pub and pub.connected):
        reasons.append("mqtt: not connected")
    return not reasons, reasons
