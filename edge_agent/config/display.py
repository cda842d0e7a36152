"""Display: the effective config as plain data, every secret masked (what ``edge-agent check`` prints).

Design rule: what is printed is itself a valid config meaning the same: parsed
again it gives an equal Config, but for the masked secrets (``***``), so nothing
is printed that the reader would not take back. The summaries after it
(:func:`endpoint_lines`) are prose for a person, printed as YAML comments; a URL
in them is redacted as in the config, and a key is never in them.
"""

from __future__ import annotations

import enum
from dataclasses import fields, is_dataclass
from typing import Any

from ..redact import redact_url
from .errors import fmt
from .model import BudgetConfig, Config, FailoverWhen
from .spec import Kind

MASK = "***"


def plain(obj: Any) -> Any:
    """A config value as YAML would hold it (dataclasses as mappings without their
    None fields, tuples as lists, enums as their words): what the reader takes back."""
    if is_dataclass(obj):
        return {f.name: plain(getattr(obj, f.name)) for f in fields(obj)
                if getattr(obj, f.name) is not None and not _derived(f)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (tuple, list)):
        return [plain(x) for x in obj]
    return obj


def _derived(f: Any) -> bool:
    """Filled from other keys (status.port from listen; a target's view_of, view): never written."""
    spec = f.metadata.get("spec")
    return spec is not None and spec.kind is Kind.DERIVED


def masked(cfg: Config) -> dict[str, Any]:
    """The effective config as plain data, every secret masked (``***``).

    It is itself a valid config meaning the same (``check`` prints it): parsed
    again it gives an equal Config, but for the masked secrets. So None values
    are left out (``tls: null`` would mean TLS), tuples become lists, ``status``
    is written as ``listen: HOST:PORT`` and a key read from a file is shown as
    that file, not as a masked key next to it (both would be an error)."""

    out = plain(cfg)
    api = out["api"]
    if cfg.api.api_key_file or not cfg.api.api_key:
        api.pop("api_key", None)
    else:
        api["api_key"] = MASK
    api["url"] = redact_url(api["url"])
    dataset = out["dataset"]
    if cfg.dataset.api_key_file or not cfg.dataset.api_key or cfg.dataset.api_key == cfg.api.api_key:
        dataset.pop("api_key", None)  # from the file, or api.api_key's (the default)
    else:
        dataset["api_key"] = MASK
    dataset["url"] = redact_url(dataset["url"])
    fallback = cfg.api.fallback
    if fallback is not None:
        shown = api["fallback"]
        if fallback.api_key_file or not fallback.api_key or fallback.api_key == cfg.api.api_key:
            shown.pop("api_key", None)  # from the file, or api.api_key's (the default)
        else:
            shown["api_key"] = MASK
        shown["url"] = redact_url(shown["url"])
    if cfg.mqtt.password:
        out["mqtt"]["password"] = MASK
    status: dict[str, Any] = {"enabled": cfg.status.enabled, "listen": cfg.status.listen}
    auth = cfg.status.auth
    if auth is not None:
        status["auth"] = ({"username": auth.username, "password_file": auth.password_file} if auth.password_file
                          else {"username": auth.username, "password": MASK})
    status["public"] = cfg.status.public
    out["status"] = status
    for cam in out["cameras"]:
        cam["source"] = redact_url(cam["source"])
        if not cam.get("views"):
            cam.pop("views", None)  # no views: the camera is its own one view (an empty list is an error)
    return out


def _budget(budget: BudgetConfig) -> str:
    caps = ([f"{budget.calls_per_day} calls/day"] if budget.calls_per_day is not None else []) + \
        ([f"{fmt(budget.credits_per_day)} credits/day"] if budget.credits_per_day is not None else [])
    return f"budget: {', '.join(caps)}" if caps else "no budget"


def endpoint_lines(cfg: Config) -> list[str]:
    """One line per endpoint (what ``check`` prints after the config): its URL
    (redacted), the model it is asked for, where its key comes from (never the key),
    and for the fallback when calls go to it and how the primary is probed meanwhile."""
    api = cfg.api
    key = "no key" if not api.api_key else f"key from api.{'api_key_file' if api.api_key_file else 'api_key'}"
    lines = [f"primary: {redact_url(api.url)} model {api.model}, {key} ({_budget(api.budget)})"]
    fb = api.fallback
    if fb is None:
        return lines + ["fallback: none (api.fallback not set: the primary alone)"]
    if fb.api_key_file:
        fb_key = "key from api.fallback.api_key_file"
    elif not fb.api_key:
        fb_key = "no key"
    elif fb.api_key == api.api_key:
        fb_key = "the primary's key"
    else:
        fb_key = "key from api.fallback.api_key"
    model = fb.model_for(api.model, api.model)
    own = sorted({t.model for t in cfg.targets() if t.model and t.model != api.model})
    models = f"model {model}" + (f" (a camera's own model as it is: {', '.join(own)})" if own else "")
    when = " or ".join("the budget is spent" if w is FailoverWhen.BUDGET else str(w) for w in fb.when)
    switch = f"switch after {fmt(fb.switch_after)} s, " if FailoverWhen.UNREACHABLE in fb.when else ""
    return lines + [f"fallback: {redact_url(fb.url)} {models}, {fb_key}, when {when}; {switch}probe the primary "
                    f"every {fmt(fb.probe)} s (up to {fmt(fb.probe_max)} s); its calls counted apart from the budget"]
