"""The settings of each config.yaml section but ``hooks``: one frozen pydantic model per section.

Every key has a sane default so an empty file works; ``extra="forbid"`` makes
an unknown key an error, and the validators say what was expected.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, field_validator

from publisher.config.checks import WEEKDAYS, check_hhmm, check_timezone, parse_duration

_MAILBOX = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AuthorConfig(_Section):
    name: str = "The Editors"
    email: str = "editors@example.org"


class SiteConfig(_Section):
    title: str = "Publisher"
    url: str = "https://news.example.org"
    description: str = ""
    language: str = "en"
    timezone: str = "UTC"
    author: AuthorConfig = AuthorConfig()
    postal_address: str = Field(
        default="", max_length=300
    )  # in every mail's footer (CAN-SPAM, commercial mail)

    @field_validator("postal_address")
    @classmethod
    def _postal(cls, v: str) -> str:
        if any(not c.isprintable() for c in v):
            raise ValueError("write the postal address on one line (commas between its parts)")
        return v.strip()

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"expected an absolute http(s) URL, got {v!r}")
        return v.rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_timezone(v)

    @property
    def domain(self) -> str:
        """Host part of the site URL: the domain of tag: ids, Message-IDs and List-Id."""
        return re.sub(r"^https?://", "", self.url).split("/")[0].split(":")[0]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class PathsConfig(_Section):
    issues: Path = Path("issues")
    templates: Path = Path("templates")
    output: Path = Path("site")
    outbox: Path = Path("outbox")
    state: Path = Path(".publisher")  # secret key file, scheduler job store


class DatabaseConfig(_Section):
    url: str = "sqlite:///publisher.db"


class SmtpConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    password_env: str | None = None
    timeout: float = Field(default=30.0, gt=0)


class RateConfig(_Section):
    per_second: float = Field(default=0, ge=0)
    per_hour: int = Field(default=0, ge=0)


class DkimConfig(_Section):
    domain: str
    selector: str
    private_key_file: Path  # PEM RSA, >= 1024 bits (2048 advised)
    ed25519_key_file: Path | None = None  # optional second signature (RFC 8463)
    ed25519_selector: str | None = None  # its own selector; default "<selector>-ed25519"


class EmailConfig(_Section):
    from_: str = Field(default="Publisher <news@example.org>", alias="from")
    reply_to: str | None = None
    transport: Literal["file", "smtp"] = "file"
    smtp: SmtpConfig = SmtpConfig()
    concurrency: int = Field(default=4, ge=1, le=64)
    rate: RateConfig = RateConfig()
    dkim: DkimConfig | None = None
    size_warn_kb: int = Field(default=90, ge=1)
    size_limit_kb: int = Field(default=102, ge=1)
    test_prefix: str = Field(default="[TEST] ", max_length=40)  # subject prefix of `send --to` copies
    commercial: bool = False  # commercial mail: CAN-SPAM wants site.postal_address in every footer
    unsubscribe_mailbox: str | None = None  # the mailto: of List-Unsubscribe; only a mailbox that is read

    @field_validator("unsubscribe_mailbox")
    @classmethod
    def _mailbox(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        if not _MAILBOX.match(v.strip()):
            raise ValueError(f"expected a bare address such as unsubscribe@example.org, got {v!r}")
        return v.strip()

    @field_validator("test_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if any(c in v for c in "\r\n\0"):
            raise ValueError("the prefix must be one line of text")
        return v


class FeedsConfig(_Section):
    max_items: int = Field(default=50, ge=1)


class DailyConfig(_Section):
    at: str = "07:00"

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        return check_hhmm(v)


class WeeklyConfig(_Section):
    day: str = "monday"
    at: str = "07:00"

    @field_validator("day")
    @classmethod
    def _day(cls, v: str) -> str:
        if v.lower() not in WEEKDAYS:
            raise ValueError(f"expected a weekday name ({', '.join(WEEKDAYS)}), got {v!r}")
        return v.lower()

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        return check_hhmm(v)


class DigestsConfig(_Section):
    daily: DailyConfig = DailyConfig()
    weekly: WeeklyConfig = WeeklyConfig()
    max_latest: int = Field(default=10, ge=1)
    related: int = Field(default=3, ge=0)


class ScheduleConfig(_Section):
    max_lateness: timedelta = timedelta(hours=1)

    @field_validator("max_lateness", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return parse_duration(v) if isinstance(v, str) else v


class ScaleConfig(_Section):
    batch_size: int = Field(default=500, ge=1)


class BouncesConfig(_Section):
    soft_limit: int = Field(default=3, ge=1)  # soft bounces within soft_window that mark an address bounced
    soft_window: timedelta = timedelta(days=30)

    @field_validator("soft_window", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return parse_duration(v) if isinstance(v, str) else v


class MailboxConfig(_Section):
    """An IMAP mailbox `publisher inbound` polls, for bounces that land in a hosted mailbox."""

    host: str
    port: int | None = Field(default=None, ge=1, le=65535)  # default: 993 with ssl, else 143
    security: Literal["ssl", "starttls", "none"] = "ssl"
    username: str
    password_env: str = "PUBLISHER_IMAP_PASSWORD"  # the environment variable holding the password
    folder: str = "INBOX"
    processed_folder: str = "publisher-processed"  # created if missing; read mail is moved here
    poll_seconds: float = Field(
        default=60, gt=0, le=1500
    )  # poll interval; with IDLE, how often it is renewed
    batch: int = Field(default=200, ge=1, le=5000)  # messages per fetch, applied in one transaction


class InboundConfig(_Section):
    bounce_domain: str | None = None  # the VERP envelope sender's domain; default: the From domain
    listen: str | None = None  # host:port for `publisher inbound` (SMTP; LMTP with lmtp: true)
    lmtp: bool = False
    max_size: int = Field(default=10 * 1024 * 1024, ge=1024)  # bytes of one inbound message
    per_client_per_minute: int = Field(default=6000, ge=1)  # messages one client may hand us a minute
    mailbox: MailboxConfig | None = None  # poll this IMAP mailbox too (or instead of listening)


class WebConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    api_token_env: str = "PUBLISHER_API_TOKEN"
    header_timeout: float = Field(default=10.0, gt=0)  # seconds to send a request's headers
    keep_alive_timeout: int = Field(default=5, ge=1)  # seconds an idle connection stays open
    max_header_bytes: int = Field(default=16384, ge=1024, le=1048576)  # request line + headers
    trusted_proxies: tuple[IPvAnyNetwork, ...] = ()  # peers whose X-Forwarded-For/-Proto is believed
    # Where people reach this app (its links, the same-origin check); None: site.url.
    public_url: str | None = None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"expected an absolute http(s) URL, got {v!r}")
        return v.rstrip("/") if v is not None else None


class AnalyticsConfig(_Section):
    """Click counting: per send and per link by default, never per person unless turned on."""

    clicks: bool = True  # links in issue mail go through /r/<token>; false leaves them as written
    per_subscriber: bool = False  # tokens also name the recipient (the footer and /privacy say so)
    retention: timedelta = timedelta(days=90)  # raw click and open events older: deleted by `publisher run`
    prefetch_seconds: int = Field(default=60, ge=0)  # a click this soon after the send started: a machine
    opens: bool = False  # a 1x1 image at /o/<token> in the HTML part (names the send, not the reader)
    # Sunsetting (only with per_subscriber): no human click for this long, over at least
    # sunset_min_issues issues, earns one re-engagement mail; no click within sunset_grace pauses.
    sunset: bool = True
    sunset_after: timedelta = timedelta(days=180)
    sunset_min_issues: int = Field(default=5, ge=1)
    sunset_grace: timedelta = timedelta(days=14)

    @field_validator("retention", "sunset_after", "sunset_grace", mode="before")
    @classmethod
    def _retention(cls, v: Any) -> Any:
        return parse_duration(v) if isinstance(v, str) else v


class SequencesConfig(_Section):
    """Onboarding sequences (``sequences/<name>/NN-slug.md``): when in the reader's day they may arrive."""

    # Local wall-clock window "HH:MM-HH:MM" (end exclusive; 24:00 allowed): no 3 a.m. mail.
    send_at: str = "09:00-17:00"

    @field_validator("send_at")
    @classmethod
    def _send_at(cls, v: str) -> str:
        start, sep, end = str(v).partition("-")
        if not sep or (end.strip() != "24:00" and not re.match(r"^([01]\d|2[0-3]):[0-5]\d$", end.strip())):
            raise ValueError(f"expected a window such as 09:00-17:00, got {v!r}")
        check_hhmm(start.strip())
        if end.strip() <= start.strip():
            raise ValueError(f"the window must end after it starts (same local day), got {v!r}")
        return f"{start.strip()}-{end.strip()}"
