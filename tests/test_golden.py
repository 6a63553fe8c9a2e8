"""The bytes readers receive, compared with tests/golden/ byte for byte (issue #18, item 6).

Each output is made through the entry point a user or the app uses, so a
refactor inside ``publisher`` cannot change them unnoticed: the feeds and the
build's issue email by `publisher build`, the issue email by the send the
`publisher send` command runs (with a fixed clock), the digest by
`publisher digest --now`, and the confirmation mail by a sign-up over HTTP to
the real web app (with a fixed clock). Mail is read from the file transport's
outbox. A deliberate change: ``pytest tests/test_golden.py --update-golden``,
then review the diff of tests/golden/.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from publisher.config import Settings, load_settings
from publisher.models import Frequency
from publisher.ops.send import send_issue
from publisher.store import open_store
from publisher.web import ServerHandle, create_app
from tests.fixtures_golden import (
    DIGEST_AT,
    SENT_AT,
    SIGNED_UP_AT,
    SUBSCRIBED_AT,
    check_golden,
    copy_sample_project,
    golden_environ,
    only_eml,
    run_cli,
)
from tests.polling import wait_for

ISSUE = "summer-of-water"  # several articles, its own subject and preheader
BUILD_EMAIL = "measuring-a-city-by-its-benches"  # an issue with an image
FEEDS = ("feed.xml", "atom.xml", "feed.json")


@pytest.fixture
def golden_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the sample project (config.yaml as it is) whose only PUBLISHER_* variable is the key."""
    wanted = golden_environ()
    for key in [k for k in os.environ if k.startswith("PUBLISHER_") and k not in wanted]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PUBLISHER_SECRET_KEY", wanted["PUBLISHER_SECRET_KEY"])
    return copy_sample_project(tmp_path)


def _settings(config: Path) -> Settings:
    return load_settings(config, environ=golden_environ())


def _add_subscriber(settings: Settings, email: str, name: str, **choices: str) -> None:
    with open_store(settings.database.url) as store:
        store.subscribers.add(email, now=SUBSCRIBED_AT, name=name, **choices)


def test_feeds_and_the_built_email_match_golden(golden_config: Path, update_golden: bool) -> None:
    out = golden_config.parent / "site"
    run_cli("build", "--config", str(golden_config), "--out", str(out))
    outputs = [(name, (out / name).read_bytes()) for name in FEEDS]
    outputs.append((f"build-{BUILD_EMAIL}.eml", (out / "emails" / f"{BUILD_EMAIL}.eml").read_bytes()))
    check_golden(outputs, update=update_golden)


def test_the_issue_email_a_subscriber_receives_matches_golden(
    golden_config: Path, update_golden: bool
) -> None:
    settings = _settings(golden_config)
    _add_subscriber(settings, "zoe@example.org", "Zoë Lovelace")
    with open_store(settings.database.url) as store:
        outcome = send_issue(settings, store, ISSUE, clock=lambda: SENT_AT)
    assert outcome.drain is not None and outcome.drain.sent == 1, outcome
    check_golden([("issue-email.eml", only_eml(settings.paths.outbox))], update=update_golden)


def test_the_daily_digest_matches_golden(golden_config: Path, update_golden: bool) -> None:
    settings = _settings(golden_config)
    _add_subscriber(
        settings, "asa@example.org", "Åsa Lindqvist", frequency=Frequency.DAILY, timezone="Europe/London"
    )
    said = run_cli("digest", "daily", "--now", DIGEST_AT, "--config", str(golden_config))
    assert "sent 1 message(s)" in said, said
    check_golden([("digest-daily.eml", only_eml(settings.paths.outbox))], update=update_golden)


def test_the_confirmation_mail_of_a_sign_up_matches_golden(
    golden_config: Path, update_golden: bool, live_server: Callable[[Settings, FastAPI], ServerHandle]
) -> None:
    settings = _settings(golden_config)
    handle = live_server(settings, create_app(settings, clock=lambda: SIGNED_UP_AT, environ={}))
    form = {
        "email": "Zoe@Example.org",
        "name": "Zoë Lovelace",
        "frequency": "weekly",
        "timezone": "Europe/Paris",
        "topics": "science",
    }
    answer = httpx.post(f"{handle.url}/subscribe", data=form, timeout=10)
    assert answer.status_code == 200, answer.text
    folder = settings.paths.outbox / "web-confirmations"  # written after the answer has gone out
    wait_for(lambda: any(folder.glob("*.eml")), timeout=20)
    check_golden([("confirmation.eml", only_eml(folder))], update=update_golden)
