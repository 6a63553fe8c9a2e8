"""The digest tables and the rows read from them; the queries are in ``store.digests``.

Split from ``store.digests`` to keep each module on one screen's worth of
responsibility: this one says what is stored and how a variant's contents
are written in ``digest_variants.articles`` (a JSON slug list, as before
issue 13.6, or an object when its lede is not "since your last digest", so no
migration was needed and old rows read back unchanged).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from sqlalchemy import BigInteger, Column, ForeignKey, Index, String, Table, Text, UniqueConstraint

from publisher.store.schema import Id, UtcDateTime, metadata

article_arrivals = Table(
    "article_arrivals",
    metadata,
    Column("seq", Id, primary_key=True, autoincrement=True),
    Column("slug", String(200), nullable=False),
    Column("article_id", String(500), nullable=False, server_default=""),
    Column("first_seen_at", UtcDateTime, nullable=False),
    UniqueConstraint("slug"),
)

digest_marks = Table(
    "digest_marks",
    metadata,
    Column(
        "subscriber_id",
        Id,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
        nullable=False,
    ),
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", UtcDateTime, nullable=False),
)

digest_variants = Table(
    "digest_variants",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("send_id", Id, ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("articles", Text, nullable=False),  # JSON list of slugs, in the order shown
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("send_id", "fingerprint"),
)

digest_recipients = Table(
    "digest_recipients",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("subscriber_id", Id, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("frequency", String(16), nullable=False),
    Column("period", String(16), nullable=False),  # the period's first local date, e.g. 2026-12-01
    Column("send_id", Id, ForeignKey("sends.id", ondelete="CASCADE")),  # NULL: nothing new, no mail
    Column("variant_id", Id, ForeignKey("digest_variants.id", ondelete="CASCADE")),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("subscriber_id", "frequency", "period"),
    Index(None, "send_id"),
    Index(None, "frequency", "period"),
)


class Candidate(NamedTuple):
    """A subscriber who may be due, with what planning needs (the address is read again when recording).

    A named tuple: a round makes one per subscriber, a million of them, and a
    tuple is made several times faster than a frozen dataclass.
    """

    id: int
    topics: tuple[str, ...]
    timezone: str
    created_at: datetime
    last_seq: int | None  # None: no period recorded for them yet
    mailed: bool = False  # ever sent a digest: if not, the next one is their first


class Lede(StrEnum):
    """What a digest's opening line calls its articles (issue 13.6: a first one is not "since your last")."""

    LAST = "last"  # new since their last digest
    SUBSCRIBED = "subscribed"  # their first: new since they subscribed
    LATEST = "latest"  # their first, nothing new since they subscribed: the latest ``max_latest``


@dataclass(frozen=True, order=True)
class Contents:
    """What one digest variant shows: its articles in order, and what its lede calls them."""

    articles: tuple[str, ...]
    lede: Lede = Lede.LAST


@dataclass(frozen=True)
class VariantPlan:
    """One digest's contents and the subscribers who get it."""

    contents: Contents
    subscriber_ids: tuple[int, ...]


@dataclass(frozen=True)
class ZoneShare:
    """One zone's share of a page of a round: its send, its variants, and who is due without news."""

    key: str  # the zone's send for the period
    period: str
    variants: Sequence[VariantPlan]
    quiet: Sequence[int]
    meta: dict[str, str]


@dataclass(frozen=True)
class Recorded:
    key: str
    send_id: int | None
    mailed: int  # deliveries written by this round
    quiet: int  # period recorded without mail (nothing new for them)
    variants: int


@dataclass(frozen=True)
class DigestSend:
    id: int
    key: str
    created_at: datetime
    meta: str


def fingerprint(contents: Contents, to_seq: int) -> str:
    """A variant's identity: its contents and the arrival it was planned up to."""
    parts: list[object] = [list(contents.articles), to_seq]
    if contents.lede is not Lede.LAST:  # so variants recorded before ledes keep their identity
        parts.append(contents.lede.value)
    raw = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def dump_contents(contents: Contents) -> str:
    """``digest_variants.articles``: the slug list, or with another lede ``{"articles", "lede"}``."""
    if contents.lede is Lede.LAST:
        return json.dumps(list(contents.articles))
    return json.dumps({"articles": list(contents.articles), "lede": contents.lede.value})


def load_contents(text: str) -> Contents:
    """The inverse of :func:`dump_contents`; a bare list is what every variant held before ledes."""
    data = json.loads(text)
    if isinstance(data, list):
        return Contents(tuple(data))
    return Contents(tuple(data["articles"]), Lede(data["lede"]))
