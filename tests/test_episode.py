from edge_agent.episode import Episode


def test_episode_logs_start_and_each_new_kind_once():
    e = Episode()
    assert [e.fail(k) for k in ["a", "a", "b", "a", "b", "c"]] == [True, False, True, False, False, True]
    assert e.active and e.failures == 6
    assert e.ok() == 6
    assert not e.active and e.ok() == 0
    assert e.fail("a") is True
