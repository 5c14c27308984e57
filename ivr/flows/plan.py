"""The dial-plan language: YAML files in dialplans/ that map entries (DIDs or names) to flows.

Each file holds ``entries`` (entry -> flow name) and ``flows`` (name -> flow). All
files in the folder form one plan; a duplicate entry or flow name is an error
naming both files. See docs/dialplans.md for the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

NodeName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")]


class DialPlanError(Exception):
    """A dial plan that cannot be used; the message names the file and the key."""


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlayNode(_Node):
    type: Literal["play"]
    prompt: str
    next: NodeName


class MenuNode(_Node):
    type: Literal["menu"]
    prompt: str
    options: dict[str, NodeName] = Field(description="Key pressed -> node.")
    timeout: float = Field(5.0, gt=0, description="Seconds to wait for a key.")
    max_tries: int = Field(3, ge=1)
    retry_prompt: str | None = Field(None, description="Played before a retry.")
    failure: NodeName | None = Field(None, description="Node after max_tries; default: fallback.")

    @model_validator(mode="after")
    def _single_keys(self) -> MenuNode:
        for key in self.options:
            if len(key) != 1 or key not in "0123456789*#":
                raise ValueError(f"option {key!r} is not a single key 0-9, * or #")
        return self


class QueueNode(_Node):
    type: Literal["queue"]
    queue: str
    priority: int = Field(0, ge=0, le=10)


class TransferNode(_Node):
    type: Literal["transfer"]
    target: str = Field(description="Asterisk dial string, e.g. PJSIP/1001.")


class HangupNode(_Node):
    type: Literal["hangup"]
    prompt: str | None = None


Node = Annotated[
    PlayNode | MenuNode | QueueNode | TransferNode | HangupNode, Field(discriminator="type")
]


class Flow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: NodeName
    language: str = "en"
    nodes: dict[NodeName, Node]

    @model_validator(mode="after")
    def _targets_exist(self) -> Flow:
        for name, node in {"start": self.start, **self._targets()}.items():
            if node not in self.nodes:
                raise ValueError(f"{name} goes to unknown node {node!r}")
        return self

    def _targets(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for name, node in self.nodes.items():
            if isinstance(node, PlayNode):
                found[f"nodes.{name}.next"] = node.next
            elif isinstance(node, MenuNode):
                for key, target in node.options.items():
                    found[f"nodes.{name}.options.{key}"] = target
                if node.failure:
                    found[f"nodes.{name}.failure"] = node.failure
        return found


class PlanFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entries: dict[str, str] = Field(default_factory=dict)
    flows: dict[NodeName, Flow] = Field(default_factory=dict)


class DialPlan(BaseModel):
    entries: dict[str, str]
    flows: dict[str, Flow]

    def flow_for(self, entry: str) -> tuple[str, Flow] | None:
        name = self.entries.get(entry)
        return (name, self.flows[name]) if name is not None else None


def load_file(path: Path) -> PlanFile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise DialPlanError(f"{path}{where}: not valid YAML") from None
    try:
        return PlanFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise DialPlanError(f"{path}: {_key(error['loc'])}: {error['msg']}") from None


def _key(loc: tuple[int | str, ...]) -> str:
    """The YAML key path of an error, without pydantic's node-type tag after a node's name."""
    parts = [str(p) for i, p in enumerate(loc) if not (i >= 2 and loc[i - 2] == "nodes")]
    return ".".join(parts)


def load_plan(folder: Path) -> DialPlan:
    """Load every *.yaml file in `folder` into one plan."""
    entries: dict[str, str] = {}
    flows: dict[str, Flow] = {}
    origin: dict[str, Path] = {}
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise DialPlanError(f"{folder}: no *.yaml dial plans found")
    for path in files:
        plan = load_file(path)
        for name, flow in plan.flows.items():
            if name in flows:
                raise DialPlanError(f"{path}: flows.{name}: already defined in {origin[name]}")
            flows[name], origin[name] = flow, path
        for entry, flow_name in plan.entries.items():
            if entry in entries:
                raise DialPlanError(f"{path}: entries.{entry}: already defined elsewhere")
            entries[entry] = flow_name
    for entry, flow_name in entries.items():
        if flow_name not in flows:
            raise DialPlanError(f"{folder}: entries.{entry}: unknown flow {flow_name!r}")
    return DialPlan(entries=entries, flows=flows)
