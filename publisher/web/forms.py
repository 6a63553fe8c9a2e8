"""Checking what people type into the subscribe and preferences forms.

The store cleans values too (it strips control characters, cuts long names);
here we *refuse* instead, with the reason, because a person at a form can fix
their input, and silently storing a changed name or dropping a topic would
surprise them. Every problem is reported at once; nothing is stored unless the
whole form is good.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

from starlette.datastructures import FormData

from publisher.errors import PublisherError
from publisher.models import Frequency
from publisher.render.email_headers import check_address
from publisher.store.values import InvalidValueError, canonical_zones, normalise_email
from publisher.store.values import check_name as store_check_name

MAX_EMAIL = 320
MAX_TOPICS = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str


class FormError(PublisherError):
    """One or more fields are unusable; the page shows every reason."""

    status = 422

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        super().__init__(
            "; ".join(f"{p.field}: {p.message}" for p in problems), "correct the form and send it again"
        )
        self.problems = list(problems)

    def lines(self) -> list[str]:
        return [f"{p.field}: {p.message}" for p in self.problems]


@dataclass(frozen=True)
class Choices:
    """What a subscriber chose: the shared part of both forms.

    Its fields are the subscriber columns both forms set, by the store's
    argument names, so ``**asdict(choices)`` hands them over.
    """

    name: str
    frequency: Frequency
    topics: tuple[str, ...]
    timezone: str


@lru_cache(maxsize=1)
def timezones() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The zones a person picks from, by region, for the select's optgroups.

    tz's own zone.tab: one entry per country and region, so no legacy aliases
    (US/Eastern, Etc/GMT+5, Asia/Calcutta) and still Europe/Oslo, which the tz
    database now keeps only as a link. UTC comes first. The form still accepts
    any zone this machine knows (a subscriber imported with an alias keeps it).
    """
    try:
        text = files("tzdata").joinpath("zoneinfo/zone.tab").read_text(encoding="utf-8")
        names = {line.split("\t")[2] for line in text.splitlines() if line and not line.startswith("#")}
    except (ModuleNotFoundError, OSError, IndexError):  # no tzdata package: the system's zones
        names = {z for z in canonical_zones() if "/" in z and not z.startswith(("Etc/", "US/", "SystemV/"))}
    groups: dict[str, list[str]] = {}
    for zone in sorted(names & canonical_zones()):
        groups.setdefault(zone.split("/", 1)[0], []).append(zone)
    return (("UTC", ("UTC",)), *((region, tuple(zones)) for region, zones in sorted(groups.items())))


@lru_cache(maxsize=1)
def zone_aliases() -> str:
    """'alias=zone;...' for the legacy names browsers still report (Chromium's ICU says
    Asia/Calcutta for Asia/Kolkata), so the page's guess lands on the listed zone."""
    listed = {zone for _, zones in timezones() for zone in zones}
    try:
        text = files("tzdata").joinpath("zoneinfo/tzdata.zi").read_text(encoding="utf-8")
    except (ModuleNotFoundError, OSError):
        return ""
    pairs = (line.split()[1:3] for line in text.splitlines() if line.startswith("L "))
    return ";".join(f"{alias}={zone}" for zone, alias in pairs if zone in listed and alias not in listed)


def _zone_set() -> frozenset[str]:
    return canonical_zones()


def one(form: FormData, key: str) -> str:
    """A single text field ('' when absent; a file upload counts as absent)."""
    value = form.get(key)
    return value if isinstance(value, str) else ""


def check_email(raw: str, problems: list[FieldProblem]) -> str:
    text = raw.strip()
    if not text:
        problems.append(FieldProblem("email", "enter your email address"))
        return ""
    if len(text) > MAX_EMAIL or _CONTROL.search(text):
        problems.append(FieldProblem("email", "this is not a valid email address"))
        return ""
    try:
        address = normalise_email(text)
        check_address(address)
    except PublisherError:
        problems.append(FieldProblem("email", "this is not a valid email address"))
        return ""
    return address


def check_name(raw: str, problems: list[FieldProblem]) -> str:
    """The store's own rule (``values.check_name``), so every entry point refuses the same names."""
    try:
        return store_check_name(raw.strip())
    except InvalidValueError as exc:
        problems.append(FieldProblem("name", exc.message))
        return ""


def check_choices(
    form: FormData, known_topics: Sequence[str], problems: list[FieldProblem], default_timezone: str = "UTC"
) -> Choices:
    """Name, frequency, topics and time zone from a submitted form.

    A field left out or empty takes its default (forms embedded on other sites
    often send only ``email``): the default frequency, no topic chosen (every
    topic), ``default_timezone``. A field sent with a bad value is refused.
    """
    name = check_name(one(form, "name"), problems)
    raw_freq = one(form, "frequency").strip().lower() or Frequency.INSTANT.value
    try:
        frequency = Frequency(raw_freq)
    except ValueError:
        allowed = ", ".join(f.value for f in Frequency)
        problems.append(FieldProblem("frequency", f"choose one of: {allowed}"))
        frequency = Frequency.INSTANT
    raw_topics = [v for v in form.getlist("topics") if isinstance(v, str)]
    known = set(known_topics)
    chosen: set[str] = set()
    unknown: list[str] = []
    for value in raw_topics[:MAX_TOPICS]:
        topic = value.strip().lower()
        if not topic:
            continue
        (chosen.add if topic in known else unknown.append)(topic)
    if len(raw_topics) > MAX_TOPICS:
        problems.append(FieldProblem("topics", f"choose at most {MAX_TOPICS} topics"))
    if unknown:
        shown = ", ".join(repr(u[:40]) for u in unknown[:5])
        problems.append(FieldProblem("topics", f"unknown topic(s): {shown}"))
    tz = one(form, "timezone").strip() or default_timezone
    if tz not in _zone_set():
        problems.append(FieldProblem("timezone", "choose a time zone from the list (e.g. Europe/Paris)"))
    return Choices(name=name, frequency=frequency, topics=tuple(sorted(chosen)), timezone=tz)


def echo(value: str, limit: int = MAX_EMAIL) -> str:
    """A submitted value as the re-shown form gets it back (escaped by the template, cut short)."""
    return value[:limit]
