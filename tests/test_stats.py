from edge_agent.stats import Rate, Window, percentile


def test_percentile_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([5.0], 95) == 5.0
    vals = [float(v) for v in range(1, 101)]
    assert percentile(vals, 50) == 50.0
    assert percentile(vals, 95) == 95.0
    assert percentile(vals, 100) == 100.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_window_forgets_old_values():
    w = Window(seconds=60)
    for t in range(0, 120):
        w.add(float(t), float(t))
    assert w.values(119.0) == [float(t) for t in range(59, 120)]
    s = w.summary(119.0)
    assert s["count"] == 61 and s["median"] == 89.0 and s["p95"] == 116.0
    assert Window().summary(0.0) == {"median": None, "p95": None, "count": 0}


def test_window_is_bounded():
    w = Window(seconds=1e9, maxlen=10)
    for t in range(1000):
        w.add(float(t), 1.0)
    assert len(w.values(1000.0)) == 10


def test_rate_over_the_last_seconds():
    r = Rate(seconds=5)  # explicit: the default is 10 s
    assert r.per_second() == 0.0
    for t in range(0, 21):
        r.sample(float(t), t * 30)  # 30 per second
    assert r.per_second() == 30.0
    for t in range(21, 31):
        r.sample(float(t), 600)  # stopped
    assert r.per_second() == 0.0
