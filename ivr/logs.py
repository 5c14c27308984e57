"""Structured logging: one line per event, as logfmt or JSON, with secrets masked.

Call sites pass context as ``extra={"call_id": ...}``; every extra field shows up
as a key. Any configured secret value that reaches a line is replaced by ``***``,
whatever path it took there.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

MASK = "***"

# Attributes every LogRecord has; anything else on a record came in through `extra`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _logfmt_value(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\n\\'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class StructuredFormatter(logging.Formatter):
    def __init__(self, fmt: str = "logfmt", secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.fmt = fmt
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        if self.fmt == "json":
            line = json.dumps(fields, default=str)
        else:
            line = " ".join(f"{k}={_logfmt_value(v)}" for k, v in fields.items())
        for secret in self.secrets:
            line = line.replace(secret, MASK)
        return line


def setup_logging(level: str = "info", fmt: str = "logfmt", secrets: Iterable[str] = ()) -> None:
    """Send every logger to stderr through the structured formatter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(StructuredFormatter(fmt, secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Chatty libraries: panoramisk logs every AMI line, alembic its plugin set-up.
    logging.getLogger("panoramisk").setLevel(max(root.level, logging.INFO))
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
