"""``edge-agent classify --endpoint`` and ``check`` with a fallback (#22), as a user
runs them: real subprocesses against two stand-in APIs on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import yaml

from tests.helpers import free_port
from tests.test_cli import KEY, base, cli, write
from tools.standin_api import StandinApi, ThreadedStandin

FALLBACK_KEY = "lan_FALLBACK_key_8086"


def green(tmp_path: Path) -> str:
    img = np.zeros((300, 400, 3), np.uint8)
    img[..., 1] = 255
    path = tmp_path / "green.png"
    cv2.imwrite(str(path), img)
    return str(path)


def with_fallback(primary_url: str, **fallback) -> dict:
    cfg = base(primary_url)
    cfg["api"]["fallback"] = fallback
    cfg["cameras"].append({"name": "bins", "source": "1", "model": "bins/2"})
    return cfg


def test_endpoint_fallback_asks_the_fallback_alone_with_its_key_and_model(tmp_path: Path):
    image = green(tmp_path)
    with ThreadedStandin(StandinApi(api_key=KEY)) as primary, \
            ThreadedStandin(StandinApi(api_key=FALLBACK_KEY)) as fallback:
        conf = write(tmp_path, with_fallback(primary.url, url=fallback.url, model="colours-lan/7",
                                             api_key=FALLBACK_KEY))
        r = cli("classify", "-c", conf, image, "--endpoint", "fallback", env={"TEST_KEY": KEY})
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["top"] == "green"
        assert "answered by the fallback endpoint" in r.stderr and fallback.url in r.stderr
        assert primary.requests() == []
        [seen] = fallback.requests()
        assert (seen.path, seen.key_in_query, seen.status) == ("/colours-lan/7", FALLBACK_KEY, 200)

        # a camera's own model is asked of the fallback as it is
        r = cli("classify", "-c", conf, image, "--endpoint", "fallback", "--camera", "bins", env={"TEST_KEY": KEY})
        assert r.returncode == 0, r.stderr
        assert [s.path for s in fallback.requests()] == ["/colours-lan/7", "/bins/2"]

        # the default is the primary, with its key and api.model
        r = cli("classify", "-c", conf, image, env={"TEST_KEY": KEY})
        assert r.returncode == 0, r.stderr
        assert "answered by the primary endpoint" in r.stderr
        assert [(s.path, s.key_in_query) for s in primary.requests()] == [("/colours/1", KEY)]
        assert len(fallback.requests()) == 2
        for out in (r.stdout, r.stderr):
            assert KEY not in out and FALLBACK_KEY not in out


def test_the_fallback_is_sent_the_primarys_key_when_it_has_none(tmp_path: Path):
    with ThreadedStandin(StandinApi(api_key=KEY)) as primary, ThreadedStandin(StandinApi(api_key=KEY)) as fallback:
        conf = write(tmp_path, with_fallback(primary.url, url=fallback.url))
        r = cli("classify", "-c", conf, green(tmp_path), "--endpoint", "fallback", env={"TEST_KEY": KEY})
        assert r.returncode == 0, r.stderr
        assert primary.requests() == []
        assert [(s.path, s.key_in_query) for s in fallback.requests()] == [("/colours/1", KEY)]


def test_endpoint_fallback_without_one_and_a_bad_choice_exit_2(tmp_path: Path):
    image = green(tmp_path)
    with ThreadedStandin(StandinApi(api_key=KEY)) as primary:
        conf = write(tmp_path, base(primary.url))
        r = cli("classify", "-c", conf, image, "--endpoint", "fallback", env={"TEST_KEY": KEY})
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr == ("edge-agent: --endpoint fallback: the config has no api.fallback "
                            "(give api.fallback: {url: ...})\n")
        r = cli("classify", "-c", conf, image, "--endpoint", "backup", env={"TEST_KEY": KEY})
        assert r.returncode == 2 and "invalid choice: 'backup'" in r.stderr
        assert primary.requests() == []


def test_a_fallback_that_fails_says_so_without_its_key(tmp_path: Path):
    image = green(tmp_path)
    port = free_port()  # nothing listens there
    with ThreadedStandin(StandinApi(api_key=KEY)) as primary:
        conf = write(tmp_path, with_fallback(primary.url, url=f"http://127.0.0.1:{port}", api_key=FALLBACK_KEY))
        r = cli("classify", "-c", conf, image, "--endpoint", "fallback", env={"TEST_KEY": KEY})
        assert primary.requests() == []  # no failing over here: the fallback alone
    assert r.returncode == 1
    assert r.stderr.startswith(f"edge-agent: fallback http://127.0.0.1:{port}: cannot connect to 127.0.0.1:{port}")
    with ThreadedStandin(StandinApi(api_key="another-key")) as fallback:
        conf = write(tmp_path, with_fallback(primary.url, url=fallback.url, api_key=FALLBACK_KEY))
        r = cli("classify", "-c", conf, image, "--endpoint", "fallback", env={"TEST_KEY": KEY})
    assert r.returncode == 1 and "API key rejected (HTTP 401)" in r.stderr
    assert FALLBACK_KEY not in r.stderr + r.stdout and KEY not in r.stderr + r.stdout


def test_check_names_both_endpoints_and_no_key(tmp_path: Path):
    cfg = with_fallback("http://127.0.0.1:9", url="http://lan:LAN-url-PW@192.168.1.20:9001", model="colours-lan/7",
                        api_key="${FB_KEY}", when=["unreachable", "budget"])
    cfg["api"]["budget"] = {"calls_per_day": 500}
    env = {"TEST_KEY": KEY, "FB_KEY": FALLBACK_KEY}
    r = cli("check", "-c", write(tmp_path, cfg), env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "#   primary: http://127.0.0.1:9 model colours/1, key from api.api_key (budget: 500 calls/day)" in lines
    assert ("#   fallback: http://***@192.168.1.20:9001 model colours-lan/7 (a camera's own model as it is: bins/2), "
            "key from api.fallback.api_key, when unreachable or the budget is spent; switch after 10 s, probe the "
            "primary every 60 s (up to 600 s); its calls counted apart from the budget") in lines
    shown = yaml.safe_load(r.stdout)
    assert shown["api"]["fallback"]["api_key"] == "***"
    assert shown["api"]["fallback"]["url"] == "http://***@192.168.1.20:9001"
    for secret in (KEY, FALLBACK_KEY, "LAN-url-PW"):
        assert secret not in r.stdout + r.stderr

    r = cli("check", "-c", write(tmp_path, base()), env=env)
    assert r.returncode == 0, r.stderr
    assert "#   fallback: none (api.fallback not set: the primary alone)" in r.stdout.splitlines()


def test_what_check_prints_with_a_fallback_passes_check_unchanged(tmp_path: Path):
    cfg = with_fallback("http://127.0.0.1:9", url="http://192.168.1.20:9001", when="budget", probe=30)
    first = cli("check", "-c", write(tmp_path, cfg), env={"TEST_KEY": KEY})
    assert first.returncode == 0, first.stderr
    assert "api_key" not in yaml.safe_load(first.stdout)["api"]["fallback"]  # the primary's: not written twice
    printed = tmp_path / "printed.yaml"
    printed.write_text(first.stdout)
    second = cli("check", "-c", str(printed))
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
