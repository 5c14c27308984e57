from __future__ import annotations

import json
import logging

from ivr.logs import StructuredFormatter


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("ivr.test", logging.INFO, __file__, 1, msg, args, None)
    rec.__dict__.update(extra)
    return rec


def test_logfmt_carries_extra_fields_and_quotes_values() -> None:
    line = StructuredFormatter("logfmt").format(record("call %s", "started", call_id="abc"))
    assert 'msg="call started"' in line
    assert "call_id=abc" in line
    assert "level=info logger=ivr.test" in line


def test_json_lines_parse() -> None:
    line = StructuredFormatter("json").format(record("hello", call_id="c1"))
    assert json.loads(line)["call_id"] == "c1"


def test_secrets_are_masked_wherever_they_appear() -> None:
    fmt = StructuredFormatter("logfmt", secrets=["hunter2", ""])
    line = fmt.format(record("login with %s", "hunter2", detail="x hunter2 y"))
    assert "hunter2" not in line
    assert line.count("***") == 2
