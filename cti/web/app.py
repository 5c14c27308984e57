"""The agent and ops web app (Flask). Every route needs a login except the login page."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, g, redirect, render_template, request, session, url_for
from flask_wtf import CSRFProtect, FlaskForm
from sqlalchemy.orm import Session, sessionmaker
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from cti.store.models import User
from cti.store.users import authenticate


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.user is None:
            return redirect(url_for("login", next=request.path))
        return view(*args, **kwargs)

    return wrapped


def create_app(
    sessions: sessionmaker[Session], secret_key: str, health: Callable[[], dict[str, Any]]
) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
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
        return render_template("index.html", health=health())

    return app
