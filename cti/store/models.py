"""SQLAlchemy models. Every change here comes with an Alembic migration."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A time, stored in UTC and read back aware, on every database. PostgreSQL keeps
    the zone itself; SQLite keeps a time's wall clock and drops its zone, so a time
    goes in converted to UTC and comes back marked as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        """Times compared with a column are converted as its own are; `started_at +
        timedelta` binds the timedelta as an interval, as DateTime does."""
        return self if isinstance(value, datetime) else self.impl.coerce_compared_value(op, value)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None and value.tzinfo else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and not value.tzinfo else value


class Base(DeclarativeBase):
    pass


class Call(Base):
    """One call in the outcome log, keyed by Asterisk's Linkedid: what the IVR and the AMI
    side each learn of it (cti/store/calls.py merges them), and the outcome and times
    that follow from those facts (cti/outcomes.py)."""

    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    linkedid: Mapped[str | None] = mapped_column(String(64), index=True)
    channel: Mapped[str | None] = mapped_column(String(128))
    direction: Mapped[str] = mapped_column(String(16), default="inbound")
    kind: Mapped[str] = mapped_column(String(16), default="inbound")  # inbound, callback, survey
    campaign: Mapped[str | None] = mapped_column(String(64), index=True)
    callback_id: Mapped[int | None] = mapped_column(Integer)  # the request a callback call serves
    # The call an outbound one follows (its contact's): a survey rates that call's agent.
    origin_call_id: Mapped[str | None] = mapped_column(String(64))
    entry: Mapped[str | None] = mapped_column(String(64))
    did: Mapped[str | None] = mapped_column(String(32))
    caller_number: Mapped[str | None] = mapped_column(String(32))
    flow: Mapped[str | None] = mapped_column(String(64))
    flow_version: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    ivr_ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ivr_end: Mapped[str | None] = mapped_column(
        String(16)
    )  # contained, routed, abandoned_ivr, failed
    route: Mapped[str | None] = mapped_column(String(128))
    exit_node: Mapped[str | None] = mapped_column(String(64))  # where the IVR part ended
    escape_node: Mapped[str | None] = mapped_column(String(64))  # where they asked for an agent
    callback_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    survey_completed: Mapped[bool] = mapped_column(Boolean, default=False)
    queue: Mapped[str | None] = mapped_column(String(64))
    queue_entered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    agent_done_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    abandoned: Mapped[bool] = mapped_column(Boolean, default=False)
    transferred: Mapped[bool] = mapped_column(Boolean, default=False)
    hold_seconds: Mapped[float | None] = mapped_column(Float)  # in all, as Hold/Unhold add up
    disposed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    outcome: Mapped[str | None] = mapped_column(String(32), index=True)  # cti/outcomes.py
    ivr_seconds: Mapped[float | None] = mapped_column(Float)
    wait_seconds: Mapped[float | None] = mapped_column(Float)
    talk_seconds: Mapped[float | None] = mapped_column(Float)  # hold not counted
    wrapup_seconds: Mapped[float | None] = mapped_column(Float)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    agent: Mapped[str | None] = mapped_column(String(64), index=True)  # username who answered
    disposition: Mapped[str | None] = mapped_column(String(32))
    notes: Mapped[str | None] = mapped_column(Text)

    journey: Mapped[list[JourneyEvent]] = relationship(
        back_populates="call", order_by="JourneyEvent.seq", cascade="all, delete-orphan"
    )


class JourneyEvent(Base):
    """One step of what the caller did in the IVR: a prompt, a choice, a route, a hangup."""

    __tablename__ = "journey_events"
    __table_args__ = (UniqueConstraint("call_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # No index of its own: the unique (call_id, seq) index serves look-ups by call.
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    node: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    call: Mapped[Call] = relationship(back_populates="journey")


class SurveyAnswer(Base):
    """One answer to a survey question (CSAT and NPS are computed from these)."""

    __tablename__ = "survey_answers"
    __table_args__ = (UniqueConstraint("call_id", "question"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    question: Mapped[str] = mapped_column(String(64))
    scale: Mapped[str] = mapped_column(String(16))  # the survey node's kind: scale5, nps, yesno...
    value: Mapped[str] = mapped_column(Text)
    answered_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class User(Base):
    """A person who logs in to the web app: an agent, a supervisor or ops staff."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    # The agent's queue member interface in Asterisk, e.g. PJSIP/1001: where pops go.
    interface: Mapped[str | None] = mapped_column(String(128), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


ROLES = ("agent", "supervisor", "ops")


class Customer(Base):
    """A customer record: what the IVR looks up and the screen pop shows."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    tier: Mapped[str] = mapped_column(String(16), default="standard")
    language: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    accounts: Mapped[list[Account]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="Account.id"
    )
    phones: Mapped[list[CustomerPhone]] = relationship(cascade="all, delete-orphan")
    orders: Mapped[list[Order]] = relationship(back_populates="customer")


class Account(Base):
    """One of a customer's accounts: what the IVR reads a balance from."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    balance: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0"))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="accounts")


class CustomerPhone(Base):
    """One of a customer's numbers, in E.164 form."""

    __tablename__ = "customer_phones"
    __table_args__ = (UniqueConstraint("customer_id", "e164"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    e164: Mapped[str] = mapped_column(String(20), index=True)
    label: Mapped[str | None] = mapped_column(String(32))


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[str] = mapped_column(String(32))
    eta: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    customer: Mapped[Customer | None] = relationship(back_populates="orders")


class AgentLeg(Base):
    """One agent's part of a call: answered, then their own notes and disposition. A
    transferred call has one per agent; the call row keeps the latest of them."""

    __tablename__ = "call_agents"
    __table_args__ = (UniqueConstraint("linkedid", "username"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    linkedid: Mapped[str] = mapped_column(String(64), index=True)
    username: Mapped[str] = mapped_column(String(64))
    answered_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    disposition: Mapped[str | None] = mapped_column(String(32))
    notes: Mapped[str | None] = mapped_column(Text)
    disposed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Commitment(Base):
    """A promise an agent made to a customer on a call, due by a date."""

    __tablename__ = "commitments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    linkedid: Mapped[str] = mapped_column(String(64), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    due: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open, kept, broken
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Callback(Base):
    """A call we owe a customer: asked for in the IVR or scheduled by an agent."""

    __tablename__ = "callbacks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    linkedid: Mapped[str | None] = mapped_column(String(64), index=True)  # the call that asked
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    number: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    reason: Mapped[str] = mapped_column(String(256), default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, done, cancelled
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Campaign(Base):
    """An outbound campaign: its settings (cti/campaigns/spec.py) and whether it runs."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # callback, survey
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # CampaignSpec, as JSON
    status: Mapped[str] = mapped_column(String(16), default="active")  # active, paused
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # When the next call may start, whichever dialer places it: calls_per_second.
    next_start_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Contact(Base):
    """Someone a campaign calls, until reached or out of attempts. Callback requests for
    one number and reason are one contact (the unique key); an imported list gives each
    number once (reason "")."""

    __tablename__ = "campaign_contacts"
    __table_args__ = (UniqueConstraint("campaign_id", "number", "reason"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(20))  # E.164
    name: Mapped[str | None] = mapped_column(String(128))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    timezone: Mapped[str | None] = mapped_column(String(64))  # else the number's
    reason: Mapped[str] = mapped_column(String(256), default="")
    source: Mapped[str] = mapped_column(String(16))  # import, ivr, abandon, survey_optin, agent
    origin_call_id: Mapped[str | None] = mapped_column(String(64))  # the call it follows
    callback_id: Mapped[int | None] = mapped_column(ForeignKey("callbacks.id"))
    # pending, dialing (claimed; a retry is pending again), then done (reached),
    # exhausted, expired (no window left), blocked (DNC) or cancelled (no longer owed)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_result: Mapped[str | None] = mapped_column(String(16))
    claimed_by: Mapped[str | None] = mapped_column(String(64))  # the dialer dialling it
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


Index("ix_campaign_contacts_due", Contact.campaign_id, Contact.status, Contact.next_attempt_at)


class Attempt(Base):
    """One call to a contact, or one the dialer held back (result "blocked")."""

    __tablename__ = "campaign_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("campaign_contacts.id", ondelete="CASCADE"), index=True
    )
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    call_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # the Linkedid
    dialer: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # the call's end
    # human, machine, busy, no_answer, failed (cti/campaigns/spec.py), or blocked
    result: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(256), default="")


class DoNotCall(Base):
    """A number not to call: for every campaign (campaign_id NULL) or for one."""

    __tablename__ = "do_not_call"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(20), index=True)  # E.164
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(16))  # import, survey, agent, ops
    note: Mapped[str] = mapped_column(String(256), default="")
    added_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class KpiInterval(Base):
    """The KPI sums (cti/reports/parts.py, same names; outcome_<name>: the calls of each
    outcome) of the ended calls that started in one 15-minute interval, `bucket` (its
    start in Unix time // 900), in one queue ('' for none). Kept by
    cti/reports/intervals.py."""

    __tablename__ = "kpi_intervals"

    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    queue: Mapped[str] = mapped_column(String(64), primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    ivr_calls: Mapped[int] = mapped_column(Integer, default=0)
    contained: Mapped[int] = mapped_column(Integer, default=0)
    abandoned_ivr: Mapped[int] = mapped_column(Integer, default=0)
    offered: Mapped[int] = mapped_column(Integer, default=0)
    short_abandons: Mapped[int] = mapped_column(Integer, default=0)
    answered: Mapped[int] = mapped_column(Integer, default=0)
    answered_in_time: Mapped[int] = mapped_column(Integer, default=0)
    abandoned_queue: Mapped[int] = mapped_column(Integer, default=0)
    callback_requested: Mapped[int] = mapped_column(Integer, default=0)
    transferred: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    waited: Mapped[int] = mapped_column(Integer, default=0)
    callbacks: Mapped[int] = mapped_column(Integer, default=0)
    callbacks_reached: Mapped[int] = mapped_column(Integer, default=0)
    fcr_calls: Mapped[int] = mapped_column(Integer, default=0)
    repeats: Mapped[int] = mapped_column(Integer, default=0)
    csat_answers: Mapped[int] = mapped_column(Integer, default=0)
    satisfied: Mapped[int] = mapped_column(Integer, default=0)
    nps_answers: Mapped[int] = mapped_column(Integer, default=0)
    promoters: Mapped[int] = mapped_column(Integer, default=0)
    detractors: Mapped[int] = mapped_column(Integer, default=0)
    callback_requests: Mapped[int] = mapped_column(Integer, default=0)
    outcome_contained: Mapped[int] = mapped_column(Integer, default=0)
    outcome_answered: Mapped[int] = mapped_column(Integer, default=0)
    outcome_abandoned_queue: Mapped[int] = mapped_column(Integer, default=0)
    outcome_abandoned_ivr: Mapped[int] = mapped_column(Integer, default=0)
    outcome_callback_requested: Mapped[int] = mapped_column(Integer, default=0)
    outcome_survey_completed: Mapped[int] = mapped_column(Integer, default=0)
    outcome_transferred: Mapped[int] = mapped_column(Integer, default=0)
    outcome_failed: Mapped[int] = mapped_column(Integer, default=0)
    wait: Mapped[float] = mapped_column(Float, default=0.0)
    talk: Mapped[float] = mapped_column(Float, default=0.0)
    hold: Mapped[float] = mapped_column(Float, default=0.0)
    wrapup: Mapped[float] = mapped_column(Float, default=0.0)
    callback_seconds: Mapped[float] = mapped_column(Float, default=0.0)


class NodeInterval(Base):
    """The IVR drop-off counts (cti/reports/traffic.py) of the ended calls of a flow
    that started in one 15-minute interval, in one queue ('' for none), at one node
    (a subflow's as SUBFLOW.NODE): calls that reached it, hung up at it, asked for an
    agent at it. Kept by cti/reports/intervals.py with kpi_intervals."""

    __tablename__ = "ivr_node_intervals"

    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    queue: Mapped[str] = mapped_column(String(64), primary_key=True)
    flow: Mapped[str] = mapped_column(String(64), primary_key=True)
    node: Mapped[str] = mapped_column(String(160), primary_key=True)
    visits: Mapped[int] = mapped_column(Integer, default=0)
    hangups: Mapped[int] = mapped_column(Integer, default=0)
    escapes: Mapped[int] = mapped_column(Integer, default=0)


class KpiMark(Base):
    """An interval whose calls or survey answers changed since its rollup, written by
    the database's own triggers (migration 0008). `customer_id`/`caller_number`: the
    customer a call had before a change of its customer, start or kind (the repeats of
    that customer's earlier calls move)."""

    __tablename__ = "kpi_marks"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    bucket: Mapped[int] = mapped_column(BigInteger, index=True)
    customer_id: Mapped[int | None] = mapped_column(Integer)
    caller_number: Mapped[str | None] = mapped_column(String(32))


class KpiRollup(Base):
    """The one row saying which thresholds the interval rollups were worked out with,
    and locked by the refresher while it works."""

    __tablename__ = "kpi_rollup"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    thresholds: Mapped[str] = mapped_column(String(64), default="")
