"""The agent and ops web app (Flask). Every route needs a login except the login page.

Agents get the desktop: screen pops, their queue state, the disposition form.
Supervisors and ops get the floor: live queues, agents and calls, and the reports
(cti/web/reports.py). Live updates come from ``/events`` (cti/web/live.py); the actions
here answer JSON to the page's script.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, abort, g, jsonify, redirect, render_template, request, session, url_for
from flask_wtf import CSRFProtect, FlaskForm
from sqlalchemy.orm import Session, sessionmaker
from wtforms import (
    DateField,
    DateTimeLocalField,
    IntegerField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional, Regexp

from cti.store.dispositions import (
    CallNotFound,
    CustomerEdit,
    Disposition,
    linked_to_agent,
    save_customer,
    save_disposition,
    save_notes,
)
from cti.store.models import User
from cti.store.users import authenticate
from cti.web.campaigns import MAX_UPLOAD, campaigns_blueprint
from cti.web.reports import reports_blueprint
from ivr.config import CtiSettings, ReportSettings

AmiSend = Callable[[dict[str, str]], dict[str, Any]]
QUEUE_NAME = r"^[A-Za-z0-9_.-]{1,64}$"


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


class DispositionForm(FlaskForm):
    code = SelectField("Outcome", validators=[DataRequired()])
    notes = TextAreaField("Notes", validators=[Length(max=4000)])
    customer_id = IntegerField("Customer", validators=[Optional()])
    commitment = StringField("Commitment", validators=[Length(max=500)])
    commitment_due = DateField("Due", validators=[Optional()])
    callback_at = DateTimeLocalField("Call back at", validators=[Optional()])
    callback_number = StringField("Number", validators=[Length(max=32)])
    # The pop's pending callbacks; the store checks they are the customer's.
    resolved_callbacks = SelectMultipleField(
        "Resolved callbacks", coerce=int, validate_choice=False
    )


class NotesForm(FlaskForm):
    notes = TextAreaField("Notes", validators=[Length(max=4000)])


class CustomerForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=128)])
    account = StringField("Account", validators=[Length(max=32)])
    tier = StringField("Tier", validators=[Length(max=16)])
    language = StringField("Language", validators=[Length(max=8)])
    phone = StringField("Phone", validators=[Length(max=32)])


class PauseForm(FlaskForm):
    reason = StringField("Reason", validators=[Length(max=64), Regexp(r"^[\w .-]*$")])


def form_errors(form: FlaskForm) -> Any:
    """400 naming each field at fault."""
    text = "; ".join(f"{name}: {', '.join(errors)}" for name, errors in form.errors.items())
    return jsonify(error=text), 400


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.user is None:
            return redirect(url_for("login", next=request.path))
        return view(*args, **kwargs)

    return wrapped


def role_required(*roles: str) -> Callable[..., Any]:
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if g.user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorate


def create_app(
    sessions: sessionmaker[Session],
    secret_key: str,
    health: Callable[[], dict[str, Any]],
    cti: CtiSettings,
    reports: ReportSettings,
    ami_send: AmiSend | None = None,
) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Werkzeug refuses a larger request (413) before reading it: before the CSRF
        # check parses a form, before an upload fills the disk.
        MAX_CONTENT_LENGTH=MAX_UPLOAD,
    )
    CSRFProtect(app)

    @app.before_request
    def load_user() -> None:
        g.user = None
        if "user_id" in session:
            with sessions() as db:
                user = db.get(User, session["user_id"])
            g.user = user if user is not None and user.active else None

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        form = LoginForm()
        error = None
        if form.validate_on_submit():
            user = authenticate(sessions, form.username.data or "", form.password.data or "")
            if user is not None:
                session.clear()
                session["user_id"] = user.id
                target = request.args.get("next", "")
                return redirect(
                    target
                    if target.startswith("/") and not target.startswith("//")
                    else url_for("index")
                )
            error = "Unknown user or wrong password."
        return render_template("login.html", form=form, error=error), 401 if error else 200

    @app.post("/logout")
    @login_required
    def logout() -> Any:
        session.clear()
        return redirect(url_for("login"))

    @app.get("/")
    @login_required
    def index() -> Any:
        if g.user.role == "agent":
            return render_template("desktop.html", codes=cti.outcome_codes)
        return render_template("floor.html", health=health())

    app.register_blueprint(  # /reports: cti/web/reports.py
        reports_blueprint(sessions, reports, role_required("supervisor", "ops"))
    )
    app.register_blueprint(  # /campaigns: cti/web/campaigns.py; supervisors read only
        campaigns_blueprint(
            sessions, cti.region, role_required("supervisor", "ops"), role_required("ops")
        )
    )

    def agent_action(fields: dict[str, str]) -> Any:
        """Run an AMI action for the logged-in agent's phone; the page shows the result
        when Asterisk reports it on /events, not from this answer."""
        if not g.user.interface:
            return jsonify(error="no phone (interface) is set for this agent"), 409
        if ami_send is None:
            return jsonify(error="AMI is disabled"), 503
        try:
            ami_send({**fields, "Interface": g.user.interface})
        except Exception as exc:
            return jsonify(error=f"Asterisk: {exc}"), 502
        return jsonify(ok=True)

    def queue_name(queue: str) -> str:
        if not re.fullmatch(QUEUE_NAME, queue):
            abort(400)
        return queue

    @app.post("/agent/queues/<queue>/join")
    @role_required("agent")
    def join_queue(queue: str) -> Any:
        fields = {"Action": "QueueAdd", "Queue": queue_name(queue)}
        return agent_action(fields | {"MemberName": g.user.username})

    @app.post("/agent/queues/<queue>/leave")
    @role_required("agent")
    def leave_queue(queue: str) -> Any:
        return agent_action({"Action": "QueueRemove", "Queue": queue_name(queue)})

    @app.post("/agent/pause")
    @role_required("agent")
    def pause() -> Any:
        form = PauseForm()
        if not form.validate_on_submit():
            return form_errors(form)
        return agent_action({"Action": "QueuePause", "Paused": "true", "Reason": form.reason.data})

    @app.post("/agent/resume")
    @role_required("agent")
    def resume() -> Any:
        return agent_action({"Action": "QueuePause", "Paused": "false"})

    @app.post("/calls/<linkedid>/notes")
    @role_required("agent")
    def notes(linkedid: str) -> Any:
        form = NotesForm()
        if not form.validate_on_submit():
            return form_errors(form)
        try:
            save_notes(sessions, linkedid, g.user.username, form.notes.data or "")
        except CallNotFound:
            abort(404)
        return jsonify(ok=True)

    @app.post("/calls/<linkedid>/disposition")
    @role_required("agent")
    def disposition(linkedid: str) -> Any:
        form = DispositionForm()
        form.code.choices = list(cti.outcome_codes)
        if not form.validate_on_submit():
            return form_errors(form)
        given = Disposition(
            code=form.code.data or "",
            notes=form.notes.data or "",
            customer_id=form.customer_id.data,
            commitment=(form.commitment.data or "").strip(),
            commitment_due=form.commitment_due.data,
            callback_at=form.callback_at.data,
            callback_number=(form.callback_number.data or "").strip(),
            resolved_callbacks=tuple(form.resolved_callbacks.data or ()),
        )
        try:
            save_disposition(sessions, linkedid, g.user.username, given)
        except CallNotFound:
            abort(404)
        except ValueError as exc:
            return jsonify(error=str(exc)), 400
        return jsonify(ok=True)

    @app.post("/customers", defaults={"customer_id": None})
    @app.post("/customers/<int:customer_id>")
    @role_required("agent", "supervisor", "ops")
    def customer(customer_id: int | None) -> Any:
        if (
            customer_id is not None
            and g.user.role == "agent"
            and not linked_to_agent(sessions, customer_id, g.user.username)
        ):
            abort(404)  # agents see only their own calls' customers
        form = CustomerForm()
        if not form.validate_on_submit():
            return form_errors(form)
        edit = CustomerEdit(
            name=(form.name.data or "").strip(),
            account=(form.account.data or "").strip(),
            tier=(form.tier.data or "").strip(),
            language=(form.language.data or "").strip(),
            phone=(form.phone.data or "").strip(),
        )
        try:
            saved = save_customer(sessions, edit, cti.region, customer_id)
        except ValueError as exc:
            return jsonify(error=str(exc)), 400
        return jsonify(ok=True, id=saved)

    return app
