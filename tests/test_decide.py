from edge_agent.config import DecideConfig
from edge_agent.decide import Debouncer


def feed_all(d, seq):
    out = []
    for i, (cls, conf) in enumerate(seq):
        s = d.feed(cls, conf, float(i))
        if s:
            out.append((s.cls, s.since))
    return out


def test_confirm_needs_consecutive_agreement():
    d = Debouncer(DecideConfig(min_confidence=0.5, confirm=2))
    seq = [("red", .9), ("blue", .9), ("red", .9), ("red", .9), ("red", .9), ("blue", .8), ("blue", .8)]
    assert feed_all(d, seq) == [("red", 2.0), ("blue", 5.0)]


def test_low_confidence_never_changes_state_and_breaks_a_run():
    d = Debouncer(DecideConfig(min_confidence=0.6, confirm=2))
    seq = [("open", .9), ("open", .9), ("closed", .9), ("closed", .3), ("closed", .9), ("closed", .55),
           ("closed", .59)]
    assert feed_all(d, seq) == [("open", 0.0)]
    assert d.state.cls == "open"


def test_confirm_one_follows_every_confident_result():
    d = Debouncer(DecideConfig(min_confidence=0.0, confirm=1))
    assert feed_all(d, [("a", .1), ("b", .2), ("b", .3), ("a", .4)]) == [("a", 0.0), ("b", 1.0), ("a", 3.0)]


def test_agreeing_with_state_resets_candidate():
    d = Debouncer(DecideConfig(min_confidence=0.5, confirm=3))
    seq = [("a", .9)] * 3 + [("b", .9), ("b", .9), ("a", .9), ("b", .9), ("b", .9)]
    assert feed_all(d, seq) == [("a", 0.0)]
    assert d.feed("b", .9, 9.0).cls == "b"
