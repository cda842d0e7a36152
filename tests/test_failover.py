"""The switching rules (failover.py), on a clock the test moves: no sockets."""

from __future__ import annotations

import math
import random

import pytest

from edge_agent.classify import ApiErrorKind
from edge_agent.config import FailoverWhen, FallbackConfig
from edge_agent.failover import Endpoint, Failover, Reason

K = ApiErrorKind


def failover(**kw) -> Failover:
    cfg = FallbackConfig(url="http://127.0.0.1:9002", **kw)
    return Failover(cfg, rng=random.Random(1))


def test_refused_requests_switch_after_switch_after_seconds_of_silence():
    f = failover(switch_after=10)
    for t in (0.0, 1.0, 3.0, 7.0):  # the primary's backoff: a refusal at each
        f.sent(int(t), t)
        assert f.failed(int(t), K.CONNECTION, t, t + 0.01) is None
        assert f.active is Endpoint.PRIMARY
    assert f.tick(9.9) is None
    switch = f.tick(10.0)
    assert switch is not None and switch.to is Endpoint.FALLBACK and switch.reason is Reason.UNREACHABLE
    assert switch.silent_for == pytest.approx(10.0)
    assert f.active is Endpoint.FALLBACK and f.reason is Reason.UNREACHABLE


@pytest.mark.parametrize("kind", [K.CONNECTION, K.TIMEOUT, K.HTTP_5XX])
def test_each_kind_of_outage_counts(kind):
    f = failover(switch_after=2)
    f.sent(1, 0.0)
    assert f.failed(1, kind, 0.0, 2.5) is not None  # failed 2.5 s after it went out: silent for 2.5 s


@pytest.mark.parametrize("kind", [K.UNAUTHORIZED, K.HTTP_4XX, K.RATE_LIMITED, K.BAD_REPLY])
def test_a_refusal_is_the_primary_answering_never_an_outage(kind):
    f = failover(switch_after=2)
    f.sent(1, 0.0)
    f.failed(1, K.CONNECTION, 0.0, 0.1)
    f.sent(2, 1.0)
    assert f.failed(2, kind, 1.0, 1.1) is None
    assert f.tick(100.0) is None and f.active is Endpoint.PRIMARY  # the count started again, and never ran


def test_a_request_that_hangs_switches_before_its_own_timeout():
    f = failover(switch_after=10)
    f.sent(1, 5.0)  # no reply, no failure yet
    assert f.tick(14.9) is None
    switch = f.tick(15.0)
    assert switch is not None and switch.to is Endpoint.FALLBACK
    f.forget(1, 15.0)
    assert f.silent_since(16.0) is None  # given up: nothing waits on the primary any more


def test_a_good_reply_restarts_the_count():
    f = failover(switch_after=10)
    f.sent(1, 0.0)
    f.failed(1, K.TIMEOUT, 0.0, 5.0)
    f.sent(2, 6.0)
    assert f.succeeded(2, 6.2) is None
    assert f.tick(30.0) is None and f.active is Endpoint.PRIMARY


def test_probes_come_every_probe_seconds_backing_off_and_a_good_one_switches_back():
    f = failover(switch_after=1, probe=60, probe_max=600)
    f.sent(1, 0.0)
    f.failed(1, K.CONNECTION, 0.0, 1.0)
    assert f.active is Endpoint.FALLBACK
    first = f.next_probe
    assert 1.0 + 30 <= first <= 1.0 + 60  # jittered in [probe/2, probe]
    assert not f.probe_due(first - 0.01) and f.probe_due(first)
    assert not f.probe_due(first, budget_spent=True)  # a probe counts against the budget
    waits = []
    now = first
    for i in range(6):
        assert f.probe_due(now)
        f.probe_sent()
        assert not f.probe_due(now + 1e6)  # one probe at a time
        f.sent(100 + i, now, probe=True)
        f.failed(100 + i, K.CONNECTION, now, now + 0.5)
        waits.append(f.next_probe - (now + 0.5))
        now = f.next_probe
    assert waits[0] >= 60 and all(w <= 600 for w in waits) and waits[-1] >= 300  # doubled, up to probe_max
    f.probe_sent()
    f.sent(200, now, probe=True)
    back = f.succeeded(200, now + 0.2)
    assert back is not None and back.to is Endpoint.PRIMARY and back.reason is Reason.RECOVERED
    assert f.active is Endpoint.PRIMARY and math.isinf(f.next_probe)


def test_a_missed_probe_is_asked_again_after_the_first_wait_not_doubled():
    f = failover(switch_after=1, probe=60, probe_max=600)
    f.sent(1, 0.0)
    f.failed(1, K.CONNECTION, 0.0, 1.0)
    f.probe_sent()
    f.probe_missed(100.0)
    assert f.next_probe == 160.0 and f.probe_due(160.0)


def test_a_spent_budget_switches_only_when_budget_is_listed_and_switches_back_when_renewed():
    assert failover().tick(0.0, budget_spent=True) is None  # when: [unreachable] (the default)
    f = failover(when=(FailoverWhen.BUDGET,))
    switch = f.tick(0.0, budget_spent=True)
    assert switch is not None and switch.reason is Reason.BUDGET and f.active is Endpoint.FALLBACK
    assert not f.probe_due(1e9)  # no probes for a budget: the primary is not down
    back = f.tick(5.0, budget_spent=False)
    assert back is not None and back.to is Endpoint.PRIMARY and back.reason is Reason.BUDGET_RENEWED


def test_without_unreachable_listed_an_outage_never_switches():
    f = failover(when=(FailoverWhen.BUDGET,), switch_after=1)
    f.sent(1, 0.0)
    assert f.failed(1, K.CONNECTION, 0.0, 50.0) is None and f.active is Endpoint.PRIMARY


def test_an_outage_outlasting_a_renewed_budget_stays_on_the_fallback():
    f = failover(when=(FailoverWhen.UNREACHABLE, FailoverWhen.BUDGET), switch_after=1)
    f.sent(1, 0.0)
    f.failed(1, K.CONNECTION, 0.0, 2.0)
    assert f.reason is Reason.UNREACHABLE
    assert f.tick(3.0, budget_spent=True) is None and f.tick(4.0, budget_spent=False) is None
    assert f.active is Endpoint.FALLBACK  # only a good reply from the primary brings it back


def test_one_failure_on_a_quiet_scene_is_no_outage():
    """One refused request and nothing asked since: no switch (the failures must go on)."""
    f = failover(switch_after=10)
    f.sent(1, 0.0)
    f.failed(1, K.CONNECTION, 0.0, 0.1)
    assert f.tick(10.5) is None and f.tick(60.0) is None and f.active is Endpoint.PRIMARY


def test_a_probe_cut_short_is_asked_again_and_a_slow_answer_does_not_switch_back():
    f = failover(switch_after=5, probe=60, probe_max=600)
    f.sent(1, 0.0)
    f.failed(1, K.TIMEOUT, 0.0, 5.0)
    assert f.active is Endpoint.FALLBACK
    f.probe_sent()
    f.sent(2, 100.0, probe=True)
    f.forget(2, 100.5)  # a bug, or given up: the probe is over all the same
    assert not f.probing and f.next_probe == 160.5
    f.probe_sent()
    f.sent(3, 160.5, probe=True)
    assert f.succeeded(3, 168.0) is None  # answered, but after 7.5 s: no better than down
    assert f.active is Endpoint.FALLBACK and f.probe_due(f.next_probe) and f.next_probe > 168.0


def test_probes_do_not_back_off_while_the_fallback_fails_too():
    f = failover(switch_after=1, probe=60, probe_max=600)
    f.sent(1, 0.0)
    f.failed(1, K.CONNECTION, 0.0, 1.0)
    for i in range(4):
        now = f.next_probe
        f.probe_sent()
        f.sent(10 + i, now, probe=True)
        f.failed(10 + i, K.CONNECTION, now, now + 0.1, fallback_ok=False)
        assert f.next_probe == pytest.approx(now + 0.1 + 60)  # both down: the primary again in a minute
