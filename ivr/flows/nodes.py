"""Node types of the dial-plan language, and the edges each one leads along.

Every node is a strict pydantic model (unknown fields are errors). `edges()` lists
where a node can go next; validation, the engine's reachability checks and the
graph all read it, so a new node type declares its edges in one place.
docs/dialplans.md is the reference for ops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

NAME = r"^[A-Za-z_][A-Za-z0-9_-]*$"
PROMPT = r"^(asterisk:)?[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$"
VAR = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
KEYS = "0123456789*#"  # every key a caller can press

Name = Annotated[str, Field(pattern=NAME)]
PromptName = Annotated[str, Field(pattern=PROMPT)]
VarName = Annotated[str, Field(pattern=VAR)]
Key = Annotated[str, Field(pattern=r"^[0-9*#]$")]


def normal_phrase(text: str) -> str:
    """How phrases compare: case, punctuation and spacing do not count."""
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Say(Strict):
    """A value read out: ``{say: digits, value: "${order.number}"}``."""

    say: Literal["digits", "number", "money", "date", "alpha"]
    value: str
    currency: str = "USD"


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str | dict) else value


Prompt = Annotated[list[PromptName | Say], BeforeValidator(_as_list), Field(min_length=1)]


@dataclass(frozen=True)
class Edge:
    """One way out of a node: `kind` styles it in the graph, `path` locates it in the YAML."""

    kind: str
    target: str
    label: str
    path: tuple[str | int, ...]


class MenuOption(Strict):
    key: Key | None = None
    say: list[str] = Field(default_factory=list, description="Phrases and synonyms for speech.")
    prompt: PromptName | None = Field(None, description="Names the option when confirming.")
    goto: Name

    @model_validator(mode="after")
    def _reachable(self) -> MenuOption:
        if self.key is None and not self.say:
            raise ValueError("an option needs a key, phrases (say), or both")
        return self

    def label(self) -> str:
        return " / ".join(([self.key] if self.key else []) + [f'"{p}"' for p in self.say[:2]])


class Speech(Strict):
    reject: float = Field(0.4, ge=0, le=1, description="Below this confidence: no match.")
    accept: float = Field(0.75, ge=0, le=1, description="At or above: taken without asking.")
    confirm_prompt: Prompt | None = Field(None, description="Asked between reject and accept.")
    dtmf_after: int = Field(2, ge=1, description="Speech failures before the menu is keys only.")
    dtmf_prompt: Prompt | None = Field(None, description="The keys-only prompt.")

    @model_validator(mode="after")
    def _bands(self) -> Speech:
        if self.reject > self.accept:
            raise ValueError(f"reject ({self.reject}) is above accept ({self.accept})")
        return self


class Escape(Strict):
    """The way to a human from every menu of a flow."""

    key: Key | None = "0"
    say: list[str] = Field(default_factory=lambda: ["agent", "representative", "operator"])
    goto: Name

    @model_validator(mode="after")
    def _reachable(self) -> Escape:
        if self.key is None and not self.say:
            raise ValueError("the escape needs a key, phrases (say), or both")
        return self


class MenuNode(Strict):
    type: Literal["menu"]
    prompt: Prompt
    options: list[MenuOption] = Field(min_length=1)
    timeout: float = Field(5.0, gt=0)
    max_tries: int = Field(3, ge=1)
    noinput_prompts: list[Prompt] = Field(default_factory=list)
    nomatch_prompts: list[Prompt] = Field(default_factory=list)
    failure: Name | None = None
    barge_in: bool = True
    speech: Speech | None = None
    escape: bool = True

    def edges(self) -> list[Edge]:
        found = [
            Edge("option", o.goto, o.label(), ("options", i, "goto"))
            for i, o in enumerate(self.options)
        ]
        if self.failure:
            found.append(Edge("failure", self.failure, "failure", ("failure",)))
        return found


class PlayNode(Strict):
    type: Literal["play"]
    prompt: Prompt
    next: Name

    def edges(self) -> list[Edge]:
        return [Edge("next", self.next, "", ("next",))]


class CollectNode(Strict):
    type: Literal["collect"]
    prompt: Prompt
    var: VarName
    min_length: int = Field(1, ge=1)
    max_length: int = Field(16, ge=1, le=64)
    terminator: Key | None = "#"
    timeout: float = Field(6.0, gt=0, description="Seconds for the first key.")
    inter_digit_timeout: float = Field(3.0, gt=0)
    pattern: str | None = Field(None, description="Regular expression the whole entry matches.")
    checksum: Literal["luhn"] | None = None
    max_tries: int = Field(3, ge=1)
    invalid_prompt: Prompt | None = None
    noinput_prompt: Prompt | None = None
    next: Name
    failure: Name | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CollectNode:
        if self.min_length > self.max_length:
            raise ValueError(f"min_length {self.min_length} is above max_length {self.max_length}")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
        return self

    def edges(self) -> list[Edge]:
        found = [Edge("next", self.next, "valid", ("next",))]
        if self.failure:
            found.append(Edge("failure", self.failure, "failure", ("failure",)))
        return found


class LookupNode(Strict):
    type: Literal["lookup"]
    find: Literal["customer", "order", "account", "http"]
    by: Literal["caller_id", "value"] = "value"
    value: str | None = Field(None, description="Template of what to look up, e.g. ${order_no}.")
    url: str | None = Field(None, description="http only: the URL template.")
    timeout: float = Field(3.0, gt=0, le=10)
    store: VarName | None = Field(None, description="Variable for the result; default: find.")
    found: Name
    not_found: Name
    fallback: Name | None = Field(None, description="When the look-up fails; default not_found.")

    @model_validator(mode="after")
    def _consistent(self) -> LookupNode:
        if self.find == "http":
            if not self.url or not self.url.startswith(("http://", "https://")):
                raise ValueError("find: http needs a url starting with http:// or https://")
        elif self.url is not None:
            raise ValueError("url is only for find: http")
        elif self.by == "value" and not self.value:
            raise ValueError("by: value needs a value, e.g. value: ${order_number}")
        return self

    @property
    def variable(self) -> str:
        return self.store or self.find

    def edges(self) -> list[Edge]:
        found = [
            Edge("found", self.found, "found", ("found",)),
            Edge("not_found", self.not_found, "not found", ("not_found",)),
        ]
        if self.fallback:
            found.append(Edge("failure", self.fallback, "lookup failed", ("fallback",)))
        return found


class Condition(Strict):
    """One test. Exactly one of: a variable test, open/closed hours, all/any of others."""

    var: VarName | None = None
    eq: Any = None
    ne: Any = None
    in_: list[Any] | None = Field(None, alias="in")
    matches: str | None = None
    exists: bool | None = None
    open: Name | None = None
    closed: Name | None = None
    all: list[Condition] | None = None
    any: list[Condition] | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        tests = [
            n for n in ("eq", "ne", "in_", "matches", "exists") if getattr(self, n) is not None
        ]
        groups = [n for n in ("open", "closed", "all", "any") if getattr(self, n) is not None]
        if self.var is not None:
            if len(tests) != 1 or groups:
                raise ValueError("var needs exactly one of eq, ne, in, matches, exists")
        elif tests or len(groups) != 1:
            raise ValueError("a condition is var with a test, open, closed, all or any")
        if self.matches is not None:
            try:
                re.compile(self.matches)
            except re.error as exc:
                raise ValueError(f"matches is not a valid regular expression: {exc}") from None
        return self

    def hours(self) -> list[str]:
        """Every business-hours calendar this condition names."""
        found = [n for n in (self.open, self.closed) if n]
        for sub in (self.all or []) + (self.any or []):
            found += sub.hours()
        return found


class Case(Strict):
    when: Condition
    goto: Name


class BranchNode(Strict):
    type: Literal["branch"]
    cases: list[Case] = Field(min_length=1)
    else_: Name = Field(alias="else")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def edges(self) -> list[Edge]:
        found = [
            Edge("case", c.goto, f"case {i + 1}", ("cases", i, "goto"))
            for i, c in enumerate(self.cases)
        ]
        return [*found, Edge("else", self.else_, "else", ("else",))]


class SetNode(Strict):
    type: Literal["set"]
    vars: dict[VarName, str] = Field(min_length=1)
    next: Name

    def edges(self) -> list[Edge]:
        return [Edge("next", self.next, "", ("next",))]


class LanguageNode(Strict):
    type: Literal["language"]
    language: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]
    next: Name

    def edges(self) -> list[Edge]:
        return [Edge("next", self.next, self.language, ("next",))]


class CallbackOffer(Strict):
    key: Key = "1"
    after: int = Field(60, ge=0, description="Seconds in queue before the offer.")
    prompt: Prompt
    goto: Name


class QueueNode(Strict):
    type: Literal["queue"]
    queue: Annotated[str, Field(pattern=NAME)]
    priority: int = Field(0, ge=0, le=10)
    announce_position: bool = False
    announce_wait: bool = False
    max_wait: int | None = Field(None, gt=0, description="Seconds before overflow.")
    overflow: Name | None = None
    callback: CallbackOffer | None = None

    @model_validator(mode="after")
    def _overflow(self) -> QueueNode:
        if (self.max_wait is None) != (self.overflow is None):
            raise ValueError("max_wait and overflow go together")
        return self

    def edges(self) -> list[Edge]:
        found = []
        if self.overflow:
            found.append(Edge("overflow", self.overflow, f"after {self.max_wait}s", ("overflow",)))
        if self.callback:
            found.append(
                Edge(
                    "callback",
                    self.callback.goto,
                    f"{self.callback.key} callback",
                    ("callback", "goto"),
                )
            )
        return found


class TransferNode(Strict):
    type: Literal["transfer"]
    to: Annotated[
        str,
        Field(
            pattern=r"^(\+[1-9][0-9]{6,14}|[0-9]{2,8})$",
            description="An extension (2-8 digits) or an E.164 number.",
        ),
    ]

    def edges(self) -> list[Edge]:
        return []


class CallbackNode(Strict):
    type: Literal["callback"]
    number: str = "${caller.number}"
    reason: str
    preferred: str | None = Field(None, description="Template of the preferred time.")
    eta_minutes: int = Field(60, ge=1, description="When we tell the caller to expect the call.")
    prompt: Prompt
    next: Name

    def edges(self) -> list[Edge]:
        return [Edge("next", self.next, "", ("next",))]


class SurveyNode(Strict):
    type: Literal["survey"]
    question: Name
    kind: Literal["scale5", "nps", "yesno", "recording"]
    prompt: Prompt
    max_tries: int = Field(2, ge=1)
    invalid_prompt: Prompt | None = None
    max_seconds: int = Field(60, ge=1, le=600, description="recording only")
    next: Name

    def edges(self) -> list[Edge]:
        return [Edge("next", self.next, "", ("next",))]


class RequestNode(Strict):
    """A request the caller makes, for the campaigns' sweeper to act on after the call:
    noted in the journey as a step of the node's type, then its prompt, then `next`."""

    prompt: Prompt | None = None
    next: Name

    def edges(self) -> list[Edge]:
        return [Edge("next", self.next, "", ("next",))]


class SurveyOptInNode(RequestNode):
    """The caller agrees to a survey call after this call (the sweeper adds them to the
    survey campaign once an agent answered and the call ended)."""

    type: Literal["survey_opt_in"]


class DoNotCallNode(RequestNode):
    """The caller asks us never to call them again (the sweeper puts their number on
    the do-not-call list and blocks their pending campaign contacts)."""

    type: Literal["do_not_call"]


class SubflowNode(Strict):
    type: Literal["subflow"]
    flow: Name
    next: Name

    def edges(self) -> list[Edge]:
        return [Edge("next", self.next, f"after {self.flow}", ("next",))]


class ReturnNode(Strict):
    type: Literal["return"]

    def edges(self) -> list[Edge]:
        return []


class GotoNode(Strict):
    type: Literal["goto"]
    goto: Name

    def edges(self) -> list[Edge]:
        return [Edge("next", self.goto, "", ("goto",))]


class HangupNode(Strict):
    type: Literal["hangup"]
    prompt: Prompt | None = None

    def edges(self) -> list[Edge]:
        return []


Node = Annotated[
    MenuNode
    | PlayNode
    | CollectNode
    | LookupNode
    | BranchNode
    | SetNode
    | LanguageNode
    | QueueNode
    | TransferNode
    | CallbackNode
    | SurveyNode
    | SurveyOptInNode
    | DoNotCallNode
    | SubflowNode
    | ReturnNode
    | GotoNode
    | HangupNode,
    Field(discriminator="type"),
]

# Nodes that wait for the caller; a loop through none of them never ends.
WAITING = (MenuNode, CollectNode, SurveyNode)
# Nodes where a flow ends (or leaves our hands).
ENDING = (QueueNode, TransferNode, HangupNode, ReturnNode)


def prompts_of(node: BaseModel) -> list[tuple[tuple[str | int, ...], str]]:
    """Every recorded prompt a node names, with its path inside the node."""
    found: list[tuple[tuple[str | int, ...], str]] = []

    def walk(value: Any, path: tuple[str | int, ...]) -> None:
        if isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name), (*path, name))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, (*path, i))
        elif isinstance(value, str) and _names_a_prompt(path):
            found.append((path, value))

    walk(node, ())
    return found


def _names_a_prompt(path: tuple[str | int, ...]) -> bool:
    """``...prompt`` (one name), ``...prompt[i]`` or ``...prompts[i][j]`` (parts of a prompt)."""
    if path[-1] == "prompt":
        return True
    tail = [p for p in path[-3:] if isinstance(p, str)]
    return isinstance(path[-1], int) and bool(tail) and tail[-1].endswith(("prompt", "prompts"))
