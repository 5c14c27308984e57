"""`ivr.flows.graph`: flows drawn by the real Graphviz ``dot``, read back as SVG."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cti.store.calls import CallLog, IvrPart
from cti.store.db import make_engine, session_factory
from ivr.flows.graph import GraphError, to_dot, write_svg
from ivr.flows.plan import DialPlan
from ivr.flows.validate import load_plan
from tests.support.service import IVR

REPO = Path(__file__).resolve().parents[1]
SVG = "{http://www.w3.org/2000/svg}"
RED = "#dc2626"

SAMPLE = """
flows:
  support:
    start: hours
    escape: {key: "0", say: [agent, representative], goto: agent}
    nodes:
      hours:
        type: branch
        cases:
          - when: {closed: office}
            goto: closed
          - when: {var: caller.vip, eq: true}
            goto: vip
        else: main_menu
      main_menu:
        type: menu
        prompt: [main-menu, main-menu-2]
        options:
          - {key: "1", say: [order status], goto: order_number}
          - {key: "2", say: [billing], goto: billing}
          - {key: "3", say: [support], goto: tech}
          - {key: "9", goto: goodbye}
      order_number:
        type: collect
        prompt: enter-order-number
        var: order_number
        next: find_order
      find_order:
        type: lookup
        find: order
        value: ${order_number}
        found: order_menu
        not_found: agent
        fallback: agent
      order_menu:
        type: menu
        prompt: order-status
        max_tries: 2
        options:
          - {key: "1", goto: goodbye}
          - {key: "2", goto: main_menu}
        failure: goodbye
      billing: {type: queue, queue: billing, priority: 5}
      tech: {type: queue, queue: tech, max_wait: 300, overflow: agent}
      vip: {type: queue, queue: vip}
      agent: {type: queue, queue: sales}
      closed: {type: hangup, prompt: closed-message}
      goodbye: {type: hangup}
  other:
    start: bye
    nodes:
      bye: {type: hangup}
hours:
  office:
    timezone: America/New_York
    weekly:
      mon: ["08:00-20:00"]
"""


@dataclass(frozen=True)
class Drawn:
    """What a person sees in the SVG: the text of every node and edge, edges by tail->head."""

    texts: list[str]
    nodes: dict[str, list[str]]
    edges: list[tuple[str, list[str], str, str]]  # (tail->head, texts, stroke, dasharray)

    def edges_between(self, tail: str, head: str) -> list[tuple[list[str], str, str]]:
        return [
            (t, stroke, dash) for title, t, stroke, dash in self.edges if title == f"{tail}->{head}"
        ]


def plan_of(folder: Path, text: str) -> DialPlan:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plan.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return load_plan(folder)


def draw(plan: DialPlan, flow: str, out: Path, traffic: dict[str, Any] | None = None) -> Drawn:
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # graphviz's DotSyntaxWarning would be a quoting bug
        write_svg(plan, flow, out, traffic)
    return read_svg(out)


def read_svg(out: Path) -> Drawn:
    root = ET.parse(out).getroot()
    assert root.tag == f"{SVG}svg"
    nodes: dict[str, list[str]] = {}
    edges = []
    for group in root.iter(f"{SVG}g"):
        title = group.findtext(f"{SVG}title", "")
        texts = [t.text or "" for t in group.iter(f"{SVG}text")]
        if group.get("class") == "node":
            nodes[title] = texts
        elif group.get("class") == "edge":
            path = group.find(f"{SVG}path")
            assert path is not None
            edges.append((title, texts, path.get("stroke", ""), path.get("stroke-dasharray", "")))
    return Drawn([t.text or "" for t in root.iter(f"{SVG}text")], nodes, edges)


def test_the_svg_shows_every_node_and_every_option(tmp_path: Path) -> None:
    plan = plan_of(tmp_path / "plan", SAMPLE)
    out = tmp_path / "out" / "support.svg"
    drawn = draw(plan, "support", out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["support.svg"]  # no temp file left
    for name, node in plan.flows["support"].nodes.items():
        assert drawn.nodes[name][:2] == [name, f"[{node.type}]"]
    assert drawn.nodes["main_menu"][2] == "main-menu +1"
    assert drawn.nodes["billing"][2] == "queue billing (priority 5)"
    assert drawn.nodes["vip"][2] == "queue vip"
    assert drawn.nodes["find_order"][2] == "find order"
    assert drawn.nodes["order_number"][2] == "var order_number"
    assert drawn.nodes["hours"][2:] == ["1: closed office", "2: caller.vip = True"]
    assert drawn.nodes["(start)"] == ["start"]
    assert drawn.edges_between("(start)", "hours")
    for label, target in (
        ('1 / "order status"', "order_number"),
        ('2 / "billing"', "billing"),
        ('3 / "support"', "tech"),
        ("9", "goodbye"),
    ):
        assert drawn.edges_between("main_menu", target) == [([label], "black", "")]
    assert drawn.edges_between("hours", "closed") == [(["case 1"], "black", "")]
    assert drawn.edges_between("hours", "main_menu")[0][0] == ["else"]
    assert drawn.edges_between("hours", "main_menu")[0][2]  # dashed
    not_found, failed = drawn.edges_between("find_order", "agent")
    assert (not_found[0], bool(not_found[2])) == (["not found"], True)
    assert (failed[0], failed[1]) == (["lookup failed"], RED)
    assert drawn.edges_between("tech", "agent")[0][0] == ["after 300s"]
    assert "flow support (en)" in drawn.texts


def test_menus_and_collects_without_failure_fall_back_to_the_safe_queue(tmp_path: Path) -> None:
    drawn = draw(plan_of(tmp_path / "plan", SAMPLE), "support", tmp_path / "support.svg")
    assert drawn.nodes["(safe queue)"] == ["safe queue"]
    for name in ("main_menu", "order_number"):
        assert drawn.edges_between(name, "(safe queue)") == [(["failure"], RED, "")]
    assert drawn.edges_between("order_menu", "(safe queue)") == []
    assert drawn.edges_between("order_menu", "goodbye")[1][:2] == (["failure"], RED)
    # the retries have no edge of their own: a dotted loop says how many tries there are
    loop = drawn.edges_between("main_menu", "main_menu")
    assert [(t, bool(d)) for t, _, d in loop] == [(["timeout/invalid: retry x3"], True)]
    assert drawn.edges_between("order_menu", "order_menu")[0][0] == ["timeout/invalid: retry x2"]
    assert drawn.edges_between("order_number", "order_number")[0][0] == [
        "no entry/invalid: retry x3"
    ]


def test_no_safe_queue_when_every_menu_has_a_failure_target(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path / "plan",
        """
        flows:
          f:
            start: m
            nodes:
              m: {type: menu, prompt: p, options: [{key: "1", goto: q}], failure: q}
              q: {type: queue, queue: sales}
        """,
    )
    drawn = draw(plan, "f", tmp_path / "f.svg")
    assert "(safe queue)" not in drawn.nodes
    assert "safe queue" not in drawn.texts


def test_the_agent_escape_is_drawn_once_from_every_menu_that_allows_it(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path / "plan",
        """
        flows:
          f:
            start: a
            escape: {key: "0", say: [agent, operator], goto: agent}
            nodes:
              a: {type: menu, prompt: p, options: [{key: "1", goto: b}, {key: "2", goto: c}]}
              b: {type: menu, prompt: p, options: [{key: "1", goto: c}]}
              c: {type: menu, prompt: p, escape: false, options: [{key: "0", goto: agent}]}
              agent: {type: queue, queue: sales}
        """,
    )
    drawn = draw(plan, "f", tmp_path / "f.svg")
    for menu in ("a", "b"):
        (escape,) = drawn.edges_between(menu, "agent")
        assert escape[0] == ["0 agent"] and escape[1] != "black" and escape[2]  # grey, dashed
    assert drawn.edges_between("c", "agent") == [(["0"], "black", "")]  # its own option only
    assert sum(texts == ["0 agent"] for _, texts, _, _ in drawn.edges) == 2


def test_characters_dot_cares_about_are_shown_as_written(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path / "plan",
        r"""
        flows:
          f:
            start: node
            escape: {key: "0", say: ["<agent>"], goto: graph}
            nodes:
              node:
                type: menu
                prompt: p
                options:
                  - {key: "1", say: ['say \"hi\"'], goto: edge}
                  - {key: "2", say: ["{a} <b> & c"], goto: graph}
                  - {key: "3", say: ["&lt;x&gt; \\N"], goto: graph}
                  - {key: "4", say: ['\'], goto: graph}
              edge:
                type: branch
                cases:
                  - {when: {var: x, eq: 'a"b<c>'}, goto: graph}
                  - {when: {var: x, matches: '^\d+\\$'}, goto: graph}
                else: set-it
              set-it: {type: set, vars: {v: '"}\'}, next: graph}
              graph: {type: queue, queue: sales}
        """,
    )
    source = to_dot(plan, "f")
    assert "rankdir=TB" in source
    drawn = draw(plan, "f", tmp_path / "f.svg")
    assert drawn.nodes["node"][:2] == ["node", "[menu]"]
    assert drawn.nodes["graph"][:2] == ["graph", "[queue]"]
    assert drawn.edges_between("node", "edge")[0][0] == ['1 / "say \\"hi\\""']
    labels = [texts for texts, _, _ in drawn.edges_between("node", "graph")]
    assert ['2 / "{a} <b> & c"'] in labels
    assert ['3 / "&lt;x&gt; \\N"'] in labels
    assert ['4 / "\\"'] in labels
    assert ["0 <agent>"] in labels
    assert drawn.nodes["edge"][2:] == ['1: x = a"b<c>', "2: x ~ ^\\d+\\\\$"]
    assert drawn.nodes["set-it"][2] == 'v = "}\\'


def test_long_phrases_and_prompts_are_shortened(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path / "plan",
        """
        flows:
          f:
            start: m
            nodes:
              m:
                type: menu
                prompt: a-very-long-prompt-name-that-goes-on-and-on
                options:
                  - {key: "1", say: [a phrase far too long for an edge, second, third],
                     goto: q}
              q: {type: queue, queue: sales}
        """,
    )
    drawn = draw(plan, "f", tmp_path / "f.svg")
    assert drawn.nodes["m"][2] == "a-very-long-prompt-name-that-go…"
    assert drawn.edges_between("m", "q")[0][0] == ['1 / "a phrase far to…" / …']


def test_an_unknown_flow_names_the_flows_there_are(tmp_path: Path) -> None:
    plan = plan_of(tmp_path / "plan", SAMPLE)
    with pytest.raises(GraphError, match=r"^unknown flow 'x'; flows: other, support$"):
        to_dot(plan, "x")
    out = tmp_path / "x.svg"
    with pytest.raises(GraphError, match=r"^unknown flow 'x'; flows: other, support$"):
        write_svg(plan, "x", out)
    assert not out.exists()


def test_without_dot_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = plan_of(tmp_path / "plan", SAMPLE)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # a machine without Graphviz
    out = tmp_path / "support.svg"
    with pytest.raises(GraphError, match="install the Debian package graphviz"):
        write_svg(plan, "support", out)
    assert not out.exists()


def test_an_existing_picture_is_replaced_whole(tmp_path: Path) -> None:
    plan = plan_of(tmp_path / "plan", SAMPLE)
    out = tmp_path / "out" / "flow.svg"
    out.parent.mkdir()
    out.write_text("old")
    draw(plan, "other", out)
    assert "bye" in ET.parse(out).getroot().itertext()
    assert sorted(p.name for p in out.parent.iterdir()) == ["flow.svg"]
    with pytest.raises(GraphError, match="cannot write"):
        write_svg(plan, "other", tmp_path / "missing" / "flow.svg")


def test_every_shipped_flow_renders(tmp_path: Path) -> None:
    plan = load_plan(REPO / "dialplans")
    for name, flow in plan.flows.items():
        drawn = draw(plan, name, tmp_path / f"{name}.svg")
        assert set(flow.nodes) <= set(drawn.nodes)


def test_every_kind_of_node_says_what_it_does(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path / "plan",
        """
        flows:
          f:
            start: lang
            nodes:
              lang: {type: language, language: zh, next: vars}
              vars: {type: set, vars: {tier: gold, seen: "yes"}, next: hello}
              hello: {type: play, prompt: welcome, next: ask}
              ask: {type: survey, question: csat, kind: scale5, prompt: rate-us, next: sub}
              sub: {type: subflow, flow: verification_steps, next: jump}
              jump: {type: goto, goto: call_me}
              call_me: {type: callback, reason: busy, prompt: we-call-you, next: out}
              out: {type: transfer, to: "+15551234567"}
          verification_steps:
            start: done
            nodes:
              done: {type: return}
        """,
    )
    drawn = draw(plan, "f", tmp_path / "f.svg")
    assert drawn.nodes["lang"][1:] == ["[language]", "language zh"]
    assert drawn.nodes["vars"][1:] == ["[set]", "tier = gold (+1 more)"]
    assert drawn.nodes["hello"][1:] == ["[play]", "welcome"]
    assert drawn.nodes["ask"][1:] == ["[survey]", "question csat (scale5)"]
    assert drawn.nodes["sub"][1:] == ["[subflow]", "call flow verification_steps"]
    assert drawn.nodes["jump"][1:] == ["[goto]"]
    assert drawn.nodes["call_me"][1:] == ["[callback]", "reason busy", "we-call-you"]
    assert drawn.nodes["out"][1:] == ["[transfer]", "to +15551234567"]
    assert drawn.edges_between("lang", "vars")[0][0] == ["zh"]
    assert drawn.edges_between("sub", "jump")[0][0] == ["after verification_steps"]
    assert "(safe queue)" not in drawn.nodes
    assert draw(plan, "verification_steps", tmp_path / "v.svg").nodes["done"] == [
        "done",
        "[return]",
    ]


# Traffic of flow `support` of SAMPLE, as cti/reports/traffic.py gives it (a plain mapping).
TRAFFIC: dict[str, Any] = {
    "calls": 10,
    "edges": {
        ("hours", "closed"): 2,
        ("hours", "main_menu"): 8,
        ("main_menu", "billing"): 3,
        ("main_menu", "agent"): 2,  # the agent escape
        ("main_menu", "order_number"): 2,
        ("order_number", "find_order"): 2,
        ("find_order", "order_menu"): 1,
        ("find_order", "agent"): 1,  # two arrows: not found, lookup failed
        ("identify.done", "billing"): 4,  # a subflow's node: not on this picture
    },
    "visits": {
        "hours": 10,
        "main_menu": 8,
        "closed": 2,
        "billing": 3,
        "agent": 3,
        "order_number": 2,
        "find_order": 2,
        "order_menu": 1,
        "identify.done": 4,
    },
    "hangups": {"main_menu": 2, "order_menu": 1},
    "escapes": {"main_menu": 2},
    "period": "2025-06-02 to 2025-06-08 UTC",
}


def test_traffic_puts_the_calls_on_the_right_arrows_and_nodes(tmp_path: Path) -> None:
    plan = plan_of(tmp_path / "plan", SAMPLE)
    drawn = draw(plan, "support", tmp_path / "support.svg", TRAFFIC)
    assert "flow support (en): 10 calls, 2025-06-02 to 2025-06-08 UTC" in drawn.texts
    assert [t for t, _, _ in drawn.edges_between("(start)", "hours")] == [["10 calls"]]
    assert drawn.edges_between("hours", "main_menu")[0][0] == ["else", "8 calls"]
    assert drawn.edges_between("hours", "closed")[0][0] == ["case 1", "2 calls"]
    assert drawn.edges_between("hours", "vip")[0][0] == ["case 2", "0 calls"]
    assert drawn.edges_between("main_menu", "billing")[0][0] == ['2 / "billing"', "3 calls"]
    assert drawn.edges_between("main_menu", "tech")[0][0] == ['3 / "support"', "0 calls"]
    (escape,) = drawn.edges_between("main_menu", "agent")
    assert escape[0] == ["0 agent", "2 calls"] and escape[2]  # still the grey dashed escape
    # two arrows for one pass: the count on the first, which says so
    not_found, failed = drawn.edges_between("find_order", "agent")
    assert (not_found[0], failed[0]) == (["not found", "1 call (all 2 arrows)"], ["lookup failed"])
    assert failed[1] == RED
    assert drawn.edges_between("order_number", "find_order")[0][0] == ["valid", "2 calls"]
    # what the journey cannot measure keeps its label alone
    assert drawn.edges_between("main_menu", "main_menu")[0][0] == ["timeout/invalid: retry x3"]
    assert drawn.edges_between("main_menu", "(safe queue)")[0][0] == ["failure"]

    assert drawn.nodes["main_menu"] == [
        "main_menu",
        "[menu]",
        "main-menu +1",
        "8 calls",
        "hung up 2 · asked for agent 2",
    ]
    assert drawn.nodes["order_menu"][3:] == ["1 call", "hung up 1"]
    assert drawn.nodes["billing"][3:] == ["3 calls"]
    assert drawn.nodes["vip"][3:] == ["0 calls"]
    assert drawn.nodes["goodbye"] == ["goodbye", "[hangup]", "0 calls"]
    assert not any("identify" in text for text in drawn.texts)

    # the pen grows with the arrow's share of the flow's calls: 1 + 4 x share
    source = to_dot(plan, "support", TRAFFIC)
    widths = {
        line.split(" [")[0].strip(): line.split("penwidth=")[1].rstrip("]").split()[0]
        for line in source.splitlines()
        if "penwidth=" in line
    }
    assert widths['"(start)" -> hours'] == "5.0"
    assert widths["hours -> main_menu"] == "4.2"
    assert widths["main_menu -> billing"] == "2.2"
    assert widths["main_menu -> tech"] == "1.0"
    assert to_dot(plan, "support") == to_dot(plan, "support", None)
    assert "calls" not in to_dot(plan, "support") and "penwidth" not in to_dot(plan, "support")


def test_traffic_through_goto_and_subflow_nodes(tmp_path: Path) -> None:
    """The journey has no step at a goto node: a pass across one goes on both its arrows.
    A subflow node's arrow carries the calls that came back from the subflow."""
    plan = plan_of(
        tmp_path / "plan",
        """
        flows:
          f:
            start: m
            nodes:
              m:
                type: menu
                prompt: p
                options: [{key: "1", goto: jump}, {key: "2", goto: check}]
                failure: bye
              bye: {type: hangup}
              jump: {type: goto, goto: again}
              again: {type: goto, goto: q}
              check: {type: subflow, flow: verify, next: q}
              q: {type: queue, queue: sales}
          verify:
            start: ask
            nodes:
              ask: {type: collect, prompt: p, var: x, next: done, failure: done}
              done: {type: return}
        """,
    )
    traffic = {
        "calls": 6,
        "edges": {
            ("m", "q"): 4,
            ("m", "check"): 2,
            ("check", "verify.ask"): 2,
            ("verify.ask", "verify.done"): 2,
            ("verify.done", "q"): 2,
            ("check", "q"): 2,
        },
        "visits": {"m": 6, "check": 2, "verify.ask": 2, "verify.done": 2, "q": 6},
        "hangups": {},
        "escapes": {},
    }
    drawn = draw(plan, "f", tmp_path / "f.svg", traffic)
    assert drawn.edges_between("m", "jump")[0][0] == ["1", "4 calls"]
    assert drawn.edges_between("jump", "again")[0][0] == ["4 calls"]
    assert drawn.edges_between("again", "q")[0][0] == ["4 calls"]
    assert drawn.nodes["jump"] == ["jump", "[goto]", "4 calls"]
    assert drawn.edges_between("m", "bye")[0][0] == ["failure", "0 calls"]
    assert drawn.edges_between("m", "check")[0][0] == ["2", "2 calls"]
    assert drawn.edges_between("check", "q")[0][0] == ["after verify", "2 calls"]
    assert drawn.nodes["q"][-1] == "6 calls"


def test_ivr_graph_draws_the_calls_of_the_days_asked_for(tmp_path: Path) -> None:
    """`ivr graph FLOW --from --to` against a SQLite outcome log; --to is a whole day."""
    plan = tmp_path / "plan"
    plan_of(plan, SAMPLE)
    prompts = tmp_path / "prompts" / "en"
    prompts.mkdir(parents=True)
    texts = ("main-menu", "main-menu-2", "enter-order-number", "order-status", "closed-message")
    (prompts / "catalog.yaml").write_text("".join(f"{name}: Words.\n" for name in texts))
    url = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    env = {
        "PATH": str(Path(shutil.which("dot") or "/usr/bin/dot").parent),
        "IVR_DATABASE__URL": url,
        "IVR_PATHS__DIALPLANS": str(plan),
        "IVR_PATHS__PROMPTS": str(tmp_path / "prompts"),
    }

    def ivr(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [IVR, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )

    assert ivr("db", "upgrade").returncode == 0
    log = CallLog(session_factory(make_engine(url)))
    day = datetime(2025, 6, 2, tzinfo=UTC)
    menu = [("branch", "hours"), ("match", "main_menu")]
    for call_id, started, steps, fields in (
        ("a", day + timedelta(hours=8), [*menu, ("route", "billing")], {}),
        ("b", day + timedelta(hours=23, minutes=59), menu, {"exit_node": "main_menu"}),
        ("c", day + timedelta(days=1), [("branch", "hours"), ("hangup", "closed")], {}),
    ):
        part = IvrPart(call_id, {"flow": "support", "started_at": started, **fields})
        for kind, node in steps:
            part.note(kind, node, {})
        log.save(part, "abandoned_ivr" if fields else "contained", "hangup", True)

    done = ivr("graph", "support", "--from", "2025-06-02", "--to", "2025-06-02", "-o", "t.svg")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "wrote t.svg (2 calls, 2025-06-02 to 2025-06-02 UTC)"
    drawn = read_svg(tmp_path / "t.svg")
    assert drawn.edges_between("hours", "main_menu")[0][0] == ["else", "2 calls"]
    assert drawn.edges_between("hours", "closed")[0][0] == ["case 1", "0 calls"]  # c: next day
    assert drawn.edges_between("main_menu", "billing")[0][0] == ['2 / "billing"', "1 call"]
    assert drawn.nodes["main_menu"][3:] == ["2 calls", "hung up 1"]

    two_days = ivr("graph", "support", "--from", "2025-06-02", "--to", "2025-06-03")
    assert two_days.stdout.strip() == "wrote support.svg (3 calls, 2025-06-02 to 2025-06-03 UTC)"
    assert read_svg(tmp_path / "support.svg").nodes["closed"][2:] == ["closed-message", "1 call"]

    plain = ivr("graph", "support", "-o", "plain.svg")
    assert plain.stdout.strip() == "wrote plain.svg"
    assert read_svg(tmp_path / "plain.svg").nodes["main_menu"] == [
        "main_menu",
        "[menu]",
        "main-menu +1",
    ]

    for args, error in (
        (("--from", "2025-06-02"), "--from and --to go together"),
        (("--from", "2025-06-31", "--to", "2025-07-01"), "expected a day"),
        (("--from", "2025-06-03", "--to", "2025-06-02"), "--from is after --to"),
    ):
        refused = ivr("graph", "support", *args)
        assert (refused.returncode, error in refused.stderr) == (2, True), refused.stderr
