"""What every provider webhook shares: the refusal, the call as received, bounded parsing, replay memory.

A webhook body is read once, as bytes, because every signature is over the raw
bytes; it is parsed only after the signature (or the basic auth) checks out
where the provider allows that order. Everything a provider says about a
recipient is cleaned here into a ``Feedback`` or dropped: an address that is
not one (10 KB, NUL, an encoded word that does not validate) cannot be one of
our subscribers, so dropping it changes nothing and keeps it out of the
database. Answers never say whether an address was known.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from publisher import lines
from publisher.errors import PublisherError
from publisher.models import Feedback, FeedbackKind
from publisher.store.values import InvalidValueError, normalise_email
from publisher.web.requests import text_problem

MAX_EVENTS = 1000  # facts in one call; a provider's batch stays far below, a hostile array does not
MAX_KEY = 200
MAX_DETAIL = 500
RECENT_CAP = 100_000  # replay tokens remembered per provider and process
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


class HookError(PublisherError):
    """A refused webhook call: nothing was applied. ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Call:
    """One webhook request as the provider sent it: raw body, headers (lower-case names), peer, our time."""

    body: bytes
    headers: Mapping[str, str]
    client: str | None
    now: datetime


@dataclass(frozen=True)
class Verified:
    """What an authenticated call asks for.

    ``replay`` is the provider's one-use value (Mailgun token, SNS MessageId,
    SendGrid signature), remembered for ``replay_ttl`` so a second use is
    refused; ``then`` runs after the facts are applied (SNS: confirm a
    subscription), still inside the call, so a failure is answered as one.
    """

    items: tuple[Feedback, ...] = ()
    replay: str | None = None
    replay_ttl: timedelta = timedelta(minutes=10)
    then: Callable[[], None] | None = None


class Hook(Protocol):
    """One provider: whether it is configured, and how to authenticate and read one call."""

    name: str

    @property
    def configured(self) -> bool: ...

    def read(self, call: Call) -> Verified: ...


@dataclass
class RecentSet:
    """Replay tokens seen lately, per process, bounded in time and in number.

    A token older than its provider's freshness window is refused as stale
    anyway, so it can be forgotten then; past ``cap`` the oldest go first (the
    store's exactly-once keys still stop their effect). A token is reserved
    before the facts are applied and released if applying fails, so the
    provider's retry of a call we did not answer 200 is not taken for a replay.
    """

    cap: int = RECENT_CAP
    _seen: OrderedDict[str, datetime] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reserve(self, token: str, now: datetime, ttl: timedelta) -> bool:
        with self._lock:
            while self._seen and (next(iter(self._seen.values())) <= now or len(self._seen) >= self.cap):
                self._seen.popitem(last=False)
            if token in self._seen:
                return False
            self._seen[token] = now + ttl
            return True

    def release(self, token: str) -> None:
        with self._lock:
            self._seen.pop(token, None)


def parse_json(body: bytes) -> Any:
    """The body as JSON, or 400 (invalid UTF-8 or JSON, or nested past the parser's depth)."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise HookError(400, "the body is not valid JSON") from None


def parse_text_json(text: str) -> Any:
    """JSON inside a string (SNS's Message), or None when it is not JSON at all."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def check_fresh(when: datetime, now: datetime, max_age: timedelta, max_ahead: timedelta) -> None:
    """400 unless ``when`` is within ``max_age`` before ``now`` and ``max_ahead`` after it."""
    if when < now - max_age:
        raise HookError(400, "the call is too old (a replay, or a clock far off)")
    if when > now + max_ahead:
        raise HookError(400, "the call is dated in the future")


def check_count(n: int) -> None:
    if n > MAX_EVENTS:
        raise HookError(413, f"more than {MAX_EVENTS} events in one call")


def text(value: Any) -> str:
    """A JSON value as text if it is a string or a number, else ''."""
    if isinstance(value, bool):
        return ""
    return str(value) if isinstance(value, str | int | float) else ""


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def one_line(value: Any, limit: int = MAX_DETAIL) -> str:
    """A diagnostic fit to store: one line, no control characters, at most ``limit`` characters."""
    return lines.one_line(text(value), limit)


def enhanced_status(*sources: Any) -> str:
    """The first enhanced status code (5.1.1) found in the given fields, or ''."""
    for value in sources:
        found = _STATUS.search(text(value)[:MAX_DETAIL])
        if found:
            return found.group(1)
    return ""


def clean_address(raw: Any) -> str | None:
    """The address as the subscriber table stores it, or None when it cannot be anyone's."""
    value = text(raw).strip()
    if not value or len(value) > 320 or text_problem(value):
        return None
    try:
        return normalise_email(value)
    except InvalidValueError:
        return None


def feedback(
    source: str, kind: FeedbackKind, key: Any, address: Any, status: str = "", detail: Any = ""
) -> Feedback | None:
    """A ``Feedback`` from a provider's event, or None when its key or address is unusable."""
    key_text = text(key)
    cleaned = clean_address(address)
    if not key_text or len(key_text) > MAX_KEY or text_problem(key_text) or cleaned is None:
        return None
    return Feedback(
        kind=kind,
        key=f"{source}:{key_text}",
        address=cleaned,
        status=status,
        detail=one_line(detail),
        source=source,
    )


def keep(*items: Feedback | None) -> tuple[Feedback, ...]:
    return tuple(i for i in items if i is not None)
