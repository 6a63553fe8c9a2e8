"""Per-subscriber engagement and sunsetting: the only SQL about who clicked.

Written only with ``analytics.per_subscriber`` on. A click through a link that
names its reader (``/r/<token>.<reader>``) adds a ``subscriber_clicks`` row and,
if a person's, moves the reader's ``engagement`` row on: last human click, one
more click, and out of sunsetting (a click is the answer the re-engagement
mail asks for). It is written in the redirect's own transaction
(``Clicks.record`` calls :func:`write_reader_clicks`), so a click costs no
second commit.

Sunsetting reads the same rows: a *candidate* is a confirmed, unsuppressed
subscriber not yet being sunset, silent (no human click) for ``after`` since
the latest of their confirmation, their last human click and the moment
per-subscriber counting was turned on, who was sent at least ``min_issues``
issues or digests in that silence. Set-based SQL; nothing walks the list in
Python.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from publisher.store.records import NOT_SUPPRESSED
from publisher.store.schema import analytics_state as st
from publisher.store.schema import deliveries as d
from publisher.store.schema import engagement as eng
from publisher.store.schema import metadata
from publisher.store.schema import sends as s
from publisher.store.schema import subscriber_clicks as sc
from publisher.store.schema import subscribers as sub

if TYPE_CHECKING:
    from publisher.store.database import Database

SINCE = "per_subscriber_since"  # analytics_state: when per-subscriber counting was (last) turned on
SWEPT = "sunset_swept_at"  # analytics_state: the last sunsetting sweep (one an hour is plenty)
REENGAGED, PAUSED = "reengaged", "paused"
# Sends whose delivery counts as "an issue the reader got": issues and digests, not welcome or sequence mail.
COUNTED_SENDS = ("issue:", "digest:")


@dataclass(frozen=True)
class ReaderClick:
    """One click through a per-subscriber link."""

    subscriber_id: int
    link_id: int
    at: datetime
    kind: str  # human | scanner | prefetch


@dataclass(frozen=True)
class SunsetCounts:
    candidates: int
    reengaged: int
    paused: int


def _insert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def write_reader_clicks(conn: Connection, clicks: Sequence[ReaderClick]) -> None:
    """Append the clicks and move each human clicker's engagement row on (the caller's transaction)."""
    if not clicks:
        return
    # Only a reader the link's send was planned for: one erased since (their id perhaps reused
    # by SQLite for someone new) is not recorded, and does not fail the batch's other clicks.
    cl = metadata.tables["click_links"]  # declared by ``store.clicks``, which imports this module
    planned = (
        select(d.c.subscriber_id, cl.c.id)
        .select_from(cl.join(s, s.c.key == cl.c.send_key).join(d, d.c.send_id == s.c.id))
        .where(tuple_(d.c.subscriber_id, cl.c.id).in_(list({(c.subscriber_id, c.link_id) for c in clicks})))
    )
    known = {(int(a), int(b)) for a, b in conn.execute(planned)}
    clicks = [c for c in clicks if (c.subscriber_id, c.link_id) in known]
    if not clicks:
        return
    conn.execute(
        sc.insert(),
        [
            {"subscriber_id": c.subscriber_id, "link_id": c.link_id, "at": c.at, "kind": c.kind}
            for c in clicks
        ],
    )
    humans = [c for c in clicks if c.kind == "human"]
    if not humans:
        return
    counts = Counter(c.subscriber_id for c in humans)
    last: dict[int, datetime] = {}
    for c in humans:
        last[c.subscriber_id] = max(c.at, last.get(c.subscriber_id, c.at))
    rows = [{"subscriber_id": k, "last_click_at": last[k], "human_clicks": n} for k, n in counts.items()]
    stmt = _insert(conn.dialect.name)(eng)
    stmt = stmt.on_conflict_do_update(
        index_elements=["subscriber_id"],
        set_={
            "last_click_at": func.coalesce(
                func.max(eng.c.last_click_at, stmt.excluded.last_click_at)
                if conn.dialect.name == "sqlite"
                else func.greatest(eng.c.last_click_at, stmt.excluded.last_click_at),
                stmt.excluded.last_click_at,
            ),
            "human_clicks": eng.c.human_clicks + stmt.excluded.human_clicks,
            "sunset": None,  # a click answers the re-engagement mail (or resumes a paused reader)
            "sunset_at": None,
        },
    )
    conn.execute(stmt, rows)


class Engagement:
    """Per-subscriber engagement on one store: ``Engagement(store)``."""

    def __init__(self, store: Database) -> None:
        self._store = store

    # -- the switch ---------------------------------------------------------------------------------
    def tracking_since(self, *, on: bool, now: datetime) -> datetime | None:
        """When per-subscriber counting was turned on (recorded now if it just was); None while off.

        Reads first: a scheduler tick writes only when the setting changed.
        """
        known = self.since()
        if (known is not None) == on:
            return known
        with self._store.write() as conn:
            if not on:
                conn.execute(delete(st).where(st.c.key == SINCE))
                return None
            conn.execute(
                _insert(self._store.dialect)(st)
                .values(key=SINCE, at=now)
                .on_conflict_do_nothing(index_elements=["key"])
            )
            return conn.execute(select(st.c.at).where(st.c.key == SINCE)).scalar_one()  # type: ignore[no-any-return]

    def since(self) -> datetime | None:
        """When per-subscriber counting was turned on, as the scheduler last saw it (read only)."""
        with self._store.read() as conn:
            return conn.execute(select(st.c.at).where(st.c.key == SINCE)).scalar()  # type: ignore[no-any-return]

    def forget_readers(self) -> int:
        """Erase everything that says who clicked (per-subscriber counting turned off): rows erased.

        Sunsetting states go too: a pause was decided on per-subscriber clicks, and
        once they are off no click could ever resume the reader, so they would stay
        paused for good without knowing why. Reads first: with nothing to forget
        (the usual case) a scheduler tick writes nothing.
        """
        with self._store.read() as conn:
            clicks = conn.execute(select(sc.c.id).limit(1)).first()
            rows = conn.execute(select(eng.c.subscriber_id).limit(1)).first()
        if clicks is None and rows is None:
            return 0
        with self._store.write() as conn:
            gone = int(conn.execute(delete(sc)).rowcount or 0)
            gone += int(conn.execute(delete(eng)).rowcount or 0)
        return gone

    def prune(self, before: datetime) -> int:
        """Delete per-subscriber click rows older than ``before`` (the last-click times stay)."""
        with self._store.write() as conn:
            return int(conn.execute(delete(sc).where(sc.c.at < before)).rowcount or 0)

    def due_sweep(self, *, now: datetime, every: timedelta) -> bool:
        """True (and the sweep recorded as done now) when the last sweep is ``every`` old or more.

        One scheduler runs at a time (its lease), so a read then a write is enough.
        """
        with self._store.read() as conn:
            last = conn.execute(select(st.c.at).where(st.c.key == SWEPT)).scalar()
        if last is not None and now - last < every:
            return False
        with self._store.write() as conn:
            stmt = _insert(self._store.dialect)(st).values(key=SWEPT, at=now)
            conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"at": now}))
            return True

    # -- sunsetting ---------------------------------------------------------------------------------
    def _candidates(self, *, since: datetime, now: datetime, after: timedelta, min_issues: int) -> Any:
        """The query of candidate ids (see the module doc)."""
        greatest = func.max if self._store.dialect == "sqlite" else func.greatest
        joined = func.coalesce(sub.c.confirmed_at, sub.c.created_at)
        # sunset_at of an active row: when they last said "keep sending" (their preferences page)
        start = greatest(
            joined,
            func.coalesce(eng.c.last_click_at, since),
            func.coalesce(eng.c.sunset_at, since),
            since,
        )
        counted = or_(*(s.c.key.startswith(p, autoescape=True) for p in COUNTED_SENDS))
        got = (
            select(func.count())
            .select_from(d.join(s, s.c.id == d.c.send_id))
            .where(d.c.subscriber_id == sub.c.id, d.c.status == "sent", counted, d.c.sent_at > start)
            .scalar_subquery()
        )
        return (
            select(sub.c.id)
            .select_from(sub.outerjoin(eng, eng.c.subscriber_id == sub.c.id))
            .where(
                sub.c.status == "confirmed",
                NOT_SUPPRESSED,
                eng.c.sunset.is_(None),
                start <= now - after,
                got >= min_issues,
            )
        )

    def candidates(
        self, *, since: datetime, now: datetime, after: timedelta, min_issues: int, limit: int | None = None
    ) -> list[int]:
        """Ids of subscribers due a re-engagement mail, in id order (at most ``limit``)."""
        query = self._candidates(since=since, now=now, after=after, min_issues=min_issues).order_by(sub.c.id)
        with self._store.read() as conn:
            return [int(i) for i in conn.execute(query.limit(limit) if limit else query).scalars()]

    def mark_reengaged(self, subscriber_ids: Iterable[int], *, now: datetime) -> int:
        """These subscribers got (are getting) the re-engagement mail: the grace period starts now."""
        rows = [{"subscriber_id": i, "sunset": REENGAGED, "sunset_at": now} for i in subscriber_ids]
        if not rows:
            return 0
        stmt = _insert(self._store.dialect)(eng)
        stmt = stmt.on_conflict_do_update(
            index_elements=["subscriber_id"], set_={"sunset": REENGAGED, "sunset_at": now}
        )
        with self._store.write() as conn:
            conn.execute(stmt, rows)
        return len(rows)

    def pause_due(self, *, now: datetime, grace: timedelta) -> int:
        """Pause whoever was re-engaged ``grace`` ago and has not clicked since (a click clears the state)."""
        with self._store.write() as conn:
            result = conn.execute(
                update(eng)
                .where(eng.c.sunset == REENGAGED, eng.c.sunset_at <= now - grace)
                .values(sunset=PAUSED, sunset_at=now)
            )
            return int(result.rowcount or 0)

    def resume(self, subscriber_id: int, *, now: datetime) -> bool:
        """Take a subscriber out of sunsetting (their preferences page): True if they were in it."""
        with self._store.write() as conn:
            result = conn.execute(
                update(eng)
                .where(eng.c.subscriber_id == subscriber_id, eng.c.sunset.is_not(None))
                .values(sunset=None, sunset_at=now)  # silence counts again from now
            )
            return bool(result.rowcount)

    def state(self, subscriber_id: int) -> str | None:
        """reengaged | paused | None."""
        with self._store.read() as conn:
            return conn.execute(  # type: ignore[no-any-return]
                select(eng.c.sunset).where(eng.c.subscriber_id == subscriber_id)
            ).scalar()

    def counts(
        self, *, since: datetime | None, now: datetime, after: timedelta, min_issues: int
    ) -> SunsetCounts:
        """How many are candidates (0 while per-subscriber counting is off), re-engaged and paused."""
        states = select(eng.c.sunset, func.count()).where(eng.c.sunset.is_not(None)).group_by(eng.c.sunset)
        with self._store.read() as conn:
            found = {k: int(n) for k, n in conn.execute(states)}
            candidates = 0
            if since is not None:
                ids = self._candidates(since=since, now=now, after=after, min_issues=min_issues).subquery()
                candidates = int(conn.execute(select(func.count()).select_from(ids)).scalar_one())
        return SunsetCounts(candidates, found.get(REENGAGED, 0), found.get(PAUSED, 0))

    def clicks_by(self, subscriber_id: int) -> list[tuple[int, datetime, str]]:
        """(link id, when, kind) of one subscriber's recorded clicks, oldest first."""
        query = (
            select(sc.c.link_id, sc.c.at, sc.c.kind)
            .where(sc.c.subscriber_id == subscriber_id)
            .order_by(sc.c.at, sc.c.id)
        )
        with self._store.read() as conn:
            return [(int(a), b, c) for a, b, c in conn.execute(query)]
