"""The whole validated configuration, and the site's signing secret."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field

from publisher.config.checks import check_secret
from publisher.config.hooks import HooksConfig
from publisher.config.sections import (
    AnalyticsConfig,
    BouncesConfig,
    DatabaseConfig,
    DigestsConfig,
    EmailConfig,
    FeedsConfig,
    InboundConfig,
    PathsConfig,
    ScaleConfig,
    ScheduleConfig,
    SequencesConfig,
    SiteConfig,
    WebConfig,
    _Section,
)


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
    analytics: AnalyticsConfig = AnalyticsConfig()
    sequences: SequencesConfig = SequencesConfig()
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
