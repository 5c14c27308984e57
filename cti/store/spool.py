"""Writes the database could not take, kept in order in a local file until it can.

One JSON line per write, appended and fsynced before the writer goes on, so a spooled
event survives a restart of the service. `replay` applies them in order and keeps the
ones still refused; while any wait, new writes queue behind them. A write the database
rejects for itself (not for being away) moves to ``calls.rejected.jsonl``, kept for a
person to look at, so that it never blocks the ones behind it.

Several processes may share a spool (the service, and process AGI's one process per
call): appends to and replays of a file hold its lock file as well as a thread lock.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger("cti.spool")

Write = list[Any]
OPTIONS = orjson.OPT_NON_STR_KEYS
SHARDS = 2  # files, replayed side by side by as many writers as the database takes


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be reached (worth retrying later), not
    that the write itself is wrong."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _writes(lines: list[str]) -> list[Write]:
    """Spooled lines read back, all in one go; times come back as ISO text
    (`cti.store.calls` revives them)."""
    return orjson.loads(f"[{','.join(lines)}]")  # type: ignore[no-any-return]


class Spool:
    """The spool in `folder`: its writes in SHARDS files by call (``calls.jsonl``,
    ``calls.1.jsonl``...), so that a call's writes stay in order in one file and the
    files can be replayed side by side, one database connection each."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.rejected = folder / "calls.rejected.jsonl"
        names = ["calls", *(f"calls.{n}" for n in range(1, SHARDS))]
        self.shards = [_Shard(folder, name, self.rejected) for name in names]

    @property
    def waiting(self) -> bool:
        """Whether any write waits (cheap: asked before every batch of writes)."""
        return any(shard.waiting for shard in self.shards)

    @property
    def count(self) -> int:
        """How many writes wait."""
        return sum(len(shard.lines()) for shard in self.shards)

    def extend(self, writes: list[Write]) -> None:
        """Add writes at the end of their calls' files, on disk before this returns."""
        by_shard: dict[int, list[Write]] = defaultdict(list)
        for write in writes:
            by_shard[shard_of(write[1]["id"])].append(write)
        for n, found in by_shard.items():
            self.shards[n].extend(found)

    def replay(self, apply: Callable[[list[Write]], None], batch: int, side_by_side: int) -> int:
        """Apply the spooled writes, each file in order, `batch` at a time (one by one
        where a batch fails), until the database is away again; `side_by_side` files at
        once (`apply` must be safe to call from that many threads). How many went through."""
        with ThreadPoolExecutor(side_by_side, thread_name_prefix="spool-replay") as pool:
            return sum(pool.map(lambda shard: shard.replay(apply, batch), self.shards))


def shard_of(call_id: str) -> int:
    """Which of the SHARDS a call's writes go to (the same in every process)."""
    return zlib.crc32(call_id.encode()) % SHARDS


class _Shard:
    def __init__(self, folder: Path, name: str, rejected: Path) -> None:
        self.path = folder / f"{name}.jsonl"
        self.lock_path = folder / f"{name}.lock"
        self.rejected = rejected
        self.lock = threading.Lock()

    @property
    def waiting(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def lines(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self.lock, self.lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def extend(self, writes: list[Write]) -> None:
        lines = b"".join(orjson.dumps(write, option=OPTIONS) + b"\n" for write in writes)
        with self._locked(), self.path.open("ab") as file:
            file.write(lines)
            file.flush()
            os.fsync(file.fileno())

    def replay(self, apply: Callable[[list[Write]], None], batch: int) -> int:
        with self._locked():
            lines = self.lines()
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
                with self.rejected.open("a") as file:  # O_APPEND: whole lines
                    file.write(line + "\n")
        return len(lines)
