"""YAML with positions: every value and key keeps its ``line:column``.

Validation reports errors as ``file:line:column: message`` so that ops can jump
straight to the spot; PyYAML's plain loaders forget where things were, so we
compose the node tree and keep the marks beside the data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class SourceError(Exception):
    """A problem at one place in a source file."""

    def __init__(self, where: Position, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


@dataclass
class Source:
    """Data loaded from one YAML file, with the position of every value and key."""

    file: str
    data: Any
    values: dict[Path_, Position] = field(default_factory=dict)
    keys: dict[Path_, Position] = field(default_factory=dict)

    def at(self, path: Path_, key: bool = False) -> Position:
        """Where `path` is written; the nearest enclosing value when it is not (a missing key)."""
        marks = self.keys if key else self.values
        for cut in range(len(path), -1, -1):
            found = marks.get(path[:cut]) or (self.values.get(path[:cut]) if key else None)
            if found is not None:
                return found
        return Position(self.file, 1, 1)

    def error(self, path: Path_, message: str, key: bool = False) -> SourceError:
        return SourceError(self.at(path, key), message)


class PlanLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml when present
    """YAML 1.2 booleans: only true and false. ``say: [yes, no]`` stays words, as ops mean it."""


PlanLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
PlanLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _position(file: str, mark: yaml.Mark) -> Position:
    return Position(file, mark.line + 1, mark.column + 1)


def load_source(path: Path, display: str | None = None) -> Source:
    """Parse `path`; raises SourceError for invalid YAML or duplicate keys."""
    name = display or str(path)
    text = path.read_text(encoding="utf-8")
    loader = PlanLoader(text)
    try:
        node = loader.get_single_node()
        source = Source(name, None)
        if node is None:
            source.data = {}
            return source
        source.data = _walk(loader, node, (), source)
        return source
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _position(name, mark) if mark else Position(name, 1, 1)
        raise SourceError(where, f"not valid YAML: {exc.problem or exc.context}") from None
    finally:
        loader.dispose()


def _walk(loader: PlanLoader, node: yaml.Node, path: Path_, source: Source) -> Any:
    source.values[path] = _position(source.file, node.start_mark)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, date):
                key = key.isoformat()  # e.g. a special-hours date
            elif not isinstance(key, str | int | float | bool) or key is None:
                raise SourceError(_position(source.file, key_node.start_mark), "keys must be text")
            key = str(key)
            if key in result:
                raise SourceError(
                    _position(source.file, key_node.start_mark), f"duplicate key {key!r}"
                )
            source.keys[(*path, key)] = _position(source.file, key_node.start_mark)
            result[key] = _walk(loader, value_node, (*path, key), source)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_walk(loader, item, (*path, i), source) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
