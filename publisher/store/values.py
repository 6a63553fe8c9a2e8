"""Cleaning what people type about themselves before it reaches the database.

Every address is validated and normalised once, here, so the unique index on
``subscribers.email`` really means one row per mailbox, and nothing that ends up
in a header (a name with CR/LF, a control character) can inject one later.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from publisher.errors import PublisherError
from publisher.models import Frequency, SubscriberStatus

MAX_NAME = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]+")
_SPACES = re.compile(r"\s+")
_TOPIC = re.compile(r"^[\w][\w .&+/-]{0,63}$")


class InvalidValueError(PublisherError):
    """One field of one subscriber is unusable (an address, a time zone, a status...)."""


# A plain ASCII dot-atom local part: exactly what email-validator accepts without
# question, so such an address on an already validated domain needs no second opinion.
_SIMPLE_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


def normalise_email(raw: str) -> str:
    """The address as stored: syntax-checked (no DNS), IDNA-normalised, lower-case.

    Lower-casing the local part is technically lossy, but real mailboxes are
    case-insensitive and treating Ann@x and ann@x as two subscribers sends twice.
    Most of email-validator's time goes into the domain (IDNA/UTS-46), which a
    list repeats endlessly: the domain is validated once and remembered, and a
    plain local part on a known domain is accepted by a strict regex.
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidValueError("the email address is empty")
    local, at, domain = text.rpartition("@")
    if at and len(local) <= 64 and len(text) <= 254 and _SIMPLE_LOCAL.match(local):
        known = _domain(domain)
        if known:
            return f"{local.lower()}@{known}"
    try:
        info = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidValueError(f"not a valid email address {text!r}: {exc}") from None
    return info.normalized.lower()


@lru_cache(maxsize=4096)
def _domain(domain: str) -> str:
    """The normalised domain if email-validator accepts it with a simple local part, else ''."""
    try:
        return validate_email(f"a@{domain}", check_deliverability=False).domain.lower()
    except EmailNotValidError:
        return ""


def clean_name(raw: str | None) -> str:
    """A display name safe for headers and pages: no control characters, CR or LF."""
    if not raw:
        return ""
    text = unicodedata.normalize("NFC", str(raw))
    text = _CONTROL.sub(" ", text)
    return _SPACES.sub(" ", text).strip()[:MAX_NAME]


def clean_topics(raw: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Topics as a sorted, de-duplicated tuple; ';' separates them in CSV and in the table."""
    if not raw:
        return ()
    items = raw.split(";") if isinstance(raw, str) else list(raw)
    out = set()
    for item in items:
        topic = clean_name(item).lower()
        if not topic:
            continue
        if not _TOPIC.match(topic):
            raise InvalidValueError(f"not a usable topic {item!r} (letters, digits, spaces, - _ . & + /)")
        out.add(topic)
    return tuple(sorted(out))


def topics_text(topics: tuple[str, ...]) -> str:
    return ";".join(topics)


def parse_status(raw: str | SubscriberStatus) -> SubscriberStatus:
    try:
        return SubscriberStatus(str(raw).strip().lower())
    except ValueError:
        allowed = ", ".join(s.value for s in SubscriberStatus)
        raise InvalidValueError(f"unknown status {raw!r} (one of: {allowed})") from None


def parse_frequency(raw: str | Frequency) -> Frequency:
    try:
        return Frequency(str(raw).strip().lower())
    except ValueError:
        allowed = ", ".join(f.value for f in Frequency)
        raise InvalidValueError(f"unknown frequency {raw!r} (one of: {allowed})") from None


@lru_cache(maxsize=1024)
def check_timezone(raw: str) -> str:
    """An IANA time zone name, as given (cached: an import repeats a handful of zones)."""
    name = raw.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidValueError(
            f"unknown time zone {raw!r} (use an IANA name such as Europe/Paris)"
        ) from None
    return name
