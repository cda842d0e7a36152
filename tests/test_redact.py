import logging

from edge_agent.redact import RedactingFormatter, Redactor, redact_url


def test_redact_url():
    assert redact_url("rtsp://admin:pw@10.0.0.2:554/s") == "rtsp://***@10.0.0.2:554/s"
    assert redact_url("see https://x/y?api_key=abc123&foo=1 now") == "see https://x/y?api_key=***&foo=1 now"
    assert redact_url("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
    assert redact_url("/dev/video0") == "/dev/video0"


def test_redactor_and_formatter_cover_tracebacks():
    r = Redactor(["sekrit-key-1", "pw"])  # too-short secrets are ignored (would mangle text)
    assert r("key sekrit-key-1 here, pw stays") == "key *** here, pw stays"
    fmt = RedactingFormatter("%(message)s", r)
    try:
        raise ValueError("boom sekrit-key-1")
    except ValueError as e:
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("sekrit-key-1",), (type(e), e, e.__traceback__))
    out = fmt.format(rec)
    assert "sekrit-key-1" not in out and "failed ***" in out and "boom ***" in out


# ------------------------------------------------------------------ issue #9: hostile text

import statistics  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

from edge_agent.redact import MAX_LOG_MESSAGE, bounded, escape_controls  # noqa: E402

MB = 1_000_000


def test_userinfo_is_masked_up_to_the_last_at_before_the_host():
    assert redact_url("rtsp://user:se@cretpass@host/x") == "rtsp://***@host/x"
    assert redact_url("open rtsp://u:p@w@rd@10.0.0.2:554/s now") == "open rtsp://***@10.0.0.2:554/s now"
    assert redact_url("http://host/path?q=a@b") == "http://host/path?q=a@b"  # an @ past the host is not userinfo
    assert redact_url("a http://x@y and b@c") == "a http://***@y and b@c"
    assert redact_url("HTTPS://X/Y?API_KEY=k&Token=t") == "HTTPS://X/Y?API_KEY=***&Token=***"
    assert redact_url("Authorization: BEARER   abc") == "Authorization: Bearer ***"


def test_config_url_secrets_agree_with_redact_url():
    from edge_agent.config import _url_secrets

    url = "rtsp://user:se@cretpass@cam.local/x"
    assert "se@cretpass" in _url_secrets(url)
    assert "cretpass" not in redact_url(url) and "se@" not in redact_url(url)
    out = Redactor(_url_secrets(url))(f"cannot open {url}")
    assert "cretpass" not in out and "se@" not in out


@pytest.mark.parametrize("shape", [
    "A" * MB,
    "@" * MB,
    ":" * MB,
    "//" * (MB // 2),
    "://" * (MB // 3),
    "a://b:c@" * (MB // 8),
    "http://" + "user:pass" * (MB // 9) + "@host/x",
    "https://host/x?" + "api_key=v&" * (MB // 10),
    "rtsp://" + "a" * MB,
    "Bearer " + " " * MB,
    "bearer x " * (MB // 9),
], ids=["A", "at", "colon", "slashes", "scheme-seps", "many-userinfo", "long-url", "many-keys",
        "url-no-at", "bearer-blanks", "many-bearers"])
def test_redaction_is_linear(shape):
    r = Redactor(["rf_live_KEY_do_not_leak_42", "user:pass"])
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        out = r(shape)
        times.append(time.perf_counter() - t0)
    assert statistics.median(times) < 0.050, f"{statistics.median(times) * 1000:.0f} ms for 1 MB"
    assert "user:pass" not in out


def test_bounded_redacts_the_whole_then_cuts():
    key = "rf_live_KEY_do_not_leak_42"
    r = Redactor([key])
    text = "x" * 190 + key + "y" * 1000  # the key straddles the 200-char cut
    out = r.bounded(text, 200)
    assert out.startswith("x" * 190 + "***") and out.endswith(f"…({190 + 3 + 1000} chars)")
    assert "rf_live" not in out and "rf_l" not in out
    assert len(out) <= 200 + len(f"…({190 + 3 + 1000} chars)")
    url = "z" * 195 + "rtsp://admin:hunter22@cam/x"
    assert "hunt" not in bounded(url, 200) and "adm" not in bounded(url, 200)
    assert bounded("short") == "short"


def test_escape_controls():
    assert escape_controls("a\nb\rc\td\x00e\x1bf\x7fg\x85h\u2028i") == \
        "a\\nb\\rc\\td\\x00e\\x1bf\\x7fg\\x85h\\u2028i"
    assert escape_controls("plain é ü 漢") == "plain é ü 漢"


def _record(msg, *args, exc_info=None):
    return logging.LogRecord("edge_agent", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_formatter_escapes_controls_in_the_message_but_keeps_tracebacks():
    fmt = RedactingFormatter("%(levelname)s %(message)s", Redactor(["sekrit-key-1"]))
    out = fmt.format(_record("porch: state -> %s", "open\nERROR forged line\r\x1b[2J"))
    assert "\n" not in out and "\r" not in out and "\x1b" not in out
    assert out == "WARNING porch: state -> open\\nERROR forged line\\r\\x1b[2J"
    try:
        raise ValueError("boom sekrit-key-1")
    except ValueError as e:
        out = fmt.format(_record("failed\nhere", exc_info=(type(e), e, e.__traceback__)))
    first, *rest = out.split("\n")
    assert first == "WARNING failed\\nhere"
    assert rest[0].startswith("Traceback") and rest[-1] == "ValueError: boom ***"


def test_formatter_caps_the_message_after_redaction():
    key = "rf_live_KEY_do_not_leak_42"
    fmt = RedactingFormatter("%(message)s", Redactor([key]))
    msg = "c" * (MAX_LOG_MESSAGE - 5) + key + "d" * 10 * MB  # a 10 MB class name, key at the cut
    t0 = time.perf_counter()
    out = fmt.format(_record("%s", msg))
    assert time.perf_counter() - t0 < 0.5
    assert "rf_l" not in out
    assert out.startswith("c" * (MAX_LOG_MESSAGE - 5) + "***")
    assert out.endswith(f"…({len(msg) - len(key) + 3} chars)")
    assert len(out) < MAX_LOG_MESSAGE + 30


def test_setup_logging_installs_the_capping_formatter(capsys):
    from edge_agent.logs import setup_logging

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging("info", Redactor(["sekrit-key-1"]))
        logging.getLogger("edge_agent.test").warning("topic %s", "t/" + "x" * 100_000 + "\nINFO forged sekrit-key-1")
        err = capsys.readouterr().err
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
    assert err.count("\n") == 1 and "forged" not in err and len(err) < MAX_LOG_MESSAGE + 100
    assert "(100025 chars)" in err  # "topic t/" + 100000 x + "\\n" + "INFO forged ***"
