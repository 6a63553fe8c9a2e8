"""config.yaml: load, apply environment overrides, validate.

Every key has a sane default so an empty file works; unknown keys and wrong
types fail at start with the key's path, its line in the file, the expected
type and the value given, so nothing half-configured ever sends mail.

``sections`` and ``hooks`` hold the models per section, ``settings`` the whole;
``load`` reads the file, ``env`` the overrides, ``yamlmap`` finds key lines and
``problems`` turns validation errors into messages.
"""

from publisher.config.checks import (
    MIN_SECRET_BYTES,
    SECRET_HINT,
    WEEKDAYS,
    check_hhmm,
    check_secret,
    check_timezone,
    parse_duration,
)
from publisher.config.env import ENV_PREFIX
from publisher.config.hooks import (
    HooksConfig,
    MailgunHookConfig,
    PostmarkHookConfig,
    SendgridHookConfig,
    SesHookConfig,
)
from publisher.config.load import load_settings
from publisher.config.sections import (
    AuthorConfig,
    BouncesConfig,
    DailyConfig,
    DatabaseConfig,
    DigestsConfig,
    DkimConfig,
    EmailConfig,
    FeedsConfig,
    InboundConfig,
    MailboxConfig,
    PathsConfig,
    RateConfig,
    ScaleConfig,
    ScheduleConfig,
    SequencesConfig,
    SiteConfig,
    SmtpConfig,
    WebConfig,
    WeeklyConfig,
)
from publisher.config.settings import Settings

__all__ = [
    "ENV_PREFIX",
    "MIN_SECRET_BYTES",
    "SECRET_HINT",
    "WEEKDAYS",
    "AuthorConfig",
    "BouncesConfig",
    "DailyConfig",
    "DatabaseConfig",
    "DigestsConfig",
    "DkimConfig",
    "EmailConfig",
    "FeedsConfig",
    "HooksConfig",
    "InboundConfig",
    "MailboxConfig",
    "MailgunHookConfig",
    "PathsConfig",
    "PostmarkHookConfig",
    "RateConfig",
    "ScaleConfig",
    "ScheduleConfig",
    "SendgridHookConfig",
    "SequencesConfig",
    "SesHookConfig",
    "Settings",
    "SiteConfig",
    "SmtpConfig",
    "WebConfig",
    "WeeklyConfig",
    "check_hhmm",
    "check_secret",
    "check_timezone",
    "load_settings",
    "parse_duration",
]
