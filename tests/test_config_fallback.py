"""``api.fallback`` (#22): its defaults, its key, its ``when``, its limits, its secrets
and what ``check`` shows of it. Parsed from plain data and files made here."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from edge_agent.config import (MASK, BudgetConfig, ConfigError, FailoverWhen, FallbackConfig, masked,
                               parse_config)
from edge_agent.config.display import endpoint_lines
from edge_agent.redact import Redactor

PRIMARY_KEY = "rf_PRIMARY_secret_111"
FALLBACK_KEY = "lan_FALLBACK_secret_222"
BASE = {
    "api": {"url": "https://classify.roboflow.com", "model": "garage-door/3", "api_key": PRIMARY_KEY,
            "budget": {"calls_per_day": 5000}},
    "cameras": [{"name": "door", "source": "0"}],
}


def config(fallback=None, **api):
    data = copy.deepcopy(BASE)
    data["api"].update(api)
    if fallback is not None:
        data["api"]["fallback"] = fallback
    return data


def parse(data):
    return parse_config(data, {}, base_dir=Path("/"))


def error(data) -> str:
    with pytest.raises(ConfigError) as err:
        parse(data)
    return str(err.value)


def test_no_fallback_is_the_primary_alone():
    cfg = parse(config())
    assert cfg.api.fallback is None and cfg.api.fallback_api() is None
    data = config()
    data["api"]["fallback"] = None  # "fallback:" with no value: none
    assert parse(data).api.fallback is None


def test_defaults_and_the_fallback_as_an_endpoint_of_its_own():
    cfg = parse(config({"url": "http://192.168.1.20:9001/"}))
    fb = cfg.api.fallback
    assert fb == FallbackConfig(url="http://192.168.1.20:9001", api_key=PRIMARY_KEY)
    assert (fb.model, fb.timeout, fb.when) == (None, 10.0, (FailoverWhen.UNREACHABLE,))
    assert (fb.switch_after, fb.probe, fb.probe_max, fb.ca_certs, fb.insecure) == (10.0, 60.0, 600.0, None, False)
    api = cfg.api.fallback_api()
    assert api is not None
    assert (api.url, api.model, api.api_key) == ("http://192.168.1.20:9001", "garage-door/3", PRIMARY_KEY)
    assert api.budget == BudgetConfig() and not api.budget.limited  # the budget counts the primary only
    assert api.fallback is None and api.api_key_file is None
    assert cfg.api.budget.calls_per_day == 5000  # the primary keeps its own


def test_its_own_model_timeout_and_tls():
    cfg = parse(config({"url": "https://box.lan:9001", "model": "garage-door-lan/7", "timeout": 3,
                        "insecure": True}))
    api = cfg.api.fallback_api()
    assert (api.model, api.timeout, api.insecure) == ("garage-door-lan/7", 3.0, True)
    assert (cfg.api.model, cfg.api.timeout, cfg.api.insecure) == ("garage-door/3", 10.0, False)


def test_the_key_is_the_primarys_unless_it_has_its_own(tmp_path: Path):
    assert parse(config({"url": "http://box:9001"})).api.fallback.api_key == PRIMARY_KEY
    own = parse(config({"url": "http://box:9001", "api_key": FALLBACK_KEY})).api
    assert own.fallback.api_key == FALLBACK_KEY and own.fallback_api().api_key == FALLBACK_KEY
    assert own.api_key == PRIMARY_KEY
    (tmp_path / "fb_key").write_text(FALLBACK_KEY + "\n")
    from_file = parse(config({"url": "http://box:9001", "api_key_file": str(tmp_path / "fb_key")})).api
    assert from_file.fallback.api_key == FALLBACK_KEY and from_file.fallback_api().api_key == FALLBACK_KEY
    (tmp_path / "key").write_text(PRIMARY_KEY)  # the primary's from a file: the fallback's too
    primary_file = config({"url": "http://box:9001"}, api_key_file=str(tmp_path / "key"))
    del primary_file["api"]["api_key"]
    assert parse(primary_file).api.fallback.api_key == PRIMARY_KEY


def test_a_key_and_a_key_file_is_an_error_naming_the_fallbacks_key(tmp_path: Path):
    (tmp_path / "fb_key").write_text(FALLBACK_KEY)
    assert error(config({"url": "http://box:9001", "api_key": FALLBACK_KEY,
                         "api_key_file": str(tmp_path / "fb_key")})) == \
        "api.fallback.api_key_file: give api_key or api_key_file, not both"
    (tmp_path / "empty").write_text("\n")
    assert error(config({"url": "http://box:9001", "api_key_file": str(tmp_path / "empty")})) == \
        f"api.fallback.api_key_file: {str(tmp_path / 'empty')!r} is empty"


def test_when():
    def when(value):
        return parse(config({"url": "http://box:9001", "when": value})).api.fallback.when

    assert when(["budget", "unreachable"]) == (FailoverWhen.BUDGET, FailoverWhen.UNREACHABLE)
    assert when(["budget"]) == (FailoverWhen.BUDGET,)
    assert when("unreachable") == (FailoverWhen.UNREACHABLE,)  # one word alone
    assert error(config({"url": "http://box:9001", "when": ["budget", "unreachble"]})) == \
        "api.fallback.when[1]: must be one of unreachable, budget, got 'unreachble' (did you mean 'unreachable'?)"
    assert error(config({"url": "http://box:9001", "when": []})) == \
        "api.fallback.when: must be a non-empty list of unreachable, budget, got an empty list"
    assert error(config({"url": "http://box:9001", "when": ["budget", "budget"]})) == \
        "api.fallback.when[1]: 'budget' is listed twice"
    assert error(config({"url": "http://box:9001", "when": [5]})) == \
        "api.fallback.when[0]: must be one of unreachable, budget, got 5"


@pytest.mark.parametrize("fallback,message", [
    ({"url": "http://box:9001", "probe": 120, "probe_max": 60},
     "api.fallback.probe_max: must be >= api.fallback.probe (120), got 60"),
    ({"url": "http://box:9001", "probe_max": 30}, "api.fallback.probe_max: must be >= api.fallback.probe (60), got 30"),
    ({"model": "garage-door/3"}, "api.fallback.url: is required"),
    ({"url": "ftp://box/x"}, "api.fallback.url: must be an http:// or https:// URL, got 'ftp://box/x'"),
    ({"url": "box:9001"}, "api.fallback.url: must be an http:// or https:// URL, got 'box:9001'"),
    ({"url": "http://box:9001", "model": "garage-door"},
     "api.fallback.model: must match <dataset-slug>/<version>, got 'garage-door'"),
    ({"url": "http://box:9001", "switch_after": 0}, "api.fallback.switch_after: must be > 0, got 0"),
    ({"url": "http://box:9001", "timout": 3}, "api.fallback.timout: unknown key (did you mean 'timeout'?)"),
    ({"url": "http://box:9001", "api_key": "two words"}, "api.fallback.api_key: must not contain white space"),
    ("http://box:9001", "api.fallback: must be a mapping, got 'http://box:9001'"),
])
def test_bad_fallbacks_name_the_key(fallback, message):
    assert error(config(fallback)) == message


def test_a_roboflow_fallback_needs_a_key_from_somewhere():
    # the primary a local server with no key: the fallback inherits none
    data = config({"url": "https://serverless.roboflow.com"}, url="http://127.0.0.1:9001")
    del data["api"]["api_key"]
    assert error(data) == "api.fallback.api_key: is required for https://serverless.roboflow.com (or api.api_key)"
    data["api"]["fallback"]["api_key"] = FALLBACK_KEY
    assert parse(data).api.fallback.api_key == FALLBACK_KEY
    lan = config({"url": "http://192.168.1.20:9001"}, url="http://127.0.0.1:9001")
    del lan["api"]["api_key"]
    assert parse(lan).api.fallback.api_key == ""  # a local server may need none


def test_secrets_hold_the_fallbacks_key_and_url_credentials():
    cfg = parse(config({"url": "http://lan-user:LAN-url-PW@192.168.1.20:9001/?api_key=QUERY-secret-9",
                        "api_key": FALLBACK_KEY}))
    secrets = set(cfg.secrets())
    assert {PRIMARY_KEY, FALLBACK_KEY, "LAN-url-PW"} <= secrets
    said = Redactor(cfg.secrets())(f"calling {cfg.api.fallback.url} with {FALLBACK_KEY}")
    assert "LAN-url-PW" not in said and "QUERY-secret-9" not in said and FALLBACK_KEY not in said
    assert FALLBACK_KEY not in repr(cfg)


def test_model_for_replaces_api_model_and_keeps_a_cameras_own():
    fb = FallbackConfig(url="http://box:9001", model="garage-door-lan/7")
    assert fb.model_for("garage-door/3", "garage-door/3") == "garage-door-lan/7"
    assert fb.model_for("bins/2", "garage-door/3") == "bins/2"  # a camera's own: asked as it is
    plain = FallbackConfig(url="http://box:9001")
    assert plain.model_for("garage-door/3", "garage-door/3") == "garage-door/3"
    assert plain.model_for("bins/2", "garage-door/3") == "bins/2"


@pytest.mark.parametrize("key", ["inherited", "own", "file"])
def test_check_shows_no_key_and_reads_back_the_same(tmp_path: Path, key: str):
    fallback = {"url": "http://lan-user:LAN-url-PW@192.168.1.20:9001", "model": "garage-door-lan/7",
                "when": ["budget", "unreachable"], "probe": 30}
    if key == "own":
        fallback["api_key"] = FALLBACK_KEY
    elif key == "file":
        (tmp_path / "fb_key").write_text(FALLBACK_KEY)
        fallback["api_key_file"] = str(tmp_path / "fb_key")
    cfg = parse(config(fallback))
    shown = masked(cfg)
    text = yaml.safe_dump(shown) + "\n".join(endpoint_lines(cfg))
    for secret in (PRIMARY_KEY, FALLBACK_KEY, "LAN-url-PW"):
        assert secret not in text
    fb = shown["api"]["fallback"]
    assert fb["url"] == "http://***@192.168.1.20:9001" and fb["when"] == ["budget", "unreachable"]
    assert fb.get("api_key") == {"inherited": None, "own": MASK, "file": None}[key]
    assert fb.get("api_key_file") == (str(tmp_path / "fb_key") if key == "file" else None)
    if key != "own":  # with no masked secret in it, what is shown is the same config
        again = copy.deepcopy(shown)
        again["api"]["api_key"] = PRIMARY_KEY
        again["api"]["fallback"]["url"] = fallback["url"]
        assert parse(again) == cfg


def test_endpoint_lines():
    cfg = parse(config())
    assert endpoint_lines(cfg) == [
        "primary: https://classify.roboflow.com model garage-door/3, key from api.api_key "
        "(budget: 5000 calls/day)",
        "fallback: none (api.fallback not set: the primary alone)"]
    data = config({"url": "http://u:LAN-url-PW@box:9001", "model": "garage-door-lan/7"})
    data["cameras"].append({"name": "bins", "source": "1", "model": "bins/2"})
    lines = endpoint_lines(parse(data))
    assert lines[1] == ("fallback: http://***@box:9001 model garage-door-lan/7 (a camera's own model as it is: "
                        "bins/2), the primary's key, when unreachable; switch after 10 s, probe the primary "
                        "every 60 s (up to 600 s); its calls counted apart from the budget")
    budget_only = endpoint_lines(parse(config({"url": "http://box:9001", "api_key": FALLBACK_KEY,
                                               "when": ["budget"]}, budget={"credits_per_day": 2.5})))
    assert budget_only == [
        "primary: https://classify.roboflow.com model garage-door/3, key from api.api_key "
        "(budget: 2.5 credits/day)",
        "fallback: http://box:9001 model garage-door/3, key from api.fallback.api_key, when the budget is spent; "
        "probe the primary every 60 s (up to 600 s); its calls counted apart from the budget"]


def test_the_readme_names_every_fallback_key_with_its_default():
    """The README's "A fallback endpoint" block parses to the defaults, and names every key."""
    import dataclasses

    from tests.helpers import ROOT

    text = (ROOT / "README.md").read_text()
    section = text[text.index("### A fallback endpoint"):]
    block = section[section.index("```yaml\n") + 8:]
    block = block[:block.index("```")]
    data = yaml.safe_load(block)
    data["cameras"] = BASE["cameras"]
    cfg = parse_config(data, {"ROBOFLOW_API_KEY": PRIMARY_KEY}, base_dir=Path("/"))
    assert cfg.api.fallback == FallbackConfig(url="http://192.168.1.20:9001", api_key=PRIMARY_KEY)
    for f in dataclasses.fields(FallbackConfig):
        assert f"{f.name}:" in block, f"README's fallback block does not name {f.name}"
