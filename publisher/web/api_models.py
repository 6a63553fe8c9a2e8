"""The admin API's request and response shapes (pydantic), so /openapi.json describes every answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# What the API may set a status to: confirming or stopping by hand. Bounced and complained
# come only from what the mail systems report; pending only from the sign-up form.
SettableStatus = Literal["confirmed", "unsubscribed"]
FrequencyName = Literal["instant", "daily", "weekly"]
# Size and control characters only (a 10 KB name is refused before any work, and the schema says
# what the API's text rule refuses); the store's rules (store.values) decide the rest.
NO_CONTROLS = r"^[^\x00-\x1f\x7f]*$"
Topics = list[Annotated[str, Field(max_length=64, pattern=NO_CONTROLS)]]


class ErrorOut(BaseModel):
    """Every API error: what went wrong and, when we know, how to fix it."""

    error: str
    hint: str | None = None
    problems: list[str] = Field(default_factory=list)


class IssueOut(BaseModel):
    slug: str
    title: str
    subject: str
    date: datetime
    draft: bool
    send_at: datetime | None
    articles: int
    url: str


class SendOut(BaseModel):
    id: int
    kind: str
    key: str
    issue_slug: str | None
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    planned: int
    pending: int
    sent: int
    failed: int
    skipped: int
    # What came back after the 250, by kind: hard_bounce, soft_bounce, complaint, unsubscribe, delivered.
    outcomes: dict[str, int] = {}
    # The same by recipient domain, with "sent" (only on GET /api/sends/{id}).
    by_domain: dict[str, dict[str, int]] = {}


class SubscriberOut(BaseModel):
    email: str
    name: str
    status: str
    frequency: str
    topics: list[str]
    timezone: str
    created_at: datetime | None
    updated_at: datetime | None


class SubscriberPageOut(BaseModel):
    """One page of subscribers; ``next`` is the ``after`` for the next page (None: this was the last)."""

    items: list[SubscriberOut]
    next: int | None


class SubscriberIn(BaseModel):
    """A subscriber added by an editor: checked by the same rules as every other entry point."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=254, pattern=NO_CONTROLS)
    name: str = Field("", max_length=200, pattern=NO_CONTROLS)
    status: SettableStatus = "confirmed"
    frequency: FrequencyName = "instant"
    topics: Topics = Field(default_factory=list, max_length=100)
    timezone: str = Field(
        "UTC", max_length=64, pattern=NO_CONTROLS, description="an IANA time zone, e.g. Europe/Paris"
    )


class SubscriberPatch(BaseModel):
    """What an editor may change; a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200, pattern=NO_CONTROLS)
    status: SettableStatus | None = None
    frequency: FrequencyName | None = None
    topics: Topics | None = Field(None, max_length=100)
    timezone: str | None = Field(
        None, max_length=64, pattern=NO_CONTROLS, description="an IANA time zone, e.g. Europe/Paris"
    )


class SendStartedOut(BaseModel):
    """A send started in the background: follow it in GET /api/sends by its key."""

    key: str
    slug: str


class SubscriberRecordOut(BaseModel):
    """Every stored field of a subscriber row, for a data-access request."""

    id: int
    email: str
    name: str
    status: str
    frequency: str
    topics: list[str]
    timezone: str
    created_at: datetime
    updated_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None


class DeliveryOut(BaseModel):
    send_key: str
    kind: str
    issue_slug: str | None
    email: str
    status: str
    attempts: int
    last_error: str | None
    message_id: str | None
    sent_at: datetime | None


class ExportOut(BaseModel):
    """What we hold about one person: their row and every message planned or sent to them."""

    exported_at: datetime
    subscriber: SubscriberRecordOut
    deliveries: list[DeliveryOut]


class RemovedOut(BaseModel):
    email: str
    removed: bool


class QueueIn(BaseModel):
    at: datetime = Field(description="when to send: ISO 8601 with a time zone")


class QueuedOut(BaseModel):
    slug: str
    send_at: datetime
    status: str
    source: str
    note: str
    created_at: datetime
    updated_at: datetime


class UnqueuedOut(BaseModel):
    slug: str
    unqueued: bool = Field(description="false when the issue was not queued")


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses an operation can answer."""
    words = {
        400: "Bad request",
        401: "Missing or wrong bearer token",
        404: "Not found",
        409: "Conflict",
        413: "Request body too large",
        422: "Invalid input",
        503: "Admin API disabled (no token configured) or database unavailable",
    }
    return {code: {"model": ErrorOut, "description": words[code]} for code in codes}
