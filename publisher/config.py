"""config.yaml: load, apply environment overrides, validate.

Every key has a sane default so an empty file works; unknown keys and wrong
types fail at start with the key's path, its line in the file, the expected
type and the value given, so nothing half-configured ever sends mail.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import os
import re
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, ValidationError, field_validator

from publisher.errors import ConfigError, Problem, and_more, relpath

ENV_PREFIX = "PUBLISHER_"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_MAILBOX = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
MIN_SECRET_BYTES = 32
SECRET_HINT = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


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
    postal_address: str = Field("", max_length=300)  # in every mail's footer (CAN-SPAM, commercial mail)

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
    port: int = Field(25, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    password_env: str | None = None
    timeout: float = Field(30.0, gt=0)


class RateConfig(_Section):
    per_second: float = Field(0, ge=0)
    per_hour: int = Field(0, ge=0)


class DkimConfig(_Section):
    domain: str
    selector: str
    private_key_file: Path  # PEM RSA, >= 1024 bits (2048 advised)
    ed25519_key_file: Path | None = None  # optional second signature (RFC 8463)
    ed25519_selector: str | None = None  # its own selector; default "<selector>-ed25519"


class EmailConfig(_Section):
    from_: str = Field("Publisher <news@example.org>", alias="from")
    reply_to: str | None = None
    transport: Literal["file", "smtp"] = "file"
    smtp: SmtpConfig = SmtpConfig()
    concurrency: int = Field(4, ge=1, le=64)
    rate: RateConfig = RateConfig()
    dkim: DkimConfig | None = None
    size_warn_kb: int = Field(90, ge=1)
    size_limit_kb: int = Field(102, ge=1)
    test_prefix: str = Field("[TEST] ", max_length=40)  # subject prefix of `send --to` copies
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
    max_items: int = Field(50, ge=1)


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
    max_latest: int = Field(10, ge=1)
    related: int = Field(3, ge=0)


class ScheduleConfig(_Section):
    max_lateness: timedelta = timedelta(hours=1)

    @field_validator("max_lateness", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return parse_duration(v) if isinstance(v, str) else v


class ScaleConfig(_Section):
    batch_size: int = Field(500, ge=1)


class BouncesConfig(_Section):
    soft_limit: int = Field(3, ge=1)  # soft bounces within soft_window that mark an address bounced
    soft_window: timedelta = timedelta(days=30)

    @field_validator("soft_window", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return parse_duration(v) if isinstance(v, str) else v


class MailboxConfig(_Section):
    """An IMAP mailbox `publisher inbound` polls, for bounces that land in a hosted mailbox."""

    host: str
    port: int | None = Field(None, ge=1, le=65535)  # default: 993 with ssl, else 143
    security: Literal["ssl", "starttls", "none"] = "ssl"
    username: str
    password_env: str = "PUBLISHER_IMAP_PASSWORD"  # the environment variable holding the password
    folder: str = "INBOX"
    processed_folder: str = "publisher-processed"  # created if missing; read mail is moved here
    poll_seconds: float = Field(60, gt=0, le=1500)  # poll interval; with IDLE, how often it is renewed
    batch: int = Field(200, ge=1, le=5000)  # messages per fetch, applied in one transaction


class InboundConfig(_Section):
    bounce_domain: str | None = None  # the VERP envelope sender's domain; default: the From domain
    listen: str | None = None  # host:port for `publisher inbound` (SMTP; LMTP with lmtp: true)
    lmtp: bool = False
    max_size: int = Field(10 * 1024 * 1024, ge=1024)  # bytes of one inbound message
    per_client_per_minute: int = Field(6000, ge=1)  # messages one client may hand us a minute
    mailbox: MailboxConfig | None = None  # poll this IMAP mailbox too (or instead of listening)


class WebConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_token_env: str = "PUBLISHER_API_TOKEN"
    header_timeout: float = Field(10.0, gt=0)  # seconds to send a request's headers
    keep_alive_timeout: int = Field(5, ge=1)  # seconds an idle connection stays open
    max_header_bytes: int = Field(16384, ge=1024, le=1048576)  # request line + headers
    trusted_proxies: tuple[IPvAnyNetwork, ...] = ()  # peers whose X-Forwarded-For/-Proto is believed
    # Where people reach this app (its links, the same-origin check); None: site.url.
    public_url: str | None = None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"expected an absolute http(s) URL, got {v!r}")
        return v.rstrip("/") if v is not None else None


class SesHookConfig(_Section):
    """Amazon SES through SNS: only messages from these topics are believed (any AWS account can sign)."""

    topics: tuple[str, ...] = ()  # TopicArns; empty: /hooks/ses is off (503)

    @field_validator("topics")
    @classmethod
    def _arns(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for arn in v:
            if not _TOPIC_ARN.match(arn):
                raise ValueError(
                    f"expected an SNS topic ARN such as arn:aws:sns:eu-west-1:123456789012:ses, got {arn!r}"
                )
        return v


class PostmarkHookConfig(_Section):
    """Postmark signs nothing: the webhook URL carries HTTP basic auth, optionally from known networks."""

    username: str | None = None  # with the password in ``password_env``; either unset: off (503)
    password_env: str = "PUBLISHER_POSTMARK_HOOK_PASSWORD"
    networks: tuple[IPvAnyNetwork, ...] = ()  # empty: any source address


class MailgunHookConfig(_Section):
    signing_key_env: str = "PUBLISHER_MAILGUN_SIGNING_KEY"  # the HTTP webhook signing key; unset: off


class SendgridHookConfig(_Section):
    public_key: str | None = None  # the verification key as SendGrid shows it (base64 DER); unset: off

    @field_validator("public_key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        try:
            key = serialization.load_der_public_key(base64.b64decode(v.strip(), validate=True))
        except (ValueError, binascii.Error):
            raise ValueError(
                "expected the base64 public key SendGrid shows for the signed event webhook"
            ) from None
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("expected an ECDSA P-256 public key (SendGrid's signed event webhook)")
        return v.strip()


class HooksConfig(_Section):
    """ESP webhooks under /hooks/<provider>: each is off until its secret (or topic, or key) is set."""

    ses: SesHookConfig = SesHookConfig()
    postmark: PostmarkHookConfig = PostmarkHookConfig()
    mailgun: MailgunHookConfig = MailgunHookConfig()
    sendgrid: SendgridHookConfig = SendgridHookConfig()


class Settings(_Section):
    """The whole validated configuration; paths are absolute (resolved against the file)."""

    site: SiteConfig = SiteConfig()
    paths: PathsConfig = PathsConfig()
    database: DatabaseConfig = DatabaseConfig()
    email: EmailConfig = EmailConfig()
    feeds: FeedsConfig = FeedsConfig()
    digests: DigestsConfig = DigestsConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    scale: ScaleConfig = ScaleConfig()
    web: WebConfig = WebConfig()
    hooks: HooksConfig = HooksConfig()
    bounces: BouncesConfig = BouncesConfig()
    inbound: InboundConfig = InboundConfig()
    secret_env: str = "PUBLISHER_SECRET_KEY"
    base_dir: Path = Field(default=Path("."), exclude=True)

    def secret_key(self) -> bytes:
        """The signing secret: from ``secret_env``, else a generated per-install key file.

        The fallback keeps the embedded default working with no set-up while
        keeping the secret out of config.yaml; it is created once (mode 0600)
        and reused so Message-IDs and links stay stable.
        """
        value = os.environ.get(self.secret_env)
        if value:
            return check_secret(value.encode(), f"{self.secret_env} (environment)")
        keyfile = self.paths.state / "secret.key"
        if keyfile.exists():
            return check_secret(keyfile.read_bytes().strip(), str(keyfile))
        keyfile.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32).encode()
        fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        return key


def check_secret(value: bytes, where: str, what: str = "the secret key") -> bytes:
    """Refuse a secret (signing key, API token) short enough to guess or brute-force."""
    if len(value) < MIN_SECRET_BYTES:
        problem = Problem(where, f"{what} is {len(value)} bytes; at least {MIN_SECRET_BYTES} are needed")
        raise ConfigError([problem], hint=SECRET_HINT)
    return value


def check_timezone(v: str) -> str:
    """Refuse a time zone name the IANA database does not know."""
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Europe/Paris)") from exc
    return v


def check_hhmm(v: str) -> str:
    if not _HHMM.match(str(v)):
        raise ValueError(f"expected a time as HH:MM, got {v!r}")
    return str(v)


def parse_duration(v: str) -> timedelta:
    """'90s', '15m', '1h', '2d' -> timedelta."""
    m = _DURATION.match(v)
    if not m:
        raise ValueError(f"expected a duration such as 30m, 1h or 2d, got {v!r}")
    n, unit = float(m.group(1)), m.group(2)
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: n})


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path in a YAML mapping to its 1-based line, for error messages."""
    out: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, prefix: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                path = (*prefix, str(key.value))
                out[path] = key.start_mark.line + 1
                walk(value, path)

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return out
    if root is not None:
        walk(root, ())
    return out


def _env_overrides(environ: dict[str, str]) -> dict[tuple[str, ...], Any]:
    """PUBLISHER_EMAIL__SMTP__PORT=2525 -> {('email','smtp','port'): 2525} (values parsed as YAML)."""
    out: dict[tuple[str, ...], Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        out[path] = value
    return out


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[path[-1]] = value


def _describe(err: dict[str, Any], loc: tuple[str, ...]) -> str:
    kind = err["type"]
    given = err.get("input")
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    if kind == "missing":
        return "required key is missing"
    msg = err["msg"].removeprefix("Value error, ")
    if kind.startswith("value_error"):
        return msg
    return f"{msg} (got {given!r})"


def _unknown_key(loc: tuple[str, ...]) -> str:
    """'unknown key' with the likely intended key, as front matter does (`concurency` -> 'concurrency')."""
    known = _section_keys(loc[:-1])
    close = difflib.get_close_matches(loc[-1].lower(), known, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key (known here: {and_more(known)})" if known else "unknown key"


def _section_keys(section: tuple[str, ...]) -> tuple[str, ...]:
    """The keys config.yaml allows in ``section`` (a key path; () is the top level)."""
    model: Any = Settings
    for part in section:
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return ()
        kinds = (field.annotation, *get_args(field.annotation))
        model = next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)), None)
        if model is None:
            return ()
    return tuple(f.alias or n for n, f in model.model_fields.items() if not f.exclude)


def _resolve(settings: Settings, base: Path) -> Settings:
    """Make every relative path (and a relative SQLite URL) relative to the config file's folder."""

    def absolute(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    paths = settings.paths.model_copy(update={k: absolute(v) for k, v in settings.paths})
    db_url = settings.database.url
    m = re.match(r"^(sqlite(?:\+\w+)?:///)(?!/)(.+)$", db_url)
    if m and m.group(2) != ":memory:":
        db_url = m.group(1) + str(absolute(Path(m.group(2))))
    email = settings.email
    if email.dkim is not None:
        ed25519 = email.dkim.ed25519_key_file
        dkim = email.dkim.model_copy(
            update={
                "private_key_file": absolute(email.dkim.private_key_file),
                "ed25519_key_file": absolute(ed25519) if ed25519 else None,
            }
        )
        email = email.model_copy(update={"dkim": dkim})
    return settings.model_copy(
        update={
            "paths": paths,
            "database": settings.database.model_copy(update={"url": db_url}),
            "email": email,
            "base_dir": base,
        }
    )


def load_settings(
    path: Path | str | None = None,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Read ``path`` (default ./config.yaml; a missing default file means all defaults).

    ``overrides`` is a nested dict applied after the environment (tests use it).
    """
    environ = dict(os.environ) if environ is None else environ
    explicit = path is not None
    cfg_path = Path(path) if path is not None else Path("config.yaml")
    where = relpath(cfg_path)
    text = ""
    if cfg_path.exists():
        text = cfg_path.read_text(encoding="utf-8")
    elif explicit:
        raise ConfigError([Problem(where, "no such file")], hint="pass --config PATH to an existing file")
    try:
        data = yaml.safe_load(text) if text else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([Problem(where, f"not valid YAML: {getattr(exc, 'problem', exc)}", line)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([Problem(where, "the file must hold a mapping of sections (site:, email:, ...)")])
    lines = _key_lines(text)
    env = _env_overrides(environ)
    for key_path, value in env.items():
        _set_path(data, key_path, value)
    for key_path, value in _flatten(overrides or {}):
        _set_path(data, key_path, value)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"])
            dotted = ".".join(loc)
            env_name = ENV_PREFIX + "__".join(p.upper() for p in loc)
            if loc in env:
                problems.append(Problem(f"{env_name} (environment)", f"{dotted}: {_describe(err, loc)}"))
            else:
                line = _line_for(lines, loc)
                problems.append(Problem(where, f"{dotted}: {_describe(err, loc)}", line))
        raise ConfigError(
            problems, hint="see config.yaml in the project for every key and its default"
        ) from None
    return _resolve(settings, cfg_path.resolve().parent)


def _line_for(lines: dict[tuple[str, ...], int], loc: tuple[str, ...]) -> int | None:
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _flatten(d: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out: list[tuple[tuple[str, ...], Any]] = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.extend(_flatten(v, (*prefix, k)))
        else:
            out.append(((*prefix, k), v))
    return out
