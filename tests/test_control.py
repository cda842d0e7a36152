import pytest

from edge_agent.outputs.control import Command, CommandField, parse_command
from edge_agent.outputs.topics import Topics


@pytest.mark.parametrize("field,payload,expected", [
    ("enabled", b"ON", Command("door", "enabled", True)),
    ("enabled", b" off\n", Command("door", "enabled", False)),
    ("enabled", b"true", Command("door", "enabled", True)),
    ("fps", b"2.5", Command("door", "fps", 2.5)),
    ("fps", b"60", Command("door", "fps", 60.0)),
    ("snapshot", b"", Command("door", "snapshot")),
    ("classify", b"PRESS", Command("door", "classify")),
    ("classify", b"\xff\xfe", Command("door", "classify")),  # any payload, even one that is not text
])
def test_good_commands(field, payload, expected):
    assert parse_command("door", field, payload) == expected


@pytest.mark.parametrize("field,payload,why", [
    ("enabled", b"maybe", "enabled takes ON or OFF"),
    ("fps", b"fast", "fps takes a number"),
    ("fps", b"0", "fps must be >= 0.001"),
    ("fps", b"-1", "fps must be >= 0.001"),
    ("fps", b"nan", "fps must be >= 0.001"),
    ("fps", b"1e9", "fps must be >= 0.001 and <= 60"),
    ("fps", b"1e-300", "fps must be >= 0.001"),  # a camera blind for 1e300 s
    ("fps", b"\xff\xfe", "not UTF-8"),
    ("colour", b"red", "unknown setting 'colour'"),
])
def test_bad_commands(field, payload, why):
    with pytest.raises(ValueError, match=why):
        parse_command("door", field, payload)


def test_control_topics():
    t = Topics("edge_agent/pi")
    assert t.control_filters == ("edge_agent/pi/+/set/+", "edge_agent/pi/+/snapshot/request",
                                 "edge_agent/pi/+/classify", "edge_agent/pi/+/collect")
    assert t.parse_control("edge_agent/pi/door/classify") == ("door", "classify")
    assert t.parse_control("edge_agent/pi/door/collect") == ("door", "collect")
    assert t.collect("door") == "edge_agent/pi/door/collect"
    assert t.parse_control("edge_agent/pi/door/classify/x") is None
    assert t.parse_control("edge_agent/pi/door/set/fps") == ("door", "fps")
    assert t.parse_control("edge_agent/pi/door/snapshot/request") == ("door", "snapshot")
    assert t.snapshot("door") == "edge_agent/pi/door/snapshot"
    for other in ("edge_agent/pi/door/state", "edge_agent/pi/door/set", "other/pi/door/set/fps",
                  "edge_agent/pi//set/fps", "edge_agent/pi/door/set/fps/x"):
        assert t.parse_control(other) is None


def test_collect_takes_nothing_or_a_bounded_class_name():
    assert parse_command("door", "collect", b"") == Command("door", CommandField.COLLECT, None)
    assert parse_command("door", "collect", b"  \n") == Command("door", CommandField.COLLECT, None)
    assert parse_command("door", "collect", b" open ") == Command("door", CommandField.COLLECT, "open")
    for bad in (b"x" * 201, b"\xff\xfe", b"a\x00b", b"line\nbreak"):
        with pytest.raises(ValueError):
            parse_command("door", "collect", bad)


def test_command_fields_are_an_enum_that_still_compares_as_its_word():
    for word in ("enabled", "snapshot", "classify"):
        cmd = parse_command("door", word, b"ON")
        assert cmd.field is CommandField(word) and cmd.field == word
    assert parse_command("door", "fps", b"2").field is CommandField.FPS
