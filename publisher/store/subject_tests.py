"""Subject tests in the database: the recorded split, the winner, and who each send reaches.

The split is written once, in one transaction with the test's row (the seed,
the population it was drawn from, every sampled subscriber with their
subject), so a crash leaves either no test or a whole one, and a second
process racing to start the same test reads the first one's record instead of
drawing its own. The winner is written once by a conditional update; whoever
loses that race reads it back. Each subject's send and the rest's send are
ordinary ledger sends planned through ``TestAudience``: a subject's send is its
members, the rest is everyone else, so no subscriber is in two of them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from publisher.store.queue import queued_issues as q
from publisher.store.records import Audience
from publisher.store.schema import subject_test_members as m
from publisher.store.schema import subject_tests as t
from publisher.store.schema import subscribers as sub

if TYPE_CHECKING:
    from publisher.store.database import Database as Store

_CHUNK = 5000  # member rows a statement: far below PostgreSQL's 65,535 parameters


@dataclass(frozen=True)
class TestRecord:
    """One issue's subject test as recorded (times aware, UTC)."""

    id: int
    issue_slug: str
    subjects: tuple[str, ...]
    sample_bp: int  # basis points: 20% = 2000
    wait: timedelta
    seed: str
    population: int
    created_at: datetime
    decide_at: datetime
    winner: int | None  # index into ``subjects``; None until decided
    clicks: tuple[int, ...]  # human clicks per subject at the decision (empty before)
    decided_at: datetime | None


def _record(row: Any) -> TestRecord:
    clicks = tuple(int(n) for n in json.loads(row.clicks)) if row.clicks else ()
    return TestRecord(
        id=int(row.id),
        issue_slug=row.issue_slug,
        subjects=tuple(json.loads(row.subjects)),
        sample_bp=int(row.sample_bp),
        wait=timedelta(seconds=int(row.wait_seconds)),
        seed=row.seed,
        population=int(row.population),
        created_at=row.created_at,
        decide_at=row.decide_at,
        winner=row.winner,
        clicks=clicks,
        decided_at=row.decided_at,
    )


@dataclass(frozen=True)
class TestAudience(Audience):
    """The usual audience narrowed to one subject's sample (``variant``) or to the rest (None)."""

    test_id: int = 0
    variant: int | None = None

    def where(self) -> list[Any]:
        members = select(m.c.subscriber_id).where(m.c.test_id == self.test_id)
        if self.variant is None:
            return [*super().where(), sub.c.id.not_in(members)]
        return [*super().where(), sub.c.id.in_(members.where(m.c.variant == self.variant))]


class SubjectTests:
    """The operations on ``subject_tests`` and its members: ``SubjectTests(store)``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, slug: str) -> TestRecord | None:
        with self._store.read() as conn:
            row = conn.execute(select(t).where(t.c.issue_slug == slug)).first()
        return _record(row) if row else None

    def eligible_ids(self, audience: Audience | None = None) -> list[int]:
        """The ids a sample is drawn from now (the issue's audience), ascending."""
        query = select(sub.c.id).where(*(audience or Audience()).where()).order_by(sub.c.id)
        with self._store.read() as conn:
            return [int(i) for i in conn.execute(query).scalars()]

    def create(
        self,
        slug: str,
        *,
        subjects: Sequence[str],
        sample_bp: int,
        wait: timedelta,
        seed: str,
        population: int,
        members: Sequence[tuple[int, int]],
        now: datetime,
    ) -> tuple[TestRecord, bool]:
        """Record the test and its split in one transaction; (the record, True if this call wrote it).

        If a test for ``slug`` exists, nothing is written and that one is returned.
        """
        dialect = postgresql if self._store.dialect == "postgresql" else sqlite
        values = {
            "issue_slug": slug,
            "subjects": json.dumps(list(subjects), ensure_ascii=False),
            "sample_bp": sample_bp,
            "wait_seconds": int(wait.total_seconds()),
            "seed": seed,
            "population": population,
            "created_at": now,
            "decide_at": now + wait,
        }
        with self._store.write() as conn:
            new_id = conn.execute(
                dialect.insert(t)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["issue_slug"])
                .returning(t.c.id)
            ).scalar()
            if new_id is not None:
                rows = [{"test_id": new_id, "subscriber_id": s, "variant": v} for s, v in members]
                for start in range(0, len(rows), _CHUNK):
                    conn.execute(insert(m), rows[start : start + _CHUNK])
            row = conn.execute(select(t).where(t.c.issue_slug == slug)).one()
        return _record(row), new_id is not None

    def members(self, test_id: int) -> dict[int, int]:
        """{subscriber id: subject index} of the recorded sample."""
        query = select(m.c.subscriber_id, m.c.variant).where(m.c.test_id == test_id)
        with self._store.read() as conn:
            return {int(s): int(v) for s, v in conn.execute(query)}

    def member_counts(self, test_id: int) -> dict[int, int]:
        """{subject index: subscribers in its sample}."""
        query = select(m.c.variant, func.count()).where(m.c.test_id == test_id).group_by(m.c.variant)
        with self._store.read() as conn:
            return {int(v): int(n) for v, n in conn.execute(query)}

    def decide(self, test_id: int, winner: int, clicks: Sequence[int], *, now: datetime) -> TestRecord:
        """Record the winner unless one is recorded already; the record as it now stands."""
        with self._store.write() as conn:
            conn.execute(
                update(t)
                .where(t.c.id == test_id, t.c.winner.is_(None))
                .values(winner=winner, clicks=json.dumps(list(clicks)), decided_at=now)
            )
            row = conn.execute(select(t).where(t.c.id == test_id)).one()
        return _record(row)

    def wait_in_queue(self, slug: str, at: datetime, *, now: datetime, note: str) -> None:
        """Queue ``slug`` again for ``at`` (the decision), whatever its queue row said, or add one.

        ``publisher run`` then wakes up for the decision; a send by hand that
        started the test leaves the same row, so the scheduler finishes it.
        """
        dialect = postgresql if self._store.dialect == "postgresql" else sqlite
        # the test owns the row now: a send_at removed from the front matter must not cancel the rest
        values = {"send_at": at, "status": "queued", "source": "editor", "note": note, "updated_at": now}
        stmt = dialect.insert(q).values(slug=slug, created_at=now, **values)
        with self._store.write() as conn:
            conn.execute(stmt.on_conflict_do_update(index_elements=["slug"], set_=values))
