"""How a config field is read, declared beside the field itself.

Design rule: a dataclass field of the config model says everything the reader
needs to know about its YAML key in its ``metadata["spec"]``: its kind (text,
number, integer, true/false, one of a few words, a nested section, or a raw value
for a named converter), its bounds, whether it is required and which converter
checks it. The helpers below (``num(2.0, gt=0, le=60)``, ``text(...)``, ...) are
the one way to declare a field, so a limit always sits next to its field and the
reader (reader.py) never names a section or a key.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .section import Section


@dataclass(frozen=True)
class Context:
    """What reading a config needs beyond the YAML: where relative paths start, and
    the cross-field rule run after each section of a kind is read (parse.py)."""
    base_dir: Path
    rules: Mapping[type, Rule]


# A converter checks and converts one given (non-null) value: (value, key path, context) -> value.
Converter = Callable[[Any, str, Context], Any]
# A rule checks and completes one section's values before the dataclass is built.
Rule = Callable[[dict[str, Any], Section, Context], None]


class Kind(enum.Enum):
    TEXT = "text"  # a string (a number is taken as its text)
    NUMBER = "number"  # int or float, kept as float
    INTEGER = "integer"
    FLAG = "flag"  # true or false
    CHOICE = "choice"  # one of a few words
    RAW = "raw"  # the YAML value as is, for the spec's converter
    SECTION = "section"  # a nested mapping read as the spec's dataclass
    SECTIONS = "sections"  # a list of such mappings
    DERIVED = "derived"  # no key of its own: filled by another key's converter


class Presence(enum.Enum):
    """When a nested section is there (and not None)."""
    ALWAYS = "always"  # absent or null reads as an empty mapping: every default
    REQUIRED = "required"  # absent or null is an error
    PRESENT = "present"  # there when the key is, even null ("tls:" alone means TLS)
    GIVEN = "given"  # there when the key has a value


@dataclass(frozen=True)
class Spec:
    kind: Kind
    required: bool = False
    gt: float | None = None
    ge: float | None = None
    le: float | None = None
    pattern: re.Pattern[str] | None = None
    hint: str = ""  # shown for the pattern in "must match ..."
    choices: tuple[str, ...] = ()
    enum_type: type[enum.Enum] | None = None  # CHOICE: the value becomes this enum
    convert: Converter | None = None  # TEXT: after the text is read; RAW: the whole reading
    of: type | None = None  # SECTION(S): the dataclass read
    presence: Presence = Presence.ALWAYS
    key: str = ""  # the YAML key when it is not the field's name
    fills: tuple[str, ...] = ()  # the fields the converter's tuple fills (else just this one)
    blank_is_default: bool = False  # TEXT: "" means the default

    @property
    def bounded(self) -> bool:
        return self.gt is not None or self.ge is not None or self.le is not None


def spec_of(f: dataclasses.Field[Any]) -> Spec:
    return f.metadata["spec"]


def _field(default: Any, spec: Spec, *, repr: bool = True) -> Any:
    meta = {"spec": spec}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta, repr=repr)
    return dataclasses.field(default=default, metadata=meta, repr=repr)


NO_DEFAULT: Any = dataclasses.MISSING  # no default: the field is required, or filled by the caller or a rule


def text(default: Any = NO_DEFAULT, *, required: bool = False, pattern: re.Pattern[str] | None = None,
         hint: str = "", convert: Converter | None = None, blank_is_default: bool = False, key: str = "",
         fills: tuple[str, ...] = (), repr: bool = True) -> Any:
    return _field(default, Spec(Kind.TEXT, required=required, pattern=pattern, hint=hint, convert=convert,
                                blank_is_default=blank_is_default, key=key, fills=fills), repr=repr)


def num(default: float | None, *, gt: float | None = None, ge: float | None = None,
        le: float | None = None) -> Any:
    return _field(default, Spec(Kind.NUMBER, gt=gt, ge=ge, le=le))


def integer(default: int | None, *, ge: int | None = None, le: int | None = None) -> Any:
    return _field(default, Spec(Kind.INTEGER, ge=ge, le=le))


def flag(default: bool) -> Any:
    return _field(default, Spec(Kind.FLAG))


def choice(default: Any, choices: tuple[str, ...] = (), *, of: type[enum.Enum] | None = None) -> Any:
    """One of ``choices``, or of the values of the enum ``of`` (the value read is then that enum)."""
    words = tuple(m.value for m in of) if of is not None else choices
    return _field(default, Spec(Kind.CHOICE, choices=words, enum_type=of))


def custom(default: Any = NO_DEFAULT, *, convert: Converter, required: bool = False) -> Any:
    return _field(default, Spec(Kind.RAW, convert=convert, required=required))


def section(of: type, presence: Presence = Presence.ALWAYS, *, default: Any = None) -> Any:
    """A nested section; its default is ``of()`` when always there, else None, unless given."""
    if default is None and presence is Presence.ALWAYS:
        default = of()
    elif presence is Presence.REQUIRED:
        default = NO_DEFAULT
    return _field(default, Spec(Kind.SECTION, of=of, presence=presence,
                                required=presence is Presence.REQUIRED))


def sections(of: type, default: Any = NO_DEFAULT) -> Any:
    """A list of sections, read by a rule of its parent (or, at the top, by parse.py)."""
    return _field(default, Spec(Kind.SECTIONS, of=of))


def derived(default: Any) -> Any:
    return _field(default, Spec(Kind.DERIVED))
