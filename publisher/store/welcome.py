"""The welcome mail in the ledger: one send per welcome-mail file, one delivery per subscriber, ever.

A welcome send is an ordinary ``sends`` row (kind ``issue``, the only kinds the
schema allows being issue and digest; key ``welcome:<file slug>``, no issue
slug), so the drain, the lease, the reports and the bounce handling treat it
like any send. It is planned a subscriber at a time, as they confirm: their
row is added only if they have never had a row in *any* welcome send, so a
second confirmation, an unsubscribe and resubscribe, or a renamed welcome file
mails nobody twice; the unique (send, subscriber) pair backs that up against
two confirmations planning at the same moment. Suppressed addresses and
subscribers not confirmed are never planned (and the drain checks again).
Those welcomed for the first time also enter the ``welcome`` sequence, in the
same transaction, at step 1 and with today's sequence mail used: its later
steps (``sequences/welcome/02-*.md``...) follow on the sequence rounds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from publisher.store.records import NOT_SUPPRESSED, SendInfo, _info, unfinished_sends
from publisher.store.schema import deliveries as d
from publisher.store.schema import sends as s
from publisher.store.schema import subscribers as sub
from publisher.store.sequences import SequenceStore

if TYPE_CHECKING:
    from publisher.store.database import Database as Store

PREFIX = "welcome:"
KIND = "issue"  # the schema's CHECK allows issue and digest; the key prefix tells a welcome send apart


def is_welcome_key(key: str) -> bool:
    return key.startswith(PREFIX)


class WelcomeLedger:
    """Welcome sends on one store: ``WelcomeLedger(store)``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _insert(self) -> Any:
        return postgresql.insert if self._store.dialect == "postgresql" else sqlite.insert

    def plan(
        self,
        key: str,
        *,
        now: datetime,
        subscriber_ids: Sequence[int] | None = None,
        confirmed_since: datetime | None = None,
    ) -> tuple[int, int]:
        """Add the never-welcomed among these subscribers to the send ``key`` (created if new).

        Who: ``subscriber_ids``, or everyone confirmed at or after
        ``confirmed_since`` (an import). One transaction; returns (send id, rows added).
        """
        if not is_welcome_key(key):
            raise ValueError(f"not a welcome send key: {key!r}")
        if subscriber_ids is None and confirmed_since is None:
            raise ValueError("say whom to welcome: subscriber_ids or confirmed_since")
        who = (
            sub.c.id.in_(list(subscriber_ids))
            if subscriber_ids is not None
            else sub.c.confirmed_at >= confirmed_since
        )
        welcomed_before = (
            select(d.c.id)
            .join(s, s.c.id == d.c.send_id)
            .where(d.c.subscriber_id == sub.c.id, s.c.key.startswith(PREFIX, autoescape=True))
            .exists()
        )
        with self._store.write() as conn:
            send_id = self._send_row(conn, key, now)
            rows = select(
                literal(send_id, s.c.id.type), sub.c.id, sub.c.email, literal("pending"), literal(0)
            ).where(who, sub.c.status == "confirmed", NOT_SUPPRESSED, ~welcomed_before)
            before = conn.execute(select(func.count()).where(d.c.send_id == send_id)).scalar_one()
            SequenceStore(self._store).enter_where(
                conn, "welcome", [who, ~welcomed_before], now=now, progress=1, last_at=now
            )
            conn.execute(
                self._insert()(d)
                .from_select(["send_id", "subscriber_id", "email", "status", "attempts"], rows)
                .on_conflict_do_nothing(index_elements=["send_id", "subscriber_id"])
            )
            after = conn.execute(select(func.count()).where(d.c.send_id == send_id)).scalar_one()
            if after != before:
                reopen = case((s.c.status == "done", "scheduled"), else_=s.c.status)
                conn.execute(
                    update(s).where(s.c.id == send_id).values(planned=after, status=reopen, finished_at=None)
                )
        return send_id, int(after - before)

    def _send_row(self, conn: Any, key: str, now: datetime) -> int:
        send_id = conn.execute(
            self._insert()(s)
            .values(
                kind=KIND,
                key=key,
                status="scheduled",
                meta=json.dumps({"sequence": "welcome"}),
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(s.c.id)
        ).scalar()
        if send_id is None:
            send_id = conn.execute(select(s.c.id).where(s.c.key == key)).scalar_one()
        return int(send_id)

    def unfinished(self) -> list[SendInfo]:
        """Welcome sends with rows pending (planned, not yet drained, or interrupted), oldest first."""
        with self._store.read() as conn:
            return [_info(r) for r in conn.execute(unfinished_sends(PREFIX))]
