"""Handing messages to a mail server (or to .eml files): connections, retries, rate, DKIM.

With ``store`` this is the only code that touches the outside world; it knows
nothing of the database. ``transports(settings, send_key)`` picks the
configured transport; ``DeliveryPool`` drives ``email.concurrency`` of them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from publisher.config import Settings
from publisher.deliver.envelope import (
    Deferred,
    Envelope,
    FatalDeliveryError,
    Rejected,
    Result,
    Status,
    is_hard_bounce,
)
from publisher.deliver.filebox import FileTransport, outbox_for, safe_name
from publisher.deliver.pool import DeliveryPool, Transport
from publisher.deliver.ratelimit import RateLimiter
from publisher.deliver.retry import RetryPolicy
from publisher.deliver.signing import DkimSigner
from publisher.deliver.single import send_one
from publisher.deliver.smtp import SmtpParams, SmtpTransport

__all__ = [
    "Deferred",
    "DeliveryPool",
    "DkimSigner",
    "Envelope",
    "FatalDeliveryError",
    "FileTransport",
    "RateLimiter",
    "Rejected",
    "Result",
    "RetryPolicy",
    "SmtpParams",
    "SmtpTransport",
    "Status",
    "Transport",
    "describe_transport",
    "is_hard_bounce",
    "outbox_for",
    "safe_name",
    "send_one",
    "signer_for",
    "transport_factory",
]


def transport_factory(
    settings: Settings, send_key: str, *, environ: dict[str, str] | None = None
) -> Callable[[], Transport]:
    """A maker of fresh transports as configured (one per pool connection)."""
    if settings.email.transport == "file":
        folder: Path = outbox_for(settings.paths.outbox, send_key)
        return lambda: FileTransport(folder)
    params = SmtpParams.from_settings(settings, environ)
    return lambda: SmtpTransport(params)


def signer_for(settings: Settings) -> DkimSigner | None:
    return DkimSigner.from_config(settings.email.dkim) if settings.email.dkim else None


def limiter_for(settings: Settings) -> RateLimiter:
    return RateLimiter(settings.email.rate.per_second, settings.email.rate.per_hour)


def describe_transport(settings: Settings, send_key: str) -> str:
    """Where mail goes, in words, for command output."""
    if settings.email.transport == "file":
        return f".eml files in {outbox_for(settings.paths.outbox, send_key)}"
    smtp = settings.email.smtp
    return f"SMTP {smtp.host}:{smtp.port} ({smtp.security}, {settings.email.concurrency} connection(s))"
