"""The config package's design: bounds live beside their fields, and one generic reader reads them.

test_config.py pins what a config means and every error message; this file pins
how that is built: every field of the model declares how it is read, every
number its bounds, and the reader (which names no section and no key) enforces
each bound wherever its field is, including on a dataclass it has never seen.
"""

import ast
import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_agent import config as config_package
from edge_agent.config import Config, ConfigError, parse_config
from edge_agent.config import reader
from edge_agent.config.errors import fmt
from edge_agent.config.section import Section
from edge_agent.config.spec import Context, Kind, choice, custom, flag, integer, num, section, spec_of, text

PACKAGE = Path(config_package.__file__).resolve().parent

GOOD = {
    "device_id": "garage-pi",
    "api": {"url": "http://127.0.0.1:9001", "model": "garage-door/3"},
    "cameras": [{"name": "door", "source": "0"}],
}


def model_classes(cls=Config, seen=None):
    """Every dataclass of the model, from Config down."""
    seen = [] if seen is None else seen
    if cls not in seen:
        seen.append(cls)
        for f in dataclasses.fields(cls):
            of = spec_of(f).of
            if of is not None:
                model_classes(of, seen)
    return seen


# Where each section of the model is written in a config (a dataclass may sit in more than one place).
PATHS = {"Config": "", "ApiConfig": "api", "BudgetConfig": "api.budget", "MqttConfig": "mqtt",
         "TlsConfig": "mqtt.tls", "DecideConfig": "cameras[0].decide", "CameraConfig": "cameras[0]",
         "ChangeConfig": "cameras[0].change", "StatusConfig": "status", "StatusAuthConfig": "status.auth",
         "HomeAssistantConfig": "homeassistant", "EventsConfig": "events", "DatasetConfig": "dataset",
         "SamplingConfig": "cameras[0].sampling", "ViewConfig": "cameras[0].views[0]",
         "FallbackConfig": "api.fallback"}
# What a section needs before its other keys are read (a required key of its own).
NEEDS = {"api.fallback": {"url": "http://127.0.0.1:9002"}}


def test_every_field_of_the_model_declares_how_it_is_read():
    classes = model_classes()
    assert {c.__name__ for c in classes} == set(PATHS)
    for cls in classes:
        for f in dataclasses.fields(cls):
            spec = spec_of(f)  # a KeyError here: a field without a spec
            assert isinstance(spec.kind, Kind), f"{cls.__name__}.{f.name}"
            if spec.kind in (Kind.NUMBER, Kind.INTEGER):
                assert spec.bounded, f"{cls.__name__}.{f.name} declares no bounds"
            if spec.kind is Kind.RAW:
                assert spec.convert is not None, f"{cls.__name__}.{f.name} names no converter"
            if spec.kind is Kind.CHOICE:
                assert spec.choices, f"{cls.__name__}.{f.name} offers no choice"


def out_of_bounds(spec):
    """(value, the problem the reader must name) for each bound the spec declares."""
    integer = spec.kind is Kind.INTEGER
    if spec.gt is not None:
        yield spec.gt, f"must be > {fmt(spec.gt)}, got {spec.gt}"
    if spec.ge is not None:
        bad = spec.ge - 1 if integer else spec.ge - 0.5
        yield bad, f"must be >= {fmt(spec.ge)}, got {bad}"
    if spec.le is not None:
        bad = spec.le + 1
        yield bad, f"must be <= {fmt(spec.le)}, got {bad}"


def bounded_fields():
    for cls in model_classes():
        for f in dataclasses.fields(cls):
            spec = spec_of(f)
            if spec.kind in (Kind.NUMBER, Kind.INTEGER):
                for value, problem in out_of_bounds(spec):
                    yield pytest.param(PATHS[cls.__name__], f.name, value, problem,
                                       id=f"{cls.__name__}.{f.name}={value}")


def put(data, path, name, value):
    node = data
    parts = path.replace("]", "").replace("[", ".").split(".") if path else []
    for part, after in zip(parts, parts[1:] + [""]):
        if part.isdigit():
            while len(node) <= int(part):
                node.append({"name": f"v{len(node)}"})  # a list of sections, e.g. a camera's views
            node = node[int(part)]
        else:
            node = node.setdefault(part, [] if after.isdigit() else {})
    node[name] = value
    return data


@pytest.mark.parametrize("path,name,value,problem", list(bounded_fields()))
def test_every_bound_declared_in_the_model_is_enforced_where_its_field_is(path, name, value, problem):
    data = copy.deepcopy(GOOD)
    for needed, given in NEEDS.get(path, {}).items():
        put(data, path, needed, given)
    data = put(data, path, name, value)
    with pytest.raises(ConfigError) as err:
        parse_config(data, {}, base_dir=Path("/"))
    key = f"{path}.{name}" if path else name
    assert (err.value.key, err.value.problem) == (key, problem)


# A dataclass the reader has never seen: if the reader were a parser per section, it could not read it.
@dataclass(frozen=True)
class Inner:
    size: int = integer(3, ge=1, le=5)


@dataclass(frozen=True)
class Gadget:
    label: str = text(required=True)
    speed: float = num(1.0, gt=0, le=10)
    mode: str = choice("slow", ("slow", "fast"))
    on: bool = flag(True)
    tags: tuple[str, ...] = custom((), convert=lambda value, key, ctx: tuple(str(v) for v in value))
    inner: Inner = section(Inner)


def read_gadget(data, rules=None):
    return reader.read(Gadget, Section("gadget", data), Context(base_dir=Path("/"), rules=rules or {}))


def test_the_reader_reads_a_dataclass_it_has_never_seen():
    assert read_gadget({"label": "x"}) == Gadget(label="x")  # the defaults are the dataclass's own
    assert read_gadget({"label": "x", "speed": "2.5", "mode": "fast", "on": "false", "tags": [1, "b"],
                        "inner": {"size": 5}}) \
        == Gadget(label="x", speed=2.5, mode="fast", on=False, tags=("1", "b"), inner=Inner(size=5))
    for data, message in [
        ({}, "gadget.label: is required"),
        ({"label": "x", "speed": 11}, "gadget.speed: must be <= 10, got 11"),
        ({"label": "x", "speed": 0}, "gadget.speed: must be > 0, got 0"),
        ({"label": "x", "mode": "warp"}, "gadget.mode: must be one of slow, fast, got 'warp'"),
        ({"label": "x", "inner": {"size": 6}}, "gadget.inner.size: must be <= 5, got 6"),
        ({"label": "x", "inner": {"sise": 2}}, "gadget.inner.sise: unknown key (did you mean 'size'?)"),
        ({"lable": "x"}, "gadget.lable: unknown key (did you mean 'label'?)"),  # a typo, not a missing key
    ]:
        with pytest.raises(ConfigError) as err:
            read_gadget(data)
        assert str(err.value) == message


def test_a_sections_rule_runs_wherever_that_section_is_read():
    def no_fast_big(values, sec, ctx):
        if values["mode"] == "fast" and values["inner"].size > 2:
            raise ConfigError(sec.key("mode"), "too fast for its size")

    with pytest.raises(ConfigError, match=r"^gadget.mode: too fast for its size$"):
        read_gadget({"label": "x", "mode": "fast"}, {Gadget: no_fast_big})
    seen = []
    read_gadget({"label": "x"}, {Inner: lambda values, sec, ctx: seen.append(sec.path)})
    assert seen == ["gadget.inner"]


def test_the_reader_names_no_section_and_no_key():
    tree = ast.parse((PACKAGE / "reader.py").read_text())
    literals = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    identifiers = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} \
        | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not literals & {f.name for cls in model_classes() for f in dataclasses.fields(cls)}
    assert not identifiers & ({cls.__name__ for cls in model_classes()} | {"model", "convert", "parse"})


def test_each_module_is_small_and_states_its_design_rule():
    for path in sorted(PACKAGE.glob("*.py")):
        text = path.read_text()
        assert len(text.splitlines()) <= 450, path.name
        assert "Design rule" in (ast.get_docstring(ast.parse(text)) or ""), path.name
    face = ast.parse((PACKAGE / "__init__.py").read_text())
    assert all(isinstance(node, (ast.ImportFrom, ast.Assign, ast.Expr)) for node in face.body)  # names only
