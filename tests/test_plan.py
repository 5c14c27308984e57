from __future__ import annotations

from pathlib import Path

import pytest

from ivr.flows.plan import DialPlanError, load_plan

REPO = Path(__file__).resolve().parents[1]


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text)


def test_the_shipped_dial_plans_load() -> None:
    plan = load_plan(REPO / "dialplans")
    name, flow = plan.flow_for("5551000")
    assert name == "main" and flow.start in flow.nodes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "flows:\n  f:\n    start: nowhere\n    nodes: {}\n",
            "a.yaml: flows.f: Value error, start goes to unknown node 'nowhere'",
        ),
        (
            "flows:\n  f:\n    start: m\n    nodes:\n"
            "      m: {type: menu, prompt: p, options: {'12': m}}\n",
            "a.yaml: flows.f.nodes.m: Value error, option '12' is not a single key",
        ),
        (
            "flows:\n  f:\n    start: m\n    nodes:\n      m: {type: queue}\n",
            "a.yaml: flows.f.nodes.m.queue: Field required",
        ),
        (
            "flows:\n  f:\n    start: m\n    nodes:\n      m: {type: dance}\n",
            "a.yaml: flows.f.nodes.m: Input tag 'dance'",
        ),
        ("entries: {'1': ghost}\n", "entries.1: unknown flow 'ghost'"),
        ("flows: [\n", "a.yaml:2: not valid YAML"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, "a.yaml", text)
    with pytest.raises(DialPlanError) as caught:
        load_plan(tmp_path)
    assert message in str(caught.value)


def test_a_flow_defined_twice_names_both_files(tmp_path: Path) -> None:
    flow = "flows:\n  f:\n    start: q\n    nodes:\n      q: {type: queue, queue: main}\n"
    write(tmp_path, "a.yaml", flow)
    write(tmp_path, "b.yaml", flow)
    with pytest.raises(DialPlanError, match=r"b.yaml: flows.f: already defined in .*a.yaml"):
        load_plan(tmp_path)


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DialPlanError, match=r"no \*\.yaml dial plans"):
        load_plan(tmp_path)
