"""Kinds and outcomes are enums that show as their words, on every Python the
agent supports (3.10 has no enum.StrEnum: edge_agent/strenum.py stands in)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PY310 = Path.home() / ".pyenv/versions/3.10.13/bin/python3"

CHECK = """
import json, sys
sys.path.insert(0, sys.argv[1])
from edge_agent.strenum import StrEnum
class Kind(StrEnum):
    TIMEOUT = "timeout"
k = Kind("timeout")
assert k is Kind.TIMEOUT and k == "timeout" and str(k) == "timeout" and f"{k}" == "timeout"
assert f"{k:>8}" == " timeout" and "%s" % k == "timeout" and json.dumps({"kind": k}) == '{"kind": "timeout"}'
assert {"timeout": 1}[k] == 1
print("ok")
"""


def test_members_are_their_words_here():
    out = subprocess.run([sys.executable, "-c", CHECK, str(ROOT)], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


@pytest.mark.skipif(not PY310.exists(), reason="no Python 3.10 on this machine")
def test_members_are_their_words_on_python_3_10():
    out = subprocess.run([str(PY310), "-c", CHECK, str(ROOT)], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
