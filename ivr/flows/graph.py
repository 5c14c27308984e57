"""A picture of one flow for review: ``ivr graph FLOW -o flow.svg``.

`to_dot` gives the Graphviz DOT source, `write_svg` renders it with Graphviz's ``dot``.
Every edge comes from the nodes' own ``edges()``; the picture adds what has no edge of its
own: the retries of menus and collects, the fall-back to the safe queue when they have no
``failure``, and the flow's agent escape from every menu that allows it.

Styles: nodes waiting for the caller (menu, collect, survey) are rounded blue boxes, nodes
where the call leaves the flow (queue, transfer, hangup, return) green boxes with a double
border, the rest plain boxes. Failure edges are red; else, not found, overflow and callback
edges dashed; retries dotted self-loops; the agent escape grey and dashed.

With `traffic` (``ivr graph FLOW --from DATE --to DATE``), the picture also shows the calls
of a period, from the outcome log (cti/reports/traffic.py, `FlowTraffic` as a plain
mapping: ``calls``, ``edges`` {(from, to): calls}, ``visits``, ``hangups`` and ``escapes``
{node: calls}, optionally ``period``, a phrase for the title). Each arrow the journeys can
measure says "N calls", its pen the wider the larger its share of the flow's calls; each
node says how many calls reached it and how many were lost there ("hung up 12 · asked for
agent 3"). ivr/ does not import cti/ here: the caller passes the mapping.

All text goes through `graphviz.escape` (and ``&`` becomes ``&amp;``, since ``dot`` reads
entities in any label), so quotes, backslashes, ``<...>`` and ``&lt;`` in phrases are shown
as written and never read as DOT or HTML.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import graphviz
from pydantic import BaseModel

from ivr.flows.nodes import (
    ENDING,
    WAITING,
    BranchNode,
    CallbackNode,
    CollectNode,
    Condition,
    Edge,
    Escape,
    GotoNode,
    HangupNode,
    LanguageNode,
    LookupNode,
    MenuNode,
    PlayNode,
    QueueNode,
    RequestNode,
    Say,
    SetNode,
    SubflowNode,
    SurveyNode,
    TransferNode,
)
from ivr.flows.plan import DialPlan, Flow

__all__ = ["GraphError", "to_dot", "write_svg"]

# Ids of the pseudo-nodes: a space or parenthesis is never in a node name, so no clash.
START = "(start)"
SAFE_QUEUE = "(safe queue)"

FONT = "Helvetica,Arial,sans-serif"
LABEL_MAX = 32  # characters of one line of a node's detail or an edge's label
PART_MAX = 16  # characters of one phrase inside an option's label

# (shape, style, fill, border) by node family; endings also get a double border.
WAITING_STYLE = {
    "shape": "box",
    "style": "rounded,filled",
    "fillcolor": "#dbeafe",
    "color": "#1d4ed8",
}
ENDING_STYLE = {
    "shape": "box",
    "style": "filled",
    "fillcolor": "#dcfce7",
    "color": "#15803d",
    "peripheries": "2",
}
OTHER_STYLE = {"shape": "box", "style": "filled", "fillcolor": "white", "color": "#374151"}

DASHED = {"else", "not_found", "overflow", "callback"}
RED = "#dc2626"
GREY = "#9ca3af"


class GraphError(Exception):
    """The flow cannot be drawn: unknown flow, no ``dot``, or the output cannot be written."""


def to_dot(plan: DialPlan, flow: str, traffic: Mapping[str, Any] | None = None) -> str:
    """The DOT source of one flow of the plan; with `traffic`, the calls on it (see below)."""
    return _digraph(plan, flow, traffic).source


def write_svg(
    plan: DialPlan, flow: str, out: Path, traffic: Mapping[str, Any] | None = None
) -> None:
    """Render the flow to an SVG file at `out`; it appears whole or not at all."""
    graph = _digraph(plan, flow, traffic)
    if shutil.which("dot") is None:
        raise GraphError(
            "Graphviz 'dot' is not installed (not found on PATH); "
            "install the Debian package graphviz: apt-get install graphviz"
        )
    try:
        svg = graph.pipe(format="svg", engine="dot")
    except graphviz.ExecutableNotFound as exc:
        raise GraphError(
            f"cannot run Graphviz 'dot' ({exc}); install the Debian package graphviz"
        ) from None
    except subprocess.CalledProcessError as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        raise GraphError(f"dot failed on flow {flow!r}: {stderr.strip() or exc}") from None
    _write_atomically(Path(out), svg)


def _write_atomically(out: Path, data: bytes) -> None:
    folder = out.parent
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise GraphError(f"cannot write {out}: {exc}") from None
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, 0o644)  # mkstemp makes it 0600; a picture is for everyone to read
        os.replace(temp, out)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise GraphError(f"cannot write {out}: {exc}") from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _digraph(
    plan: DialPlan, name: str, traffic: Mapping[str, Any] | None = None
) -> graphviz.Digraph:
    flow = plan.flows.get(name)
    if flow is None:
        known = ", ".join(sorted(plan.flows)) or "(none)"
        raise GraphError(f"unknown flow {name!r}; flows: {known}")
    graph = graphviz.Digraph(name=name)
    title = f"flow {name} ({flow.language})"
    if traffic is not None:
        title += f": {_calls(int(traffic.get('calls', 0)))}"
        if traffic.get("period"):
            title += f", {traffic['period']}"
    graph.attr(
        rankdir="TB",
        label=_text(title),
        labelloc="t",
        fontname=FONT,
        fontsize="16",
        nodesep="0.35",
        ranksep="0.45",
    )
    graph.attr("node", fontname=FONT, fontsize="11", margin="0.15,0.06")
    graph.attr("edge", fontname=FONT, fontsize="10", arrowsize="0.7")

    start = _Arrow(START, flow.start, {}, measured=True)
    arrows: dict[str, list[_Arrow]] = {}
    safe_queue = False
    for node_name, node in flow.nodes.items():
        out = arrows[node_name] = [
            _Arrow(node_name, edge.target, _edge_style(edge), measured=True)
            for edge in node.edges()
        ]
        if isinstance(node, MenuNode | CollectNode):
            retried = "timeout/invalid" if isinstance(node, MenuNode) else "no entry/invalid"
            retry = {
                "label": _text(f"{retried}: retry x{node.max_tries}"),
                "style": "dotted",
                "color": "#6b7280",
                "fontcolor": "#6b7280",
                "dir": "forward",
            }
            out.append(_Arrow(node_name, node_name, retry))
            if node.failure is None:
                safe_queue = True
                failure = {"label": "failure", "color": RED, "fontcolor": RED}
                out.append(_Arrow(node_name, SAFE_QUEUE, failure))
        if isinstance(node, MenuNode) and node.escape and flow.escape is not None:
            out.append(_Arrow(node_name, flow.escape.goto, _escape_style(flow.escape), True))
    counts = _Counts(flow, [start, *(a for out in arrows.values() for a in out)], traffic)

    graph.node(
        START,
        label="start",
        shape="circle",
        style="filled",
        fillcolor="black",
        fontcolor="white",
        fontsize="9",
        width="0.45",
        fixedsize="true",
    )
    graph.edge(START, flow.start, **counts.edge(start))
    for node_name, node in flow.nodes.items():
        label = _lines(node_name, f"[{node.type}]", *_details(node))
        graph.node(node_name, label=counts.node(node_name, label), **_style(node))
        for arrow in arrows[node_name]:
            graph.edge(arrow.tail, arrow.head, **counts.edge(arrow))
    if safe_queue:
        graph.node(
            SAFE_QUEUE,
            label="safe queue",
            shape="ellipse",
            style="filled,dashed",
            fillcolor="#fee2e2",
            color=RED,
            fontcolor="#991b1b",
        )
    return graph


@dataclass(frozen=True, eq=False)
class _Arrow:
    """One arrow of the picture; `measured` when the journeys can tell the calls on it (the
    retry loops and the fall-back to the safe queue are not)."""

    tail: str
    head: str
    attrs: dict[str, str]
    measured: bool = False


class _Counts:
    """Traffic put on the picture: calls on the arrows, visits and drop-off on the nodes.

    A pass between two of the flow's nodes goes on the first measured arrow between them
    (which then says how many arrows it stands for); a pass with no arrow of its own went
    through ``goto`` nodes, which the journey does not record, and is put on each arrow of
    that way and on the goto nodes. Passes between other names (a subflow's nodes) are not
    drawn: the subflow node's arrow shows the calls that came back from it."""

    def __init__(self, flow: Flow, arrows: list[_Arrow], traffic: Mapping[str, Any] | None) -> None:
        self.traffic = traffic
        if traffic is None:
            return
        self.calls = int(traffic.get("calls", 0))
        self.visits: Counter[str] = Counter(
            {n: c for n, c in dict(traffic.get("visits", {})).items() if n in flow.nodes}
        )
        self.hangups = dict(traffic.get("hangups", {}))
        self.escapes = dict(traffic.get("escapes", {}))
        self.first: dict[tuple[str, str], _Arrow] = {}
        self.arrows: Counter[tuple[str, str]] = Counter()
        for arrow in arrows:
            if arrow.measured:
                self.first.setdefault((arrow.tail, arrow.head), arrow)
                self.arrows[arrow.tail, arrow.head] += 1
        self.passes: Counter[tuple[str, str]] = Counter({(START, flow.start): self.calls})
        for (tail, head), n in dict(traffic.get("edges", {})).items():
            if tail not in flow.nodes or head not in flow.nodes:
                continue
            way = (
                [tail, head]
                if (tail, head) in self.first
                else self._through_gotos(flow, tail, head)
            )
            for a, b in pairwise(way):
                self.passes[a, b] += n
            for goto in way[1:-1]:
                self.visits[goto] += n

    def _through_gotos(self, flow: Flow, tail: str, head: str) -> list[str]:
        """The way from `tail` to `head` through goto nodes along the arrows, or none."""
        for a, b in self.first:
            if a != tail or not isinstance(flow.nodes.get(b), GotoNode):
                continue
            way = [tail, b]
            while isinstance(node := flow.nodes.get(way[-1]), GotoNode) and node.goto not in way:
                way.append(node.goto)
            if way[-1] == head:
                return way
        return []

    def edge(self, arrow: _Arrow) -> dict[str, str]:
        if self.traffic is None or self.first.get((arrow.tail, arrow.head)) is not arrow:
            return arrow.attrs
        n = self.passes[arrow.tail, arrow.head]
        line = _calls(n)
        if (several := self.arrows[arrow.tail, arrow.head]) > 1:
            line += f" (all {several} arrows)"
        label = arrow.attrs.get("label")
        share = n / self.calls if self.calls else 0.0
        return arrow.attrs | {
            "label": graphviz.nohtml(f"{label}\\n{_text(line)}" if label else _text(line)),
            "penwidth": f"{1 + 4 * min(share, 1.0):.1f}",
        }

    def node(self, name: str, label: str) -> str:
        if self.traffic is None:
            return label
        lines = [_calls(self.visits[name])]
        lost = [
            f"{what} {n}"
            for what, n in (
                ("hung up", self.hangups.get(name, 0)),
                ("asked for agent", self.escapes.get(name, 0)),
            )
            if n
        ]
        if lost:
            lines.append(" · ".join(lost))
        return graphviz.nohtml("\\n".join([label, *(_text(line) for line in lines)]))


def _calls(n: int) -> str:
    return f"{n} call" if n == 1 else f"{n} calls"


def _style(node: BaseModel) -> dict[str, str]:
    if isinstance(node, WAITING):
        return WAITING_STYLE
    if isinstance(node, ENDING):
        return ENDING_STYLE
    return OTHER_STYLE


def _edge_style(edge: Edge) -> dict[str, str]:
    attrs = {"label": _text(_short_label(edge.label))} if edge.label else {}
    if edge.kind == "failure":
        attrs |= {"color": RED, "fontcolor": RED}
    elif edge.kind in DASHED:
        attrs |= {"style": "dashed"}
    return attrs


def _escape_style(escape: Escape) -> dict[str, str]:
    said = escape.say[0] if escape.say else ""
    label = " ".join(p for p in (escape.key, _short(said, PART_MAX)) if p)
    return {
        "label": _text(label),
        "style": "dashed",
        "color": GREY,
        "fontcolor": "#6b7280",
        "arrowhead": "empty",
        "weight": "0",
    }


def _details(node: BaseModel) -> list[str]:
    """A short line or two that says what the node does, beyond its name and type."""
    match node:
        case MenuNode() | PlayNode() | CallbackNode():
            first = _prompt(node.prompt)
            if isinstance(node, CallbackNode):
                return [f"reason {node.reason}", first]
            return [first]
        case QueueNode():
            line = f"queue {node.queue}"
            return [f"{line} (priority {node.priority})" if node.priority else line]
        case TransferNode():
            return [f"to {node.to}"]
        case LookupNode():
            by = " by caller ID" if node.by == "caller_id" else ""
            return [f"find {node.find}{by}"]
        case CollectNode():
            return [f"var {node.var}"]
        case SurveyNode():
            return [f"question {node.question} ({node.kind})"]
        case SubflowNode():
            return [f"call flow {node.flow}"]
        case SetNode():
            (var, value), *rest = node.vars.items()
            more = f" (+{len(rest)} more)" if rest else ""
            return [f"{_short(var, PART_MAX)} = {_short(value, PART_MAX)}{more}"]
        case LanguageNode():
            return [f"language {node.language}"]
        case HangupNode() | RequestNode() if node.prompt:
            return [_prompt(node.prompt)]
        case BranchNode():
            return [f"{i + 1}: {_condition(c.when)}" for i, c in enumerate(node.cases[:4])] + (
                [f"… {len(node.cases) - 4} more"] if len(node.cases) > 4 else []
            )
    return []


def _prompt(prompt: list[str | Say]) -> str:
    first = prompt[0]
    text = first if isinstance(first, str) else f"say {first.say} {first.value}"
    return f"{_short(text, LABEL_MAX - 4)} +{len(prompt) - 1}" if len(prompt) > 1 else text


def _condition(when: Condition) -> str:
    if when.var is not None:
        for test, sign in (("eq", "="), ("ne", "≠"), ("in_", "in"), ("matches", "~")):
            value = getattr(when, test)
            if value is not None:
                return f"{when.var} {sign} {value}"
        return f"{when.var} {'exists' if when.exists else 'missing'}"
    if when.open is not None:
        return f"open {when.open}"
    if when.closed is not None:
        return f"closed {when.closed}"
    group = "all" if when.all is not None else "any"
    return f"{group} of {len(when.all or when.any or [])} tests"


def _lines(*lines: str) -> str:
    """A multi-line label: each line shortened and escaped, joined by DOT's centred newline."""
    return graphviz.nohtml("\\n".join(_text(_short(line)) for line in lines if line))


def _text(text: str) -> str:
    """Plain text for a label: backslashes, <...> and entities (&lt;) lose their DOT meaning."""
    return graphviz.escape(text.replace("&", "&amp;"))


def _short(text: str, limit: int = LABEL_MAX) -> str:
    text = " ".join(text.split())  # newlines and tabs in a phrase would break the layout
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _short_label(label: str) -> str:
    """An edge label with each part (key, "phrase", ...) shortened; parts that do not fit go."""
    parts = label.split(" / ")
    if len(parts) == 1:
        return _short(label)
    for i, part in enumerate(parts):
        if len(part) > 2 and part[0] == part[-1] == '"':
            parts[i] = f'"{_short(part[1:-1], PART_MAX)}"'
        else:
            parts[i] = _short(part, PART_MAX)
    while len(parts) > 2 and len(" / ".join(parts)) > LABEL_MAX:
        parts = [*parts[:-2], "…"] if parts[-1] == "…" else [*parts[:-1], "…"]
    return _short(" / ".join(parts))
