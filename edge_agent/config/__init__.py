"""Configuration: YAML file -> typed, validated, frozen dataclasses.

Every problem raises :class:`ConfigError` naming the key path and what is wrong,
e.g. ``cameras[1].fps: must be > 0, got -2``.  Unknown keys are errors, so a typo
never passes silently.  ``${VAR}`` (or ``${VAR:-default}``) expands from the
environment in any string value; a bare ``$VAR`` is an error (it would be taken
literally), and :func:`masked` prints a config that parses back to the same one.

Design rule: this is the package's face, names only. As the data flows:
files.py (bounded bytes, YAML) -> env.py (``${VAR}``) -> reader.py (one generic
reader, driven by the fields' specs in model.py; converters in convert.py) ->
parse.py (top-level order, cross-field rules) -> Config; display.py prints it.
"""

from .display import MASK, masked
from .env import default_device_id, default_state_dir, expand_env, literal_secrets
from .env import url_secrets as _url_secrets
from .errors import ConfigError
from .files import read_bounded_text
from .limits import (AGENT_THREADS, MAX_CAMERAS, MAX_CONFIG_BYTES, MAX_DEPTH, MAX_KEY_FILE_BYTES, MAX_NODES,
                     TASKS_MAX, THREADS_PER_CAMERA)
from .convert import Box
from .model import (KEY_TRANSPORTS, MQTT_TLS_PORT, ApiConfig, BudgetConfig, CameraConfig, ChangeConfig, Config,
                    DecideConfig, DecodeMode, EventsConfig, FailoverWhen, FallbackConfig, HomeAssistantConfig, MqttConfig, StatusAuthConfig,
                    StatusConfig, TlsConfig, is_loopback_host)
from .parse import load_config, parse_config

__all__ = [
    "AGENT_THREADS", "KEY_TRANSPORTS", "MASK", "MAX_CAMERAS", "MAX_CONFIG_BYTES", "MAX_DEPTH", "MAX_KEY_FILE_BYTES",
    "MAX_NODES", "MQTT_TLS_PORT", "TASKS_MAX", "THREADS_PER_CAMERA", "ApiConfig", "Box", "BudgetConfig",
    "CameraConfig", "ChangeConfig", "Config", "ConfigError", "DecideConfig", "DecodeMode", "EventsConfig",
    "FailoverWhen", "FallbackConfig",
    "HomeAssistantConfig", "MqttConfig", "StatusAuthConfig", "StatusConfig", "TlsConfig", "_url_secrets",
    "default_device_id", "default_state_dir", "expand_env", "is_loopback_host", "literal_secrets", "load_config",
    "masked", "parse_config", "read_bounded_text",
]
