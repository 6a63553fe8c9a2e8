"""Cleaning what people type about themselves before it reaches the database.

Every address is validated and normalised once, here, so the unique index on
``subscribers.email`` really means one row per mailbox, and nothing that ends up
in a header (a name with CR/LF, a control character) can inject one later.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from email_validator import EmailNotValidError, validate_email

from publisher.errors import PublisherError
from publisher.models import Frequency, SubscriberStatus

MAX_NAME = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]+")
# What a name may not hold: control characters (C0, DEL, C1 with NEL), line and paragraph
# separators, lone surrogates, and the bidi embedding/override/isolate controls and marks
# that can make a name display as something else around it.
_NAME_FORBIDDEN = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_MARKUP = re.compile(r"[<>]")
# Zones that are aliases of the tz build rather than places: the "right/" leap-second and
# "posix/" copies, the "posixrules" template, "Factory", "localtime".
_NOT_A_PLACE = re.compile(r"^(?:right/|posix/)|^(?:posixrules|Factory|localtime)$")
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


def mailbox_key(address: str) -> str:
    """The mailbox an address delivers to, for limits: case-folded, without a ``+tag``.

    ``victim+1@example.com`` .. ``victim+19@example.com`` all land in one inbox, so a
    per-address limit keyed on the raw address lets a script mail-bomb it.
    """
    local, _, domain = address.casefold().rpartition("@")
    return f"{local.partition('+')[0] or local}@{domain}"


@lru_cache(maxsize=4096)
def _domain(domain: str) -> str:
    """The normalised domain if email-validator accepts it with a simple local part, else ''."""
    try:
        return validate_email(f"a@{domain}", check_deliverability=False).domain.lower()
    except EmailNotValidError:
        return ""


def check_name(raw: str | None) -> str:
    """A display name as a person typed it, or InvalidValueError saying why it is refused.

    Every entry point (sign-up and preferences forms, the API, CSV import, the
    CLI) calls this through the store, so they all refuse the same names:
    an RFC 2047 encoded word (``=?`` ...) would be *decoded* by mail software
    into whatever it hides, CR/LF included; control characters, line
    separators and bidi controls can break or disguise a header or a page.
    Refusing (not cleaning) lets a person fix the name and stops a silent change.
    """
    if not raw:
        return ""
    text = unicodedata.normalize("NFC", str(raw))
    if len(text) > MAX_NAME:
        raise InvalidValueError(f"the name is over {MAX_NAME} characters", hint="use a shorter name")
    if "=?" in text:
        raise InvalidValueError(
            "the name may not contain '=?' (it reads as an encoded mail header)", hint="remove '=?'"
        )
    if _NAME_FORBIDDEN.search(text):
        raise InvalidValueError(
            "the name may not contain line breaks, control characters or text-direction controls",
            hint="type the name on one line, as plain text",
        )
    if _MARKUP.search(text):
        raise InvalidValueError("the name may not contain < or >", hint="remove < and >")
    return _SPACES.sub(" ", text).strip()


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


@lru_cache(maxsize=1)
def canonical_zones() -> frozenset[str]:
    """The IANA zones a person can live in: the tz database's names less its build artefacts."""
    return frozenset(z for z in available_timezones() if not _NOT_A_PLACE.search(z))


@lru_cache(maxsize=1024)
def check_timezone(raw: str) -> str:
    """An IANA time zone name, as given (cached: an import repeats a handful of zones)."""
    name = raw.strip()
    if name not in canonical_zones():
        raise InvalidValueError(f"unknown time zone {raw!r} (use an IANA name such as Europe/Paris)")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidValueError(
            f"unknown time zone {raw!r} (use an IANA name such as Europe/Paris)"
        ) from None
    return name
