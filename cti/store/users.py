"""Web users: creation and password checks (werkzeug's salted hashes)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.security import check_password_hash, generate_password_hash

from cti.store.models import ROLES, User

MIN_PASSWORD = 10


class UserError(ValueError):
    pass


def add_user(
    sessions: sessionmaker[Session],
    username: str,
    password: str,
    role: str,
    interface: str | None = None,
) -> None:
    """`interface`: an agent's phone as a queue member in Asterisk (e.g. PJSIP/1001),
    where their screen pops go."""
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password must have at least {MIN_PASSWORD} characters")
    if user_exists(sessions, username):
        raise UserError(f"user {username!r} exists already")
    with sessions.begin() as db:
        if interface and db.scalar(select(User.id).where(User.interface == interface)):
            raise UserError(f"interface {interface!r} belongs to another user")
        db.add(
            User(
                username=username,
                password_hash=generate_password_hash(password),
                role=role,
                interface=interface or None,
            )
        )


def user_exists(sessions: sessionmaker[Session], username: str) -> bool:
    with sessions() as db:
        return db.scalar(select(User.id).where(User.username == username)) is not None


def authenticate(sessions: sessionmaker[Session], username: str, password: str) -> User | None:
    with sessions() as db:
        user = db.scalar(select(User).where(User.username == username, User.active.is_(True)))
    if user is not None and check_password_hash(user.password_hash, password):
        return user
    return None
