"""Writes the database could not take, kept in order in a local file until it can.

One JSON line per write, appended and fsynced before the writer goes on, so a spooled
event survives a restart of the service. `replay` applies them in order and keeps the
ones still refused; while any wait, new writes queue behind them. A write the database
rejects for itself (not for being away) moves to ``calls.rejected.jsonl``, kept for a
person to look at, so that it never blocks the ones behind it.

Several processes may share a spool (the service, and process AGI's one process per
call): appends and replays hold a lock on ``calls.lock`` as well as the thread lock.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger("cti.spool")

Write = list[Any]


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be reached (worth retrying later), not
    that the write itself is wrong."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    raise TypeError(f"cannot spool {type(value).__name__}")


def _decode(value: dict[str, Any]) -> Any:
    return datetime.fromisoformat(value["$dt"]) if len(value) == 1 and "$dt" in value else value


def _writes(lines: list[str]) -> list[Write]:
    """Spooled lines read back, all in one go."""
    return DECODER.decode(f"[{','.join(lines)}]")  # type: ignore[no-any-return]


DECODER = json.JSONDecoder(object_hook=_decode)


class Spool:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "calls.jsonl"
        self.rejected = folder / "calls.rejected.jsonl"
        self.lock_path = folder / "calls.lock"
        self.lock = threading.Lock()

    @property
    def waiting(self) -> bool:
        """Whether any write waits (cheap: asked before every batch of writes)."""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    @property
    def count(self) -> int:
        """How many writes wait."""
        return len(self._lines())

    def _lines(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self.lock, self.lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def extend(self, writes: list[Write]) -> None:
        """Add writes at the end, on disk before this returns."""
        lines = "".join(json.dumps(write, default=_encode) + "\n" for write in writes)
        with self._locked(), self.path.open("a") as file:
            file.write(lines)
            file.flush()
            os.fsync(file.fileno())

    def replay(self, apply: Callable[[list[Write]], None], batch: int) -> int:
        """Apply the spooled writes in order, `batch` at a time (one by one where a batch
        fails), until the database is away again; how many went through."""
        with self._locked():
            lines = self._lines()
            done = 0
            while done < len(lines):
                chunk = lines[done : done + batch]
                try:
                    apply(_writes(chunk))
                except Exception as exc:
                    gone = 0 if unavailable(exc) else self._one_by_one(chunk, apply)
                    done += gone
                    if gone < len(chunk):
                        break
                else:
                    done += len(chunk)
            if done:
                rest = self.path.with_suffix(".tmp")
                rest.write_text("".join(f"{line}\n" for line in lines[done:]))
                os.replace(rest, self.path)
            return done

    def _one_by_one(self, lines: list[str], apply: Callable[[list[Write]], None]) -> int:
        """Apply these writes one at a time, a write the database rejects moved aside,
        until the database is away; how many are done with."""
        for n, line in enumerate(lines):
            try:
                apply(_writes([line]))
            except Exception as exc:
                if unavailable(exc):
                    return n
                log.error("spooled write rejected", extra={"error": str(exc)})
                with self.rejected.open("a") as file:
                    file.write(line + "\n")
        return len(lines)
