"""Loading and validating a large dial plan: 100 flows of 50 nodes, in 10 files.

The flows are generated into a temporary folder, each like a real inbound line:
caller look-up, business hours, a main menu and six self-service sections (menus of
3 to 5 options with keys and phrases, collects, look-ups, branches, sets, plays,
queues), every node reachable and every flow valid. Prompts are partly the line's
own (greeting, menus) and partly shared by the centre (goodbye, retries, entry).

We time ``check(folder, None)`` (parse with positions, schema, every semantic check)
against a plain ``yaml.safe_load`` of the same files. The prompt check re-reads the
catalog for every flow, so its cost grows with flows x catalog size; checking all
100 flows against it takes ~20 s here, so its ratio is measured on the first file
(10 flows, the whole catalog): ``check(file, prompts)`` against ``check(file, None)``.
All four are timed in alternating rounds; we take the medians."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from ivr.flows.validate import check, plan_files

FILES = 10
FLOWS = 100
NODES = 50
SECTIONS = 6  # of 7 nodes each, after 8 common ones
ROUNDS = 3
TOPICS = [
    ("orders", "order", ["order status", "track my order"]),
    ("billing", "account", ["billing", "my bill", "balance"]),
    ("payments", "account", ["payments", "make a payment"]),
    ("returns", "order", ["returns", "send it back", "refund"]),
    ("deliveries", "order", ["delivery", "where is my parcel"]),
    ("accounts", "account", ["my account", "account details"]),
]
HOURS = {
    "support": {
        "timezone": "America/New_York",
        "weekly": {day: ["08:00-20:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
        | {"sat": ["09:00-17:00"]},
        "holidays": {"country": "US"},
    }
}


def section(flow: str, k: int) -> dict[str, Any]:
    """Seven nodes of one self-service topic: menu, collect, lookup, branch, set, play, queue."""
    topic, find, phrases = TOPICS[k]
    s = f"{topic}_"
    own, shared = f"{flow}/{topic}", topic  # the line's own recordings; the centre's
    options = [
        {"key": "1", "say": [phrases[0]], "goto": f"{s}number"},
        {"key": "2", "say": [f"{topic} information", "information"], "goto": f"{s}info"},
        {"key": "3", "say": [f"{topic} team", "talk to someone"], "goto": f"{s}queue"},
    ]
    if k + 1 < SECTIONS:  # the next topic: every section is reachable from the first
        after, _, said = TOPICS[k + 1]
        options.append({"key": "4", "say": said[:1], "goto": f"{after}_menu"})
    if k % 2 and k + 1 < SECTIONS:
        options.append({"key": "9", "say": ["main menu", "go back"], "goto": "main_menu"})
    collect: dict[str, Any] = {
        "type": "collect",
        "prompt": f"{shared}-enter-number",
        "invalid_prompt": f"{shared}-number-invalid",
        "var": f"{topic}_number",
        "min_length": 8 if find == "account" else 6,
        "max_length": 8 if find == "account" else 6,
        "next": f"{s}lookup",
        "failure": "agent",
    }
    if find == "account":
        collect["checksum"] = "luhn"
    return {
        f"{s}menu": {
            "type": "menu",
            "prompt": f"{own}-menu",
            "noinput_prompts": [f"{shared}-menu-noinput"],
            "nomatch_prompts": [f"{shared}-menu-nomatch"],
            **({"speech": {"confirm_prompt": "did-you-say"}} if k % 3 == 0 else {}),
            "options": options,
            "failure": "agent",
        },
        f"{s}number": collect,
        f"{s}lookup": {
            "type": "lookup",
            "find": find,
            "value": f"${{{topic}_number}}",
            "store": topic,
            "found": f"{s}branch",
            "not_found": f"{s}info",
            "fallback": "agent",
        },
        f"{s}branch": {
            "type": "branch",
            "cases": [
                {"when": {"var": f"{topic}.status", "in": ["active", "open"]}, "goto": f"{s}set"},
                {"when": {"var": "customer.tier", "eq": "vip"}, "goto": f"{s}queue"},
            ],
            "else": f"{s}info",
        },
        f"{s}set": {
            "type": "set",
            "vars": {"topic": topic, "reference": f"${{{topic}_number}}"},
            "next": f"{s}info",
        },
        f"{s}info": {
            "type": "play",
            "prompt": [f"{own}-info", {"say": "digits", "value": f"${{{topic}_number}}"}],
            "next": "anything_else",
        },
        f"{s}queue": {"type": "queue", "queue": topic, "priority": k, "announce_position": True},
    }


def flow(name: str) -> dict[str, Any]:
    first = [t for t, _, _ in TOPICS[:4]]
    nodes: dict[str, Any] = {
        "identify": {
            "type": "lookup",
            "find": "customer",
            "by": "caller_id",
            "found": "open_check",
            "not_found": "open_check",
        },
        "open_check": {
            "type": "branch",
            "cases": [{"when": {"closed": "support"}, "goto": "closed"}],
            "else": "welcome",
        },
        "closed": {"type": "play", "prompt": "closed", "next": "goodbye"},
        "welcome": {"type": "play", "prompt": f"{name}/welcome", "next": "main_menu"},
        "main_menu": {
            "type": "menu",
            "prompt": f"{name}/main-menu",
            "noinput_prompts": ["main-menu-noinput-1", "main-menu-noinput-2"],
            "nomatch_prompts": ["main-menu-nomatch-1", "main-menu-nomatch-2"],
            "speech": {"reject": 0.4, "accept": 0.75, "dtmf_prompt": f"{name}/main-menu-keys"},
            "options": [
                {"key": str(i + 1), "say": TOPICS[i][2][:2], "goto": f"{topic}_menu"}
                for i, topic in enumerate(first)
            ],
            "failure": "agent",
        },
        "anything_else": {
            "type": "menu",
            "prompt": "anything-else",
            "options": [
                {"key": "1", "say": ["main menu", "yes"], "goto": "main_menu"},
                {"key": "9", "say": ["goodbye", "no", "that's all"], "goto": "goodbye"},
            ],
        },
        "agent": {"type": "queue", "queue": "main", "max_wait": 900, "overflow": "goodbye"},
        "goodbye": {"type": "hangup", "prompt": "goodbye"},
    }
    for k in range(SECTIONS):
        nodes |= section(name, k)
    assert len(nodes) == NODES, len(nodes)
    return {
        "start": "identify",
        "language": "en",
        "escape": {"key": "0", "say": ["agent", "representative"], "goto": "agent"},
        "nodes": nodes,
    }


def prompts_in(value: Any, key: str = "") -> set[str]:
    """Every prompt name in generated YAML data (the values of ``*prompt`` and ``*prompts``)."""
    if isinstance(value, dict):
        return {n for k, v in value.items() for n in prompts_in(v, k)}
    if isinstance(value, list):
        return {n for v in value for n in prompts_in(v, key)}
    return {value} if key.endswith(("prompt", "prompts")) and isinstance(value, str) else set()


def generate(folder: Path) -> set[str]:
    """Write the dial plans and the prompts catalog into `folder`; the prompt names used."""
    plans, used = folder / "dialplans", set()
    plans.mkdir()
    per_file = FLOWS // FILES
    for f in range(FILES):
        names = [f"line_{f * per_file + i:03d}" for i in range(per_file)]
        data: dict[str, Any] = {
            "entries": {f"55510{f * per_file + i:02d}": n for i, n in enumerate(names)},
            **({"hours": HOURS} if f == 0 else {}),
            "flows": {n: flow(n) for n in names},
        }
        used |= prompts_in(data)
        text = yaml.safe_dump(data, sort_keys=False, width=100, default_flow_style=None)
        (plans / f"plan_{f:02d}.yaml").write_text(text, encoding="utf-8")
    catalog = folder / "prompts" / "en" / "catalog.yaml"
    catalog.parent.mkdir(parents=True)
    words = {name: f"Words of {name.replace('/', ' ').replace('-', ' ')}." for name in used}
    catalog.write_text(yaml.safe_dump(dict(sorted(words.items())), width=100), encoding="utf-8")
    return used


def timed(results: list[Any], work) -> float:  # type: ignore[no-untyped-def]
    begin = time.perf_counter()
    results.append(work())
    return time.perf_counter() - begin


def main() -> tuple[dict[str, int], dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-plans-") as tmp:
        folder = Path(tmp)
        used = generate(folder)
        plans, prompts = folder / "dialplans", folder / "prompts"
        files = plan_files(plans)
        size = sum(f.stat().st_size for f in files)

        def safe_load() -> list[Any]:
            return [yaml.safe_load(f.read_text(encoding="utf-8")) for f in files]

        checks: list[Any] = []
        loaded: list[Any] = []
        times: dict[str, list[float]] = {k: [] for k in ("safe_load", "check", "file", "prompts")}
        for _ in range(ROUNDS):
            times["safe_load"].append(timed(loaded, safe_load))
            times["check"].append(timed(checks, lambda: check(plans, None)))
            times["file"].append(timed(checks, lambda: check(files[0], None)))
            times["prompts"].append(timed(checks, lambda: check(files[0], prompts)))
    for plan, problems in checks:
        assert plan is not None and not problems, "\n".join(map(str, problems[:10]))
    assert len(checks[0][0].flows) == FLOWS and len(checks[-1][0].flows) == FLOWS // FILES
    assert sum(len(f.nodes) for f in checks[0][0].flows.values()) == FLOWS * NODES
    assert sum(len(d["flows"]) for d in loaded[0]) == FLOWS
    counts = {"bytes": size, "prompts": len(used)}
    return counts, {k: statistics.median(v) for k, v in times.items()}


def run() -> None:
    counts, median = main()
    per_file = FLOWS // FILES
    lines = [
        ("yaml.safe_load, all files", f"{median['safe_load']:.2f} s"),
        ("check(folder, None)", f"{median['check']:.2f} s"),
        ("ratio check / safe_load", f"{median['check'] / median['safe_load']:.2f}"),
        (f"check(1 file of {per_file} flows, None)", f"{median['file']:.2f} s"),
        (f"same with prompts ({counts['prompts']} in catalog)", f"{median['prompts']:.2f} s"),
        ("ratio with prompts / without", f"{median['prompts'] / median['file']:.2f}"),
    ]
    print(
        f"plan_loading: {FLOWS} flows of {NODES} nodes in {FILES} files"
        f" ({counts['bytes'] / 1e6:.2f} MB), median of {ROUNDS} alternating rounds"
    )
    for label, value in lines:
        print(f"  {label:<38} {value}")
