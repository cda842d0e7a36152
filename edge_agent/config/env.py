"""What a config takes from the environment, and which secrets it holds.

Design rule: ``${VAR}`` (or ``${VAR:-default}``) expands from the environment in
any string value, before any key is read; a bare ``$VAR`` is an error (YAML would
take it literally). The defaults the machine gives (the device's name from the
host name, systemd's state directory) and the secrets a config carries (keys,
passwords, credentials in URLs) are found here too, so a secret is named in one
place: what is never logged, and what a world-readable file must not hold.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
from typing import Any, Mapping
from urllib.parse import urlsplit

import yaml

from ..redact import url_has_credentials
from .errors import ConfigError
from .limits import MAX_DEPTH, MAX_NODES

ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
BARE_ENV_RE = re.compile(r"^\$([A-Z_][A-Z0-9_]*)$")  # $NAME: a shell habit, taken literally by YAML


def expand_env(node: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Expand ``${VAR}`` / ``${VAR:-default}`` in every string of a parsed YAML tree.

    YAML aliases (``*name``) share one object however often they are used, but this
    copies each use; nested aliases ("billion laughs") would grow without end, so
    the walk stops with a ConfigError past MAX_NODES values or MAX_DEPTH levels."""
    count = [0]

    def walk(node: Any, path: str, depth: int) -> Any:
        count[0] += 1
        if count[0] > MAX_NODES:
            raise ConfigError(path, f"the config has more than {MAX_NODES} values once YAML aliases "
                                    "(*name) are expanded; are aliases nested in aliases?")
        if depth > MAX_DEPTH:
            raise ConfigError(path, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, Mapping):
            return {k: walk(v, f"{path}.{k}" if path else str(k), depth + 1) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(node)]
        if isinstance(node, str):
            bare = BARE_ENV_RE.match(node)
            if bare:
                raise ConfigError(path, f"looks like an environment variable; write ${{{bare.group(1)}}} to use one")

            def repl(m: re.Match[str]) -> str:
                name, default = m.group(1), m.group(2)
                if name in env and env[name] != "":
                    return env[name]
                if default is not None:
                    return default
                raise ConfigError(path, f"environment variable {name} is not set")

            return ENV_RE.sub(repl, node)
        return node

    return walk(node, path, 0)


def literal_secrets(text: str) -> bool:
    """Does this config text write a secret out (not ``${VAR}`` or a key file)?"""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    if not isinstance(data, Mapping):
        return False
    found = []
    status = data.get("status")
    auth = status.get("auth") if isinstance(status, Mapping) else None
    for section, key in (("api", "api_key"), ("mqtt", "password"), ("auth", "password")):
        holder = auth if section == "auth" else data.get(section)
        value = holder.get(key) if isinstance(holder, Mapping) else None
        if isinstance(value, (str, int)) and str(value) and not ENV_RE.fullmatch(str(value).strip()):
            found.append(key)
    for cam in data.get("cameras") or []:
        if isinstance(cam, Mapping) and url_has_credentials(str(cam.get("source", ""))) \
                and not ENV_RE.search(str(cam.get("source", ""))):
            found.append("source")
    return bool(found)


def source_secrets(source: str) -> list[str]:
    """The credentials in a camera's source: in its URL, or in any URL of an ``exec:`` command line."""
    if source.startswith("exec:"):  # a command line: any URL in it may carry credentials
        return [s for word in shlex.split(source[len("exec:"):]) for s in url_secrets(word)]
    return url_secrets(source)


def url_secrets(url: str) -> list[str]:
    if not url_has_credentials(url):
        return []
    parts = urlsplit(url)
    return [s for s in (parts.password, f"{parts.username}:{parts.password}") if s and len(s) >= 3]


def default_device_id() -> str:
    name = re.sub(r"[^a-z0-9_-]+", "-", socket.gethostname().lower()).strip("-")
    return name or "edge-agent"


def default_state_dir(env: Mapping[str, str]) -> str:
    """systemd's ``StateDirectory=`` (``$STATE_DIRECTORY``), else the XDG state folder."""
    given = env.get("STATE_DIRECTORY", "")
    if given:
        return given.split(":")[0]
    base = env.get("XDG_STATE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "edge-agent")
