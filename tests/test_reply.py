import re
import pytest

from edge_agent.reply import BadReply, parse_reply

SINGLE = {
    "inference_id": "x", "time": 0.01, "image": {"width": 416, "height": 234},
    "predictions": [{"class": "closed", "class_id": 0, "confidence": 0.12},
                    {"class": "open", "class_id": 1, "confidence": 0.88}],
    "top": "open", "confidence": 0.88,
}
MULTI = {
    "time": 0.02, "image": {"width": 416, "height": 234},
    "predictions": {"car": {"confidence": 0.4, "class_id": 0}, "person": {"confidence": 0.91, "class_id": 1}},
    "predicted_classes": ["person"],
}


def test_single_label_reply():
    r = parse_reply(SINGLE)
    assert (r.top, r.confidence) == ("open", 0.88)
    assert [(p.cls, p.confidence) for p in r.predictions] == [("open", 0.88), ("closed", 0.12)]
    assert r.predicted_classes is None


def test_single_label_without_top_uses_best_prediction():
    body = {"predictions": [{"class": "a", "confidence": 0.2}, {"class": "b", "confidence": 0.7}]}
    r = parse_reply(body)
    assert (r.top, r.confidence) == ("b", 0.7)


def test_multi_label_reply():
    r = parse_reply(MULTI)
    assert (r.top, r.confidence) == ("person", 0.91)
    assert [p.cls for p in r.predictions] == ["person", "car"]
    assert r.predicted_classes == ("person",)


@pytest.mark.parametrize("body,why", [
    ([], "not a JSON object"),
    ({"top": "a"}, "no 'predictions'"),
    ({"predictions": "x"}, "no 'predictions'"),
    ({"predictions": [1]}, "predictions[0] is not an object"),
    ({"predictions": [{"class": "", "confidence": 0.5}]}, "class is not"),
    ({"predictions": [{"class": "a", "confidence": "high"}]}, "not a number"),
    ({"predictions": [{"class": "a", "confidence": 1.5}]}, "outside 0..1"),
    ({"predictions": [{"class": "a", "confidence": True}]}, "not a number"),
    ({"predictions": []}, "neither 'top'"),
    ({"predictions": [], "top": "a", "confidence": None}, "not a number"),
    ({"predictions": {}}, "no predictions"),
    ({"predictions": {"a": 0.3}}, "is not an object"),
    ({"predictions": {"a": {"confidence": 0.3}}, "predicted_classes": "a"}, "predicted_classes"),
])
def test_wrong_shapes_are_bad_replies(body, why):
    with pytest.raises(BadReply, match=re.escape(why)):
        parse_reply(body)


# ------------------------------------------------------------------ caps (issue #9)

from edge_agent.reply import MAX_CLASS_NAME, MAX_PREDICTIONS  # noqa: E402


def _preds(n, name=lambda i: f"c{i}"):
    return [{"class": name(i), "confidence": 0.5} for i in range(n)]


def test_predictions_up_to_the_cap_are_fine():
    assert len(parse_reply({"predictions": _preds(MAX_PREDICTIONS)}).predictions) == MAX_PREDICTIONS
    assert parse_reply({"predictions": [{"class": "x" * MAX_CLASS_NAME, "confidence": 0.5}]}).top == "x" * MAX_CLASS_NAME


@pytest.mark.parametrize("body,why", [
    ({"predictions": _preds(MAX_PREDICTIONS + 1)}, f"more than {MAX_PREDICTIONS} predictions"),
    ({"predictions": {f"c{i}": {"confidence": 0.1} for i in range(MAX_PREDICTIONS + 1)}},
     f"more than {MAX_PREDICTIONS} predictions"),
    ({"predictions": {"a": {"confidence": 0.3}}, "predicted_classes": ["a"] * (MAX_PREDICTIONS + 1)},
     f"more than {MAX_PREDICTIONS} predicted_classes"),
    ({"predictions": [{"class": "x" * (MAX_CLASS_NAME + 1), "confidence": 0.5}]},
     f"longer than {MAX_CLASS_NAME} characters"),
    ({"predictions": [], "top": "x" * 10_000_000, "confidence": 0.5}, f"longer than {MAX_CLASS_NAME} characters"),
    ({"predictions": {"x" * 10_000: {"confidence": 0.3}}}, f"longer than {MAX_CLASS_NAME} characters"),
    ({"predictions": {"a": {"confidence": 0.3}}, "predicted_classes": ["x" * 10_000]},
     f"longer than {MAX_CLASS_NAME} characters"),
    ({"predictions": [{"class": "a", "confidence": 10 ** 4000}]}, "outside 0..1"),
], ids=["single", "multi", "predicted_classes", "class-201", "top-10MB", "multi-name", "predicted-name", "huge-int"])
def test_beyond_a_cap_is_a_short_bad_reply(body, why):
    with pytest.raises(BadReply, match=re.escape(why)) as err:
        parse_reply(body)
    assert len(str(err.value)) < 120  # says which cap, never quotes the hostile text


def test_error_messages_quote_little_of_a_class_name():
    with pytest.raises(BadReply) as err:
        parse_reply({"predictions": {"y" * 150: 0.3}})
    assert len(str(err.value)) < 100
