"""The admin API's request and response shapes (pydantic), so /openapi.json describes every answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


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
