import json

from edge_agent.decide import State
from edge_agent.messages import ResultMessage, StatusMessage, state_payload
from edge_agent.reply import Classification, Prediction
from edge_agent.outputs.topics import Topics


def test_topic_names():
    t = Topics("edge_agent/garage-pi")
    assert t.availability == "edge_agent/garage-pi/availability"
    assert t.result("door") == "edge_agent/garage-pi/door/result"
    assert t.state("door") == "edge_agent/garage-pi/door/state"
    assert t.status("door") == "edge_agent/garage-pi/door/status"


def test_result_payload_single_and_multi():
    c = Classification("open", 0.9, (Prediction("open", 0.9), Prediction("closed", 0.1)))
    body = json.loads(ResultMessage("door", "garage/3", c, 1700000000.1234, 181.26).payload())
    assert body == {"camera": "door", "model": "garage/3", "endpoint": "primary", "top": "open", "confidence": 0.9,
                    "predictions": [{"class": "open", "confidence": 0.9}, {"class": "closed", "confidence": 0.1}],
                    "captured_at": 1700000000.123, "latency_ms": 181.3}
    assert json.loads(ResultMessage("door", "garage/3", c, 1.0, 1.0, endpoint="fallback").payload())["endpoint"] \
        == "fallback"
    m = Classification("car", 0.8, (Prediction("car", 0.8),), ("car",))
    assert json.loads(ResultMessage("d", "m/1", m, 1.0, 1.0).payload())["predicted_classes"] == ["car"]


def test_state_and_status_payloads():
    assert json.loads(state_payload(State("open", 0.91, 12.5))) == {"class": "open", "confidence": 0.91, "since": 12.5,
                                                                    "stale": False, "stale_since": None,
                                                                    "stale_reason": None}
    decided = State("open", 0.91, 12.5, votes=4, window=5, confidences=(0.8, 0.9, 0.85, 0.91))
    body = json.loads(state_payload(decided, stale_since=100.0, stale_reason="unsettled"))
    assert body["stale_reason"] == "unsettled"
    assert body["votes"] == {"for": 4, "of": 5, "confidences": [0.8, 0.9, 0.85, 0.91]}
    assert body["stale"] is True and body["stale_since"] == 100.0
    with_preds = json.loads(state_payload(State("open", 0.91, 12.5), (Prediction("open", 0.91), Prediction("x", 0.09))))
    assert with_preds["predictions"] == [{"class": "open", "confidence": 0.91}, {"class": "x", "confidence": 0.09}]
    s = StatusMessage("online", "ok", 10, 7, 3, 3, 0, 0, None)
    body = json.loads(s.payload())
    assert {"camera", "api", "frames_dropped", "last_error"} <= body.keys()
    assert s.health() == ("online", "ok", None, True, 0.0, None, None, "primary")
    assert body["endpoint"] == "primary" and body["fallback"] is None  # no api.fallback: the primary alone
    on_fallback = StatusMessage("online", "ok", 10, 7, 3, 3, 0, 0, None, endpoint="fallback")
    assert on_fallback.health() != s.health()  # a switch is a change of health: published at once


def test_confidence_topic_and_payload():
    """The newest result's confidence in the decided class, retained for late subscribers."""
    from edge_agent.messages import confidence_payload

    assert Topics("edge_agent/garage-pi").confidence("door") == "edge_agent/garage-pi/door/confidence"
    assert json.loads(confidence_payload("open", 0.4123456789, 1700000000.12345)) == {
        "class": "open", "confidence": 0.412346, "at": 1700000000.123}


def test_a_retained_state_read_back_is_parsed_defensively():
    from edge_agent.messages import parse_state

    assert parse_state(state_payload(State("open", 0.91, 12.5))) == ("open", 12.5)
    for bad in (b"", b"x", b"[]", b"null", b'{"class": "open"}', b'{"class": 5, "since": 1}',
                b'{"class": "", "since": 1}', b'{"class": "open", "since": "1"}', b'{"class": "open", "since": true}',
                b'{"class": "open", "since": NaN}', b'{"class": "open", "since": 1e999}',
                ('{"class": "%s", "since": 1}' % ("x" * 201)).encode(), b"[" * 100000, b"\xff\xfe"):
        assert parse_state(bad) is None, bad
