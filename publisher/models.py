"""The nouns every stage shares, as frozen dataclasses.

They carry data only; loading lives in ``content``, rendering in ``render``,
persistence in ``store``. Datetimes are always time-zone aware.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path


@dataclass(frozen=True)
class Article:
    """One piece of news: Markdown body plus its front matter."""

    slug: str  # unique across the site; the URL path and the feed id come from it
    title: str
    date: datetime  # aware
    body: str  # Markdown source, front matter removed
    source: Path
    issue_slug: str
    summary: str = ""  # given, else the first paragraph (plain text)
    author: str | None = None
    tags: tuple[str, ...] = ()
    image: str | None = None  # absolute URL, or site-relative path of a local file (e.g. "media/x.png")
    image_alt: str = ""
    image_file: Path | None = None  # the local source file behind ``image``, copied by the build
    image_type: str = ""  # MIME type, for feed enclosures
    image_length: int = 0  # bytes, for feed enclosures (0 when unknown, e.g. a remote URL)
    draft: bool = False
    order: int = 0
    body_line: int = 1  # line of the body's first line in the source file, for errors
    id: str = ""  # tag: URI, stable for life
    content_hash: str = ""  # sha256 of the source bytes: the build cache key


@dataclass(frozen=True)
class SubjectTest:
    """An issue's subject test: a sample split between ``subjects``, the winner to the rest after ``wait``."""

    subjects: tuple[str, ...]  # 2 or more, distinct; the first wins a tie
    sample: float  # percent of the audience in the sample, 1-50
    wait: timedelta  # from the sample's start to the decision


@dataclass(frozen=True)
class Issue:
    """What one email carries: a single article, or a folder of them with an intro."""

    slug: str
    title: str
    subject: str
    date: datetime
    articles: tuple[Article, ...]
    source: Path  # the .md file, or the folder's index.md
    intro: str = ""  # Markdown, folder issues only
    preheader: str = ""
    send_at: datetime | None = None
    draft: bool = False
    is_folder: bool = False
    subject_test: SubjectTest | None = None  # front matter ``subjects:`` + ``subject_test:``


@dataclass(frozen=True)
class Library:
    """All content found under ``paths.issues``, drafts included (callers filter)."""

    issues: tuple[Issue, ...] = ()

    @property
    def published_issues(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if not i.draft)

    @property
    def articles(self) -> tuple[Article, ...]:
        """Published articles, newest first (ties by slug, so the order is stable)."""
        arts = [a for i in self.published_issues for a in i.articles if not a.draft]
        return tuple(sorted(arts, key=lambda a: (-a.date.timestamp(), a.slug)))

    def issue(self, slug: str) -> Issue | None:
        return next((i for i in self.issues if i.slug == slug), None)


class SubscriberStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class Frequency(StrEnum):
    INSTANT = "instant"
    DAILY = "daily"
    WEEKLY = "weekly"


@dataclass(frozen=True)
class Subscriber:
    email: str
    name: str = ""
    status: SubscriberStatus = SubscriberStatus.CONFIRMED
    frequency: Frequency = Frequency.INSTANT
    topics: tuple[str, ...] = ()
    timezone: str = "UTC"
    id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    unsubscribed_at: datetime | None = None  # when mail last stopped (unsubscribed, bounced, complained)


@dataclass(frozen=True)
class Recipient:
    """What personalisation fills into a prepared message for one subscriber."""

    email: str
    name: str
    message_id: str  # full '<...@domain>' form
    unsubscribe_url: str
    preferences_url: str
    unsubscribe_mailto: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class FeedbackKind(StrEnum):
    """What came back after the 250: from a DSN, an ARF report, mail to the unsubscribe address,
    or an ESP's webhook."""

    HARD_BOUNCE = "hard_bounce"  # 5.x.x: the address does not exist or will never take our mail
    SOFT_BOUNCE = "soft_bounce"  # 4.x.x: full mailbox, greylisting, a passing refusal
    COMPLAINT = "complaint"  # the reader marked it as spam (feedback loop)
    UNSUBSCRIBE = "unsubscribe"  # a mail to the List-Unsubscribe mailto:
    DELIVERED = "delivered"  # an ESP's delivery event: resets the soft-bounce count


@dataclass(frozen=True)
class Feedback:
    """One fact about one recipient, as an inbound message or a webhook reported it.

    ``key`` makes applying it idempotent: the same report seen twice (a retried
    SMTP delivery, an IMAP message read again after a crash, a replayed webhook)
    takes effect once. ``delivery_id`` comes from our VERP return path when the
    report reached it, so a bounce that quotes no headers is still attributed;
    ``address`` is what the report itself names (checked against the delivery).
    """

    kind: FeedbackKind
    key: str
    address: str | None = None
    delivery_id: int | None = None
    status: str = ""  # the enhanced status code, e.g. '5.1.1'
    detail: str = ""  # the diagnostic, one line, at most 500 characters
    source: str = ""  # 'smtp', 'imap', 'ses', 'postmark', 'mailgun', 'sendgrid'
