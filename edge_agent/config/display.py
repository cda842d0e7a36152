"""Display: the effective config as plain data, every secret masked (what ``edge-agent check`` prints).

Design rule: what is printed is itself a valid config meaning the same: parsed
again it gives an equal Config, but for the masked secrets (``***``), so nothing
is printed that the reader would not take back.
"""

from __future__ import annotations

import enum
from dataclasses import fields, is_dataclass
from typing import Any

from ..redact import redact_url
from .model import Config
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
