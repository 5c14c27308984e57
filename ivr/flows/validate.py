"""Loading and checking dial plans: every problem as ``file:line:column: message``.

Errors stop a plan from going live; warnings (e.g. unreachable nodes) do not.
Checks beyond the schema: gotos to missing nodes or flows, unreachable nodes,
loops with no way out, colliding menu options, missing prompts, unknown hours.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError

from ivr import prompts
from ivr.flows.nodes import (
    ENDING,
    WAITING,
    BranchNode,
    CallbackNode,
    CollectNode,
    GotoNode,
    LanguageNode,
    MenuNode,
    Node,
    PlayNode,
    RequestNode,
    SetNode,
    SubflowNode,
    normal_phrase,
    prompts_of,
)
from ivr.flows.plan import DialPlan, DialPlanError, Flow, PlanFile
from ivr.flows.source import Path_, Position, Source, SourceError, load_source

# Nodes that always go on to one next node without asking anything.
STRAIGHT = (
    PlayNode,
    SetNode,
    LanguageNode,
    GotoNode,
    CallbackNode,
    RequestNode,
)


@dataclass(frozen=True)
class Problem:
    where: Position
    message: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{self.where}: {'warning: ' if self.warning else ''}{self.message}"


def plan_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.yaml")) if path.is_dir() else [path]


def check(path: Path, prompts_root: Path | None) -> tuple[DialPlan | None, list[Problem]]:
    """Load and check a folder (or one file); the plan is None when there are errors."""
    problems: list[Problem] = []
    files = plan_files(path)
    if not files:
        return None, [Problem(Position(str(path), 1, 1), "no *.yaml dial plans here")]
    loaded: list[tuple[Source, PlanFile]] = []
    for file in files:
        try:
            source = load_source(file)
        except (SourceError, OSError) as exc:
            problems.append(_problem_of(exc, file))
            continue
        try:
            loaded.append((source, PlanFile.model_validate(source.data)))
        except ValidationError as exc:
            problems += _schema_problems(source, exc)
    plan, origin = _merge(loaded, problems)
    catalogs: dict[str, set[str]] = {}  # loaded once per check, per language
    for name, flow in plan.flows.items():
        source = origin[name]
        base: Path_ = ("flows", name)
        problems += _check_flow(plan, name, flow, source, base, prompts_root, catalogs)
    for entry, flow_name in plan.entries.items():
        if flow_name not in plan.flows:
            source = origin[f"entries:{entry}"]
            problems.append(Problem(source.at(("entries", entry)), f"unknown flow {flow_name!r}"))
    if any(not p.warning for p in problems):
        return None, problems
    return plan, problems


def load_plan(path: Path, prompts_root: Path | None = None) -> DialPlan:
    """The checked plan, or DialPlanError listing every error."""
    plan, problems = check(path, prompts_root)
    if plan is None:
        raise DialPlanError("\n".join(str(p) for p in problems if not p.warning))
    return plan


def _problem_of(exc: Exception, file: Path) -> Problem:
    if isinstance(exc, SourceError):
        return Problem(exc.where, exc.message)
    return Problem(Position(str(file), 1, 1), f"cannot read: {exc}")


def _schema_problems(source: Source, exc: ValidationError) -> list[Problem]:
    seen: set[Position] = set()
    found = []
    for error in exc.errors():
        path = _data_path(source.data, error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden":
            where, message = source.at(path, key=True), f"unknown field {path[-1]!r}"
        elif kind == "missing":
            where, message = source.at(path[:-1]), f"missing field {error['loc'][-1]!r}"
        elif kind == "union_tag_invalid":
            tags = error.get("ctx", {}).get("expected_tags", "")
            where = source.at((*path, "type"))
            message = f"unknown node type {error['input'].get('type')!r} (one of {tags})"
        else:
            where, message = source.at(path), error["msg"]
        if where not in seen:  # a union reports one bad value once per member
            seen.add(where)
            found.append(Problem(where, message))
    return found


def _data_path(data: Any, loc: tuple[int | str, ...]) -> Path_:
    """Pydantic's error location, without the union tags it adds (node types, member names)."""
    path: list[str | int] = []
    for i, part in enumerate(loc):
        after_node = i >= 2 and loc[i - 2] == "nodes" and len(path) == i
        if after_node and part in NODE_TYPES and data.get("type") == part:
            continue  # the node-type tag pydantic puts after a node's name
        if isinstance(data, dict) and str(part) in data:
            data = data[str(part)]
            path.append(str(part))
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
            path.append(part)
        elif not isinstance(data, dict | list):
            break
        elif isinstance(data, dict) and not isinstance(part, int) and not _is_tag(part):
            path.append(str(part))  # a missing key: point at its parent, name the key
            break
    return tuple(path)


NODE_TYPES = {n.model_fields["type"].annotation.__args__[0] for n in get_args(Node.__origin__)}


def _is_tag(part: str | int) -> bool:
    """Names pydantic gives union members in error locations (not keys of the YAML)."""
    return isinstance(part, str) and (part in ("str", "Say") or "-" in part or "[" in part)


def _merge(
    loaded: list[tuple[Source, PlanFile]], problems: list[Problem]
) -> tuple[DialPlan, dict[str, Source]]:
    entries: dict[str, str] = {}
    flows: dict[str, Flow] = {}
    hours: dict[str, Any] = {}
    origin: dict[str, Source] = {}
    for source, part in loaded:
        for kind, items, into in (
            ("flows", part.flows, flows),
            ("hours", part.hours, hours),
            ("entries", part.entries, entries),
        ):
            for name, value in items.items():
                tag = name if kind == "flows" else f"{kind}:{name}"
                if name in into:
                    first = origin[tag].at((kind, name), key=True)
                    problems.append(
                        Problem(
                            source.at((kind, name), key=True),
                            f"{kind}.{name} is already defined at {first}",
                        )
                    )
                    continue
                into[name] = value
                origin[tag] = source
    versions = {name: flow.version() for name, flow in flows.items()}
    return DialPlan(entries, flows, hours, versions), origin


def _check_flow(
    plan: DialPlan,
    name: str,
    flow: Flow,
    source: Source,
    base: Path_,
    prompts_root: Path | None,
    catalogs: dict[str, set[str]],
) -> Iterator[Problem]:
    nodes = flow.nodes
    if flow.start not in nodes:
        yield Problem(source.at((*base, "start")), f"start goes to unknown node {flow.start!r}")
    if flow.escape and flow.escape.goto not in nodes:
        yield Problem(
            source.at((*base, "escape", "goto")), f"goto to unknown node {flow.escape.goto!r}"
        )
    for node_name, node in nodes.items():
        at: Path_ = (*base, "nodes", node_name)
        for edge in node.edges():
            if edge.target not in nodes:
                yield Problem(source.at((*at, *edge.path)), f"goto to unknown node {edge.target!r}")
        if isinstance(node, SubflowNode) and node.flow not in plan.flows:
            yield Problem(source.at((*at, "flow")), f"unknown flow {node.flow!r}")
        if isinstance(node, BranchNode):
            for i, case in enumerate(node.cases):
                for hours in case.when.hours():
                    if hours not in plan.hours:
                        yield Problem(
                            source.at((*at, "cases", i, "when")), f"unknown hours {hours!r}"
                        )
        if isinstance(node, MenuNode):
            yield from _collisions(node, flow, source, at)
    yield from _reachability(flow, source, base)
    if prompts_root is not None:
        yield from _missing_prompts(flow, source, base, prompts_root, catalogs)


def _collisions(menu: MenuNode, flow: Flow, source: Source, at: Path_) -> Iterator[Problem]:
    keys: dict[str, str] = {}
    phrases: dict[str, str] = {}
    if menu.escape and flow.escape:
        if flow.escape.key:
            keys[flow.escape.key] = "the flow's agent escape"
        for phrase in flow.escape.say:
            phrases[normal_phrase(phrase)] = "the flow's agent escape"
    for i, option in enumerate(menu.options):
        if option.key is not None:
            if option.key in keys:
                yield Problem(
                    source.at((*at, "options", i, "key")),
                    f"key {option.key!r} is already used by {keys[option.key]}",
                )
            keys.setdefault(option.key, f"option {i + 1}")
        for j, phrase in enumerate(option.say):
            norm = normal_phrase(phrase)
            if norm in phrases:
                yield Problem(
                    source.at((*at, "options", i, "say", j)),
                    f"phrase {phrase!r} is already used by {phrases[norm]}",
                )
            phrases.setdefault(norm, f"option {i + 1}")


def _reachability(flow: Flow, source: Source, base: Path_) -> Iterator[Problem]:
    nodes = flow.nodes
    succ = {n: [e.target for e in node.edges() if e.target in nodes] for n, node in nodes.items()}
    if flow.escape and flow.escape.goto in nodes:
        for n, node in nodes.items():
            if isinstance(node, MenuNode) and node.escape:
                succ[n].append(flow.escape.goto)
    reached = _closure([flow.start] if flow.start in nodes else [], succ)
    for n in nodes:
        if n not in reached:
            yield Problem(
                source.at((*base, "nodes", n), key=True),
                f"node {n!r} is unreachable from start {flow.start!r}",
                warning=True,
            )
    # A way out: an ending node, or a menu/collect whose failure falls back to the safe queue.
    # (A node with a goto to a missing node is reported for that already.)
    exits = {
        n
        for n, node in nodes.items()
        if isinstance(node, ENDING)
        or (isinstance(node, MenuNode | CollectNode) and node.failure is None)
        or any(e.target not in nodes for e in node.edges())
    }
    pred: dict[str, list[str]] = {n: [] for n in nodes}
    for n, targets in succ.items():
        for t in targets:
            pred[t].append(n)
    can_end = _closure(list(exits), pred)
    for n in nodes:
        if n in reached and n not in can_end:
            yield Problem(
                source.at((*base, "nodes", n), key=True),
                f"node {n!r} is in a loop with no way out (no queue, transfer, "
                "hangup or failure fallback can be reached from it)",
            )
    straight = {n: succ[n] for n, node in nodes.items() if isinstance(node, STRAIGHT)}
    for cycle in _cycles(straight):
        if not any(isinstance(nodes[n], WAITING) for n in cycle):
            yield Problem(
                source.at((*base, "nodes", cycle[0]), key=True),
                "loops forever without waiting for the caller: " + " -> ".join([*cycle, cycle[0]]),
            )


def _closure(start: list[str], succ: dict[str, list[str]]) -> set[str]:
    seen = set(start)
    todo = list(start)
    while todo:
        for nxt in succ.get(todo.pop(), []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _cycles(succ: dict[str, list[str]]) -> list[list[str]]:
    """Cycles in a graph where every node has at most one successor (play, set, goto...)."""
    found, done = [], set()
    for start in succ:
        path: list[str] = []
        node = start
        while node in succ and node not in done and node not in path:
            path.append(node)
            node = succ[node][0] if succ[node] else ""
        if node in path:
            found.append(path[path.index(node) :])
        done.update(path)
    return found


def _missing_prompts(
    flow: Flow, source: Source, base: Path_, root: Path, catalogs: dict[str, set[str]]
) -> Iterator[Problem]:
    languages = {flow.language} | {
        n.language for n in flow.nodes.values() if isinstance(n, LanguageNode)
    }
    used = [
        ((*base, "nodes", node_name, *path), name)
        for node_name, node in flow.nodes.items()
        for path, name in prompts_of(node)
        if not name.startswith(prompts.STOCK_PREFIX)
    ]
    for lang in sorted(languages):
        if lang not in catalogs:
            try:
                catalogs[lang] = set(prompts.load_catalog(root, lang).texts)
            except prompts.PromptError as exc:  # a broken catalog: "file:line: message"
                file, line, message = _split_location(str(exc), root / lang / prompts.CATALOG_FILE)
                yield Problem(Position(file, line, 1), message)
                catalogs[lang] = set()
                continue
        known = catalogs[lang]
        for path, name in used:
            if name not in known and not prompts.prompt_path(root, lang, name).is_file():
                yield Problem(
                    source.at(path),
                    f"prompt {name!r} has no recording or catalog text in prompts/{lang}/",
                )


def _split_location(text: str, default: Path) -> tuple[str, int, str]:
    found = re.match(r"^(.+?):(\d+): (.*)$", text, re.S)
    if found:
        return found[1], int(found[2]), found[3]
    return str(default), 1, text
