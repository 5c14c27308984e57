"""`ivr.flows.graph`: flows drawn by the real Graphviz ``dot``, read back as SVG."""

from __future__ import annotations

import textwrap
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from ivr.flows.graph import GraphError, to_dot, write_svg
from ivr.flows.plan import DialPlan
from ivr.flows.validate import load_plan

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


def draw(plan: DialPlan, flow: str, out: Path) -> Drawn:
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # graphviz's DotSyntaxWarning would be a quoting bug
        write_svg(plan, flow, out)
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
