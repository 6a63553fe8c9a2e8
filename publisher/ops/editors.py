"""Editors' accounts and sessions: the one implementation the CLI and the console both call.

Passwords are hashed with argon2id (``argon2.PasswordHasher``'s defaults, the
RFC 9106 low-memory profile) and re-hashed at sign-in when those defaults
change. Only the hash is stored; the password is never logged or audited.
A session is a random 32-byte token in a cookie; the database keeps its
SHA-256 only, so a leaked copy of the table signs nobody in. Sessions end
after ``idle`` without use or ``absolute`` after sign-in, whichever comes
first (12 hours and 7 days by default: a working day, and a week on one
device). A change of password signs the account out everywhere.

The clock is always passed in (``now``), so tests move time instead of waiting.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from publisher.errors import PublisherError
from publisher.store import Store
from publisher.store.editors import AuditEntry, Editor, EditorSession
from publisher.store.values import InvalidValueError, check_name, normalise_email

ROLES = ("editor", "viewer")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # characters: a passphrase fits; 10 KB of "password" is an attack
CLI_ACTOR = "cli"
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is rewritten at most this often

_HASHER = PasswordHasher()
# Verified against when the address has no account, so a wrong address costs what a wrong password does.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
# What a password may not hold: control characters, lone surrogates, and invisible direction controls.
_PASSWORD_FORBIDDEN = re.compile(
    r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


class EditorError(PublisherError):
    """An editor account command that cannot be carried out (bad role, password, unknown account)."""


@dataclass(frozen=True)
class SessionPolicy:
    """How long a console session lasts: ``idle`` without a request, ``absolute`` at most."""

    idle: timedelta = timedelta(hours=12)
    absolute: timedelta = timedelta(days=7)


def editor_address(raw: str) -> str:
    """An editor's address, normalised like a subscriber's; an encoded word is refused outright."""
    if len(raw) > 320:
        raise InvalidValueError("the email address is over 320 characters")
    if "=?" in raw:
        raise InvalidValueError(
            "the email address may not contain '=?' (it reads as an encoded mail header)", hint="remove '=?'"
        )
    return normalise_email(raw)


def check_role(raw: str) -> str:
    role = raw.strip().lower()
    if role not in ROLES:
        raise EditorError(f"unknown role {raw[:40]!r}", hint=f"use one of: {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    """The password as given, or EditorError saying why it is refused (never echoing it)."""
    if len(password) < MIN_PASSWORD:
        raise EditorError(
            f"the password is shorter than {MIN_PASSWORD} characters", hint="use a longer passphrase"
        )
    if len(password) > MAX_PASSWORD:
        raise EditorError(f"the password is over {MAX_PASSWORD} characters", hint="use a shorter passphrase")
    if _PASSWORD_FORBIDDEN.search(password):
        raise EditorError(
            "the password may not contain control characters or invisible text-direction controls",
            hint="type the password with visible characters only",
        )
    return password


def add_editor(
    store: Store, email: str, password: str, *, role: str, name: str, actor: str, now: datetime
) -> Editor:
    """Create an account (EditorExistsError if the address has one)."""
    address, clean_name = editor_address(email), check_name(name)
    editor = Editor(
        id=0,
        email=address,
        name=clean_name,
        role=check_role(role),
        password_hash=_HASHER.hash(check_password(password)),
        created_at=now,
    )
    audit = AuditEntry(at=now, actor=actor, action="editor.add", target=address, detail=f"role {editor.role}")
    return store.editors.add(editor, audit)


def remove_editor(store: Store, email: str, *, actor: str, now: datetime) -> bool:
    """Delete an account and sign it out everywhere; False if there was none (nothing to do)."""
    address = editor_address(email)
    return store.editors.remove(
        address, AuditEntry(at=now, actor=actor, action="editor.remove", target=address)
    )


def list_editors(store: Store) -> list[Editor]:
    return store.editors.all()


def change_password(store: Store, email: str, password: str, *, actor: str, now: datetime) -> None:
    """Set a new password and sign the account out everywhere."""
    address = editor_address(email)
    digest = _HASHER.hash(check_password(password))
    audit = AuditEntry(at=now, actor=actor, action="editor.passwd", target=address)
    if not store.editors.set_password(address, digest, now, audit):
        raise EditorError(
            f"{address} is not an editor", hint=f"add it with `publisher editors add {address}`"
        )


def authenticate(
    store: Store, email: str, password: str, *, now: datetime, client: str = ""
) -> Editor | None:
    """The account if the address and password match, else None (and a ``login.failed`` audit row).

    An unusable address or password is simply a failure: the form says no
    more than "wrong address or password", whichever it was.
    """
    try:
        address = editor_address(email)
    except InvalidValueError:
        address = ""
    editor = store.editors.get(address) if address else None
    ok = _verify(editor.password_hash if editor else _DUMMY_HASH, password) and editor is not None
    if editor is None or not ok or editor.disabled_at is not None:
        detail = f"from {client}"[:200] if client else ""
        record_audit(
            store,
            actor=address or "(not an address)",
            action="login.failed",
            target=address,
            detail=detail,
            now=now,
        )
        return None
    if _HASHER.check_needs_rehash(editor.password_hash):
        store.editors.set_password(editor.email, _HASHER.hash(password), now, None)
    return editor


def _verify(digest: str, password: str) -> bool:
    if not password or len(password) > MAX_PASSWORD or _PASSWORD_FORBIDDEN.search(password):
        return False
    try:
        return _HASHER.verify(digest, password)
    except (VerificationError, InvalidHashError):
        return False


def session_id(token: str) -> str:
    """What the database keeps of a session token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def open_session(
    store: Store, editor: Editor, *, now: datetime, policy: SessionPolicy, client: str = ""
) -> str:
    """Sign ``editor`` in: a new random token (for the cookie), recorded as ``login``."""
    token = secrets.token_urlsafe(32)
    store.editors.open_session(session_id(token), editor.id, now, now + policy.absolute)
    detail = f"from {client}"[:200] if client else ""
    record_audit(store, actor=editor.email, action="login", target=editor.email, detail=detail, now=now)
    return token


def check_session(store: Store, token: str, *, now: datetime, policy: SessionPolicy) -> EditorSession | None:
    """The live session ``token`` names, or None (unknown, idle too long, past its end, account disabled)."""
    if not token or len(token) > 200:
        return None
    found = store.editors.session(session_id(token))
    if found is None:
        return None
    expired = now >= found.expires_at or now >= found.last_seen_at + policy.idle
    if expired or found.editor.disabled_at is not None:
        store.editors.close_session(found.id)
        return None
    if now - found.last_seen_at >= TOUCH_EVERY:
        store.editors.touch_session(found.id, now)
    return found


def close_session(store: Store, token: str, *, now: datetime) -> None:
    """Sign out: the session is forgotten, and ``logout`` recorded if it was live."""
    found = store.editors.session(session_id(token)) if token and len(token) <= 200 else None
    if found is None:
        return
    email = found.editor.email
    store.editors.close_session(found.id, AuditEntry(at=now, actor=email, action="logout", target=email))


def prune_sessions(store: Store, *, now: datetime, policy: SessionPolicy) -> int:
    """Delete every expired session (they are refused anyway; this keeps the table small)."""
    return store.editors.prune_sessions(now, now - policy.idle)


def record_audit(
    store: Store, *, actor: str, action: str, target: str = "", detail: str = "", now: datetime
) -> None:
    """One line in the audit log: who (an editor's address or 'cli'), what, on what, when."""
    store.editors.record(AuditEntry(at=now, actor=actor, action=action, target=target, detail=detail))


def audit_entries(store: Store, limit: int = 50) -> list[AuditEntry]:
    return store.editors.audit(limit)
