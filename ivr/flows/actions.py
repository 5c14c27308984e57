"""What the engine asks a transport to do, what the transport hands back, and the call state.

All plain frozen data: the state survives a round trip through JSON (Twilio keeps
it between webhook requests).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal


# Parts of a prompt.
@dataclass(frozen=True)
class Recording:
    """One of our recordings (prompts/<lang>/<name>.wav), or ``asterisk:<sound>``."""

    name: str


@dataclass(frozen=True)
class SayValue:
    """A value read out: kind is digits, number, money, date or alpha."""

    kind: str
    value: str
    currency: str = "USD"


Part = Recording | SayValue


# Actions.
@dataclass(frozen=True)
class Play:
    parts: tuple[Part, ...]
    language: str


@dataclass(frozen=True)
class Listen:
    """Play the prompt and wait for keys, or for one of `phrases` when speech is on.

    Answer with a `Result`. `barge_in`: a key or speech stops the prompt.
    """

    parts: tuple[Part, ...]
    language: str
    max_digits: int = 1
    terminator: str | None = None
    timeout: float = 5.0
    inter_digit_timeout: float = 3.0
    phrases: tuple[str, ...] = ()
    barge_in: bool = True


@dataclass(frozen=True)
class Record:
    """Play the prompt, then record the caller; answer with a `Result` whose value is the file."""

    parts: tuple[Part, ...]
    language: str
    max_seconds: int


@dataclass(frozen=True)
class Lookup:
    """Find a customer, order or account, or call a URL; answer with a `LookupResult`."""

    find: str
    value: str
    url: str | None = None
    timeout: float = 3.0


@dataclass(frozen=True)
class SaveCallback:
    number: str
    reason: str
    preferred: str | None
    eta_minutes: int


@dataclass(frozen=True)
class SaveAnswer:
    question: str
    kind: str
    value: str


@dataclass(frozen=True)
class Route:
    """Hand the call to the switch. kind: queue, transfer, or fallback (the safe queue)."""

    kind: str
    target: str = ""
    priority: int = 0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class Journey:
    """One step of the call's journey, kept with the call."""

    kind: str
    node: str
    data: dict[str, Any] = field(default_factory=dict)


Action = Play | Listen | Record | Lookup | SaveCallback | SaveAnswer | Route | Hangup | Journey
WAITS = (Listen, Record, Lookup)
ENDS = (Route, Hangup)


# What the transport hands back.
@dataclass(frozen=True)
class Result:
    """The caller's answer to a Listen or Record.

    status: input (keys or words heard), noinput, hangup, or error (the recogniser failed).
    """

    status: Literal["input", "noinput", "hangup", "error"]
    mode: Literal["dtmf", "speech"] = "dtmf"
    value: str = ""
    confidence: float = 1.0
    latency_ms: int | None = None  # speech: from the end of the caller's words to the result


@dataclass(frozen=True)
class LookupResult:
    status: Literal["found", "not_found", "error"]
    data: dict[str, Any] = field(default_factory=dict)


Given = Result | LookupResult


@dataclass(frozen=True)
class State:
    flow: str
    node: str
    language: str
    vars: dict[str, Any] = field(default_factory=dict)
    noinput: int = 0
    nomatch: int = 0
    speech_failures: int = 0
    confirming: int | None = None
    stack: tuple[tuple[str, str], ...] = ()
    asked: tuple[str, ...] = ()
    entered_at: float = 0.0
    done: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        stack = tuple(tuple(s) for s in data.get("stack", ()))
        return cls(**{**data, "stack": stack, "asked": tuple(data.get("asked", ()))})
