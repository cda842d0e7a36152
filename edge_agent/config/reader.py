"""One generic reader: a YAML mapping -> a config dataclass, driven by the fields' specs.

Design rule: the reader knows kinds (text, number, integer, true/false, choice,
raw-for-a-converter, nested section), never a section or a key by name. It walks
the dataclass's fields in order, reads each key by the field's spec (spec.py),
falls back to the dataclass's default when the key is absent or null, recurses
into nested sections and, once a section's keys are read, runs the cross-field
rule the context holds for that dataclass (parse.py). Unknown keys are checked
first, so a misspelt required key is a typo ("did you mean"), not a missing key.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from .errors import ConfigError, fmt, show
from .section import Section
from .spec import Context, Kind, Presence, Spec, spec_of


def yaml_key(f: dataclasses.Field[Any]) -> str | None:
    """The key a field is written as, or None when another key's converter fills it."""
    spec = spec_of(f)
    return None if spec.kind is Kind.DERIVED else spec.key or f.name


def keys_of(cls: type) -> set[str]:
    return {k for f in dataclasses.fields(cls) if (k := yaml_key(f)) is not None}


def default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def read(cls: type, sec: Section, ctx: Context, *, defaults: Mapping[str, Any] | None = None,
         inherit: Mapping[str, Mapping[str, Any]] | None = None) -> Any:
    """Read ``sec`` as a ``cls``. ``defaults`` replace the dataclass's defaults (e.g. a
    default made from the device's name); ``inherit`` lays a mapping under a nested
    section's own keys (a camera's ``decide`` over the top-level one)."""
    sec.check_keys(keys_of(cls))
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        spec = spec_of(f)
        if spec.kind is Kind.DERIVED:
            continue
        if spec.kind is Kind.SECTIONS:  # the parent's rule reads it (it knows what the items inherit)
            values[f.name] = default_of(f)
            continue
        value = read_field(f, sec, ctx, default=(defaults or {}).get(f.name, dataclasses.MISSING),
                           inherit=(inherit or {}).get(f.name))
        if spec.fills:
            values.update(zip(spec.fills, value if value is not None
                              else tuple(default_of(by_name[n]) for n in spec.fills)))
        else:
            values[f.name] = value
    rule = ctx.rules.get(cls)
    if rule is not None:
        rule(values, sec, ctx)
    return cls(**values)


def read_field(f: dataclasses.Field[Any], sec: Section, ctx: Context, *, default: Any = dataclasses.MISSING,
               inherit: Mapping[str, Any] | None = None) -> Any:
    """One field's value from its key in ``sec`` (None for ``fills`` fields left out)."""
    spec = spec_of(f)
    name = spec.key or f.name
    key = sec.key(name)
    if default is dataclasses.MISSING:
        default = None if spec.fills else default_of(f)
    if spec.kind is Kind.SECTION:
        return _section(spec, name, sec, ctx, default, inherit)
    if spec.kind is Kind.SECTIONS:
        raise TypeError(f"{key}: a list of sections is read by its caller, one read() for each")
    value = sec.get(name)
    if value is None:
        if spec.required:
            raise ConfigError(key, "is required")
        return default
    if spec.kind is Kind.RAW:
        assert spec.convert is not None
        return spec.convert(value, key, ctx)
    if spec.kind in (Kind.NUMBER, Kind.INTEGER):
        return number(value, key, spec)
    if spec.kind is Kind.FLAG:
        return flag(value, key)
    value = text(value, key, spec)
    if spec.kind is Kind.CHOICE:
        if value not in spec.choices:
            raise ConfigError(key, f"must be one of {', '.join(spec.choices)}, got {value!r}")
        return spec.enum_type(value) if spec.enum_type is not None else value
    if spec.blank_is_default and not value:
        return default
    return spec.convert(value, key, ctx) if spec.convert is not None else value


def _section(spec: Spec, name: str, sec: Section, ctx: Context, default: Any,
             inherit: Mapping[str, Any] | None) -> Any:
    raw = sec.get(name)
    key = sec.key(name)
    if raw is None:
        if spec.presence is Presence.REQUIRED:
            raise ConfigError(key, "is required")
        if spec.presence is Presence.GIVEN or (spec.presence is Presence.PRESENT and name not in sec.data):
            return default
    if inherit is not None:
        if raw is not None and not isinstance(raw, Mapping):
            raise ConfigError(key, f"must be a mapping, got {show(raw)}")
        raw = {**inherit, **(raw or {})}
    assert spec.of is not None
    return read(spec.of, Section(key, raw), ctx)


def text(value: Any, key: str, spec: Spec) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(key, f"must be a string, got {show(value)}")
    value = str(value)
    if spec.required and not value:
        raise ConfigError(key, "must not be empty")
    if spec.pattern is not None and not spec.pattern.match(value):
        raise ConfigError(key, f"must match {spec.hint or spec.pattern.pattern}, got {value!r}")
    return value


def number(value: Any, key: str, spec: Spec) -> Any:
    integer = spec.kind is Kind.INTEGER
    if isinstance(value, str):  # e.g. "${MQTT_PORT}" after expansion
        value = _number_from_text(value, integer)
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        want = "an integer" if integer else "a number"
        raise ConfigError(key, f"must be {want}, got {show(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, f"must be a finite number, got {value}")
    if isinstance(value, int) and abs(value) > 10**15:
        raise ConfigError(key, f"is out of range, got {show(value)}")
    if spec.gt is not None and not value > spec.gt:
        raise ConfigError(key, f"must be > {fmt(spec.gt)}, got {value}")
    if spec.ge is not None and not value >= spec.ge:
        raise ConfigError(key, f"must be >= {fmt(spec.ge)}, got {value}")
    if spec.le is not None and not value <= spec.le:
        raise ConfigError(key, f"must be <= {fmt(spec.le)}, got {value}")
    return int(value) if integer else float(value)


def flag(value: Any, key: str) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        value = value.strip().lower() == "true"  # e.g. "${LOOP}" after expansion
    if not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false, got {show(value)}")
    return value


def _number_from_text(text: str, integer: bool) -> Any:
    """A number written as text (from ``${VAR}``); unchanged if it is not one."""
    try:
        return int(text.strip()) if integer else float(text.strip())
    except ValueError:
        return text

