"""docs/dialplans.md keeps step with the dial-plan schema.

Every node type has a ``### <type>`` section that names each of its fields in backticks;
every other model of a plan file has its fields named somewhere in the doc; the defaults in
the fields tables are the code's; and the YAML examples are valid plan files or nodes.
Adding a field, a node type or a model without documenting it fails here.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo

from ivr.flows.hours import HolidayCalendar, Hours
from ivr.flows.nodes import (
    CallbackOffer,
    Case,
    Condition,
    Escape,
    MenuNode,
    MenuOption,
    Node,
    Say,
    Speech,
)
from ivr.flows.plan import Flow, PlanFile
from ivr.flows.source import PlanLoader

DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "dialplans.md"
DOC = DOC_PATH.read_text(encoding="utf-8")

NODE_MODELS: tuple[type[BaseModel], ...] = typing.get_args(Node.__origin__)
# The models besides nodes whose fields ops write; each must be documented somewhere.
OTHER_MODELS: tuple[type[BaseModel], ...] = (
    Flow,
    Speech,
    Escape,
    MenuOption,
    Condition,
    Case,
    CallbackOffer,
    Say,
    Hours,
    HolidayCalendar,
)
# Where the fields table (field | default | meaning) of each non-node model is.
TABLES: dict[type[BaseModel], str] = {
    Flow: "## Flows",
    Speech: "## Speech settings",
    Escape: "## The agent escape",
    MenuOption: "#### Options",
    CallbackOffer: "#### Callback offer",
    Say: "### Read-out values",
    Hours: "## Business hours",
}


def node_type(model: type[BaseModel]) -> str:
    return typing.get_args(model.model_fields["type"].annotation)[0]


def yaml_names(model: type[BaseModel]) -> list[str]:
    """The keys ops write for a model's fields: the alias where there is one."""
    return [field.alias or name for name, field in model.model_fields.items()]


def headings() -> list[tuple[int, int, str]]:
    """(line index, level, heading line) of each Markdown heading, outside code blocks."""
    found, fenced = [], False
    for i, line in enumerate(DOC.splitlines()):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"(#{1,6}) \S", line)):
            found.append((i, len(match[1]), line.rstrip()))
    return found


def section(heading: str, own: bool = False) -> str:
    """The text under `heading` up to the next heading of its level or above.

    With `own`, only up to the next heading of any level (a subsection's text excluded).
    """
    lines = DOC.splitlines()
    marks = headings()
    matching = [(i, level) for i, level, text in marks if text == heading]
    assert len(matching) == 1, f"docs/dialplans.md needs exactly one heading {heading!r}"
    start, level = matching[0]
    end = next(
        (i for i, lvl, _ in marks if i > start and (own or lvl <= level)),
        len(lines),
    )
    return "\n".join(lines[start + 1 : end])


def table_rows(text: str) -> dict[str, list[str]]:
    """Rows of the tables in `text` whose first cell is a backticked name: name -> cells."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = re.match(r"\|\s*`([^`]+)`\s*\|", line)
        if match:
            rows.setdefault(match[1], [c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def missing_names(text: str, names: list[str]) -> list[str]:
    return [name for name in names if f"`{name}`" not in text]


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation mentions (through Annotated, list, dict, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in typing.get_args(annotation):
        found += models_in(arg)
    return found


def reachable_models() -> set[type[BaseModel]]:
    """Every model a plan file can hold, found from PlanFile's fields down."""
    seen: set[type[BaseModel]] = set()
    todo: list[type[BaseModel]] = [PlanFile]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for field in model.model_fields.values():
            todo += models_in(field.annotation)
    return seen


def expected_default(field: FieldInfo) -> tuple[str, list[str]] | None:
    """What the default cell must say: ("required", []), ("any of", texts), or None."""
    if field.is_required():
        return "required", []
    default = field.get_default(call_default_factory=True)
    if isinstance(default, bool):
        return "any of", [f"`{str(default).lower()}`"]
    if isinstance(default, int | float):
        return "any of", [f"`{default}`"]
    if isinstance(default, str):
        return "any of", [f"`{default}`", f'`"{default}"`']
    if isinstance(default, list) and default:
        return "all of", [str(item) for item in default]
    return None  # None or an empty collection: any wording but "required"


def check_table(model: type[BaseModel], text: str, where: str) -> list[str]:
    rows = table_rows(text)
    problems = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        row = rows.get(key)
        if row is None or len(row) < 3:
            problems.append(f"{where}: no fields-table row for `{key}`")
            continue
        cell = row[1]
        wanted = expected_default(field)
        if wanted is None:
            if cell == "required":
                problems.append(f"{where}: `{key}` is optional but documented as required")
        elif wanted[0] == "required":
            if cell != "required":
                problems.append(f"{where}: `{key}` is required, documented default {cell!r}")
        elif wanted[0] == "any of":
            if not any(text_ in cell for text_ in wanted[1]):
                problems.append(f"{where}: `{key}` defaults to {wanted[1][0]}, not {cell!r}")
        elif not all(item in cell for item in wanted[1]):
            problems.append(f"{where}: `{key}` defaults to {wanted[1]}, not {cell!r}")
    return problems


def test_the_node_union_is_read() -> None:
    assert MenuNode in NODE_MODELS
    assert len(NODE_MODELS) == len({node_type(m) for m in NODE_MODELS}) >= 15


@pytest.mark.parametrize("model", NODE_MODELS, ids=node_type)
def test_every_node_type_has_a_section_naming_its_fields(model: type[BaseModel]) -> None:
    missing = missing_names(section(f"### {node_type(model)}"), yaml_names(model))
    assert not missing, f"### {node_type(model)} in docs/dialplans.md does not mention {missing}"


@pytest.mark.parametrize("model", NODE_MODELS, ids=node_type)
def test_node_tables_show_the_code_defaults(model: type[BaseModel]) -> None:
    heading = f"### {node_type(model)}"
    problems = check_table(model, section(heading, own=True), heading)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("model", OTHER_MODELS, ids=lambda m: m.__name__)
def test_other_models_fields_are_documented(model: type[BaseModel]) -> None:
    missing = missing_names(DOC, yaml_names(model))
    assert not missing, f"{model.__name__} fields missing from docs/dialplans.md: {missing}"


@pytest.mark.parametrize("model", list(TABLES), ids=lambda m: m.__name__)
def test_other_tables_show_the_code_defaults(model: type[BaseModel]) -> None:
    heading = TABLES[model]
    problems = check_table(model, section(heading, own=True), heading)
    assert not problems, "\n".join(problems)


def test_every_model_of_a_plan_file_is_documented() -> None:
    """A new nested model (not listed above) still needs its fields in the doc."""
    models = reachable_models() - set(NODE_MODELS)
    assert set(OTHER_MODELS) <= models
    problems = {m.__name__: missing_names(DOC, yaml_names(m)) for m in models}
    undocumented = {name: names for name, names in problems.items() if names}
    assert not undocumented, f"fields missing from docs/dialplans.md: {undocumented}"


def test_the_node_types_are_all_in_the_overview() -> None:
    overview = section("## Node types", own=True)
    missing = [t for t in map(node_type, NODE_MODELS) if f"| [{t}](#{t}) |" not in overview]
    assert not missing, f"## Node types overview table lacks {missing}"


def yaml_examples() -> list[tuple[int, Any]]:
    """(line number, data) of each ```yaml block of the doc."""
    found = []
    for match in re.finditer(r"^```yaml\n(.*?)^```", DOC, re.M | re.S):
        line = DOC.count("\n", 0, match.start()) + 1
        found.append((line, yaml.load(match[1], Loader=PlanLoader)))
    return found


NODE = TypeAdapter(Node)
PLAN_KEYS = set(PlanFile.model_fields)


def test_the_yaml_examples_are_valid() -> None:
    """Plan files validate as plan files; blocks of named nodes validate as nodes."""
    checked = 0
    for line, data in yaml_examples():
        if not isinstance(data, dict):
            continue
        if set(data) <= PLAN_KEYS:
            try:
                PlanFile.model_validate(data)
            except ValueError as exc:
                pytest.fail(f"docs/dialplans.md:{line}: {exc}")
            checked += 1
        elif all(isinstance(v, dict) and "type" in v for v in data.values()):
            for name, node in data.items():
                try:
                    NODE.validate_python(node)
                except ValueError as exc:
                    pytest.fail(f"docs/dialplans.md:{line}: node {name}: {exc}")
            checked += 1
    assert checked >= 15
