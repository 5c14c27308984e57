"""The live dial plan, swapped atomically when a changed folder checks out.

A change is checked first; an invalid one leaves the previous plan live and is
logged (and reported by `ivr validate`). A call holds the plan it started with,
so it finishes on that version.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from ivr.flows.plan import DialPlan
from ivr.flows.validate import Problem, check, load_plan, plan_files

log = logging.getLogger("ivr.dialplans")

Fingerprint = tuple[tuple[str, int, int], ...]


class LivePlan:
    def __init__(self, folder: Path, prompts_root: Path) -> None:
        self.folder = folder
        self.prompts_root = prompts_root
        self.fingerprint = self._fingerprint()
        self.plan: DialPlan = load_plan(folder, prompts_root)

    def _fingerprint(self) -> Fingerprint:
        files = plan_files(self.folder) + sorted(self.prompts_root.glob("*/catalog.yaml"))
        found = []
        for file in files:
            try:
                stat = file.stat()
            except FileNotFoundError:
                continue
            found.append((str(file), stat.st_mtime_ns, stat.st_size))
        return tuple(found)

    def reload_if_changed(self) -> list[Problem] | None:
        """Check and swap in a changed plan; the problems found, or None when nothing changed."""
        fingerprint = self._fingerprint()
        if fingerprint == self.fingerprint:
            return None
        self.fingerprint = fingerprint
        plan, problems = check(self.folder, self.prompts_root)
        errors = [p for p in problems if not p.warning]
        if plan is None:
            for problem in errors:
                log.error(
                    "dial plan change refused; the previous version stays live",
                    extra={"problem": str(problem)},
                )
            return problems
        changed = {n: v for n, v in plan.versions.items() if self.plan.versions.get(n) != v}
        self.plan = plan
        log.info(
            "dial plan reloaded",
            extra={"changed": ",".join(f"{n}@{v}" for n, v in sorted(changed.items())) or "none"},
        )
        return problems

    async def watch(self, interval: float = 2.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.reload_if_changed)
            except Exception:
                log.exception("dial plan reload failed; the previous version stays live")
