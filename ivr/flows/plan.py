"""Dial plans: YAML files in dialplans/ that map entries (DIDs or names) to flows.

Each file may hold ``entries`` (entry -> flow), ``flows`` (name -> flow) and
``hours`` (name -> business-hours calendar). All files of the folder form one
`DialPlan`. Loading and every check live in `ivr.flows.validate`; this module is
the shape of the data. docs/dialplans.md is the reference.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import Field

from ivr.flows.hours import Hours
from ivr.flows.nodes import NAME, Escape, Name, Node, Strict

Entry = Annotated[str, Field(pattern=r"^[A-Za-z0-9_+-]+$")]


class Flow(Strict):
    start: Name
    language: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")] = "en"
    region: Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="For caller IDs.")] = "US"
    escape: Escape | None = None
    nodes: dict[Name, Node] = Field(min_length=1)

    def version(self) -> str:
        """A content hash: the same definition always has the same version."""
        text = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


class PlanFile(Strict):
    entries: dict[Entry, Annotated[str, Field(pattern=NAME)]] = Field(default_factory=dict)
    flows: dict[Name, Flow] = Field(default_factory=dict)
    hours: dict[Name, Hours] = Field(default_factory=dict)


@dataclass(frozen=True)
class DialPlan:
    """One consistent, validated set of flows; a call keeps the plan it started with."""

    entries: dict[str, str]
    flows: dict[str, Flow]
    hours: dict[str, Hours]
    versions: dict[str, str] = field(default_factory=dict)

    def flow_for(self, entry: str) -> tuple[str, Flow] | None:
        name = self.entries.get(entry)
        return (name, self.flows[name]) if name is not None else None


class DialPlanError(Exception):
    """A dial plan that cannot be used; the message lists each problem's file:line:column."""
