"""The console's accounts, sessions and audit log: the only SQL about editors.

Values arrive checked and hashed (``ops.editors`` normalises addresses and
names and hashes passwords with argon2); this module only reads and writes
rows. Every change to an account is written in the same transaction as its
audit-log row, so the log never misses a change nor records one that did not
happen. Sessions are keyed by the SHA-256 of the cookie's token, which the
caller computes: the token itself never reaches the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from publisher.errors import PublisherError
from publisher.store.database import Database
from publisher.store.schema import audit_log as log
from publisher.store.schema import editor_sessions as ses
from publisher.store.schema import editors as ed


class EditorExistsError(PublisherError):
    """``editors add`` for an address that already has an account."""


@dataclass(frozen=True)
class Editor:
    id: int
    email: str
    name: str
    role: str
    password_hash: str
    created_at: datetime
    disabled_at: datetime | None = None


@dataclass(frozen=True)
class EditorSession:
    """A signed-in browser: ``id`` is the token's hash, ``editor`` whose it is."""

    id: str
    editor: Editor
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str  # an editor's address, or 'cli'
    action: str
    target: str = ""
    detail: str = ""


def _editor(row: Any) -> Editor:
    return Editor(
        id=row.id,
        email=row.email,
        name=row.name,
        role=row.role,
        password_hash=row.password_hash,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


def _write_audit(conn: Connection, entry: AuditEntry) -> None:
    conn.execute(
        insert(log).values(
            at=entry.at,
            actor=entry.actor[:320],
            action=entry.action[:32],
            target=entry.target[:320],
            detail=entry.detail[:500],
        )
    )


class Editors:
    """Accounts, sessions and the audit log on one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # Accounts

    def add(self, editor: Editor, audit: AuditEntry) -> Editor:
        """Create the account (EditorExistsError if the address has one)."""
        values = {
            "email": editor.email,
            "name": editor.name,
            "role": editor.role,
            "password_hash": editor.password_hash,
            "created_at": editor.created_at,
            "updated_at": editor.created_at,
        }
        try:
            with self.db.write() as conn:
                new_id = conn.execute(insert(ed).values(**values).returning(ed.c.id)).scalar_one()
                _write_audit(conn, audit)
        except IntegrityError:
            raise EditorExistsError(
                f"{editor.email} is already an editor",
                hint=f"change the password with `publisher editors passwd {editor.email}`",
            ) from None
        return Editor(**{**editor.__dict__, "id": int(new_id)})

    def get(self, email: str) -> Editor | None:
        with self.db.read() as conn:
            row = conn.execute(select(ed).where(ed.c.email == email)).first()
        return _editor(row) if row else None

    def all(self) -> list[Editor]:
        with self.db.read() as conn:
            rows = conn.execute(select(ed).order_by(ed.c.email)).all()
        return [_editor(r) for r in rows]

    def remove(self, email: str, audit: AuditEntry) -> bool:
        """Delete the account and its sessions; False (and no audit row) if there was none."""
        with self.db.write() as conn:
            found = conn.execute(select(ed.c.id).where(ed.c.email == email)).scalar()
            if found is None:
                return False
            conn.execute(delete(ses).where(ses.c.editor_id == found))
            conn.execute(delete(ed).where(ed.c.id == found))
            _write_audit(conn, audit)
        return True

    def set_password(self, email: str, password_hash: str, now: datetime, audit: AuditEntry | None) -> bool:
        """Store a new hash; with ``audit`` (a change of password) every session is signed out too.

        Without ``audit`` it is a silent rehash at sign-in (new argon2 parameters), sessions kept.
        """
        with self.db.write() as conn:
            found = conn.execute(select(ed.c.id).where(ed.c.email == email)).scalar()
            if found is None:
                return False
            conn.execute(
                update(ed).where(ed.c.id == found).values(password_hash=password_hash, updated_at=now)
            )
            if audit is not None:
                conn.execute(delete(ses).where(ses.c.editor_id == found))
                _write_audit(conn, audit)
        return True

    # Sessions

    def open_session(self, session_id: str, editor_id: int, now: datetime, expires_at: datetime) -> None:
        with self.db.write() as conn:
            conn.execute(
                insert(ses).values(
                    id=session_id,
                    editor_id=editor_id,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=expires_at,
                )
            )

    def session(self, session_id: str) -> EditorSession | None:
        query = select(ses, ed).join(ed, ed.c.id == ses.c.editor_id).where(ses.c.id == session_id)
        with self.db.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        m = row._mapping
        editor = Editor(
            id=m[ed.c.id],
            email=m[ed.c.email],
            name=m[ed.c.name],
            role=m[ed.c.role],
            password_hash=m[ed.c.password_hash],
            created_at=m[ed.c.created_at],
            disabled_at=m[ed.c.disabled_at],
        )
        return EditorSession(
            id=m[ses.c.id],
            editor=editor,
            created_at=m[ses.c.created_at],
            last_seen_at=m[ses.c.last_seen_at],
            expires_at=m[ses.c.expires_at],
        )

    def touch_session(self, session_id: str, now: datetime) -> None:
        with self.db.write() as conn:
            conn.execute(update(ses).where(ses.c.id == session_id).values(last_seen_at=now))

    def close_session(self, session_id: str, audit: AuditEntry | None = None) -> bool:
        """Forget the session; ``audit`` is written only if there was one to forget."""
        with self.db.write() as conn:
            gone = conn.execute(delete(ses).where(ses.c.id == session_id)).rowcount > 0
            if gone and audit is not None:
                _write_audit(conn, audit)
        return gone

    def prune_sessions(self, now: datetime, idle_before: datetime) -> int:
        """Delete sessions past their absolute expiry or idle since ``idle_before``."""
        with self.db.write() as conn:
            stale = (ses.c.expires_at <= now) | (ses.c.last_seen_at <= idle_before)
            return conn.execute(delete(ses).where(stale)).rowcount

    # The audit log

    def record(self, entry: AuditEntry) -> None:
        with self.db.write() as conn:
            _write_audit(conn, entry)

    def audit(self, limit: int = 50) -> list[AuditEntry]:
        """The newest ``limit`` entries, newest first."""
        query = select(log).order_by(log.c.at.desc(), log.c.id.desc()).limit(limit)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [
            AuditEntry(at=r.at, actor=r.actor, action=r.action, target=r.target, detail=r.detail)
            for r in rows
        ]
