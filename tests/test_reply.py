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
