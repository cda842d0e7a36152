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
