from edge_agent.episode import Episode


def test_episode_logs_start_and_each_new_kind_once():
    e = Episode()
    assert [e.fail(k) for k in ["a", "a", "b", "a", "b", "c"]] == [True, False, True, False, False, True]
    assert e.active and e.failures == 6
    assert e.ok() == 6
    assert not e.active and e.ok() == 0
    assert e.fail("a") is True


def test_throttle_lets_one_line_a_minute_through_and_counts_the_rest():
    from edge_agent.episode import Throttle

    t = Throttle(60)
    assert t.allow(0.0) == 0
    assert [t.allow(x) for x in (1.0, 2.0, 59.0)] == [None, None, None]
    assert t.allow(60.0) == 3  # the next line says 3 were left out
    assert t.allow(61.0) is None and t.allow(130.0) == 1
