"""The issue email under each analytics setting, byte for byte (issue #16, item 3).

Turning click counting off, on (per link, the default) or per subscriber
changes the links and what the footer says is counted; each variant is sent
through the real send path (file transport, fixed clock and secret) and
compared with its golden file (``pytest --update-golden`` to accept a change).
The default variant is the same mail as ``test_golden``'s ``issue-email.eml``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from publisher.config import load_settings
from publisher.ops.send import send_issue
from publisher.store import open_store
from tests.fixtures_golden import (
    SENT_AT,
    SUBSCRIBED_AT,
    check_golden,
    copy_sample_project,
    golden_environ,
    only_eml,
)

ISSUE = "summer-of-water"
MODES: dict[str, dict[str, Any]] = {
    "issue-email-clicks-off.eml": {"clicks": False},
    "issue-email.eml": {},  # the defaults: clicks counted per link, never per reader
    "issue-email-per-subscriber.eml": {"per_subscriber": True},
}
FOOTER = {
    "issue-email-clicks-off.eml": "We count no clicks",
    "issue-email.eml": "never per reader",
    "issue-email-per-subscriber.eml": "We record which links in our issues you click",
}


@pytest.fixture
def golden_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    wanted = golden_environ()
    for key in [k for k in os.environ if k.startswith("PUBLISHER_") and k not in wanted]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PUBLISHER_SECRET_KEY", wanted["PUBLISHER_SECRET_KEY"])
    return copy_sample_project(tmp_path)


def _flat(eml: bytes) -> str:
    """The mail's text with quoted-printable soft breaks and =3D undone (enough to search it)."""
    return eml.decode("ascii").replace("=\r\n", "").replace("=3D", "=")


@pytest.mark.parametrize("name", list(MODES))
def test_the_issue_email_under_each_analytics_setting_matches_golden(
    name: str, golden_config: Path, update_golden: bool
) -> None:
    data = yaml.safe_load(golden_config.read_text())
    data.setdefault("analytics", {}).update(MODES[name])
    golden_config.write_text(yaml.safe_dump(data))
    settings = load_settings(golden_config, environ=golden_environ())
    with open_store(settings.database.url) as store:
        store.subscribers.add("zoe@example.org", now=SUBSCRIBED_AT, name="Zoë Lovelace")
        outcome = send_issue(settings, store, ISSUE, clock=lambda: SENT_AT)
    assert outcome.drain is not None and outcome.drain.sent == 1, outcome
    eml = only_eml(settings.paths.outbox)
    flat = _flat(eml)
    assert FOOTER[name] in flat and "https://news.example.org/privacy" in flat
    redirects = re.findall(r'href="(https://news\.example\.org/r/[^"]+)"', flat)
    if name == "issue-email-clicks-off.eml":
        assert redirects == []
    elif name == "issue-email.eml":
        assert redirects and not any("." in r.rsplit("/", 1)[1] for r in redirects)
    else:
        assert redirects and len({r.rsplit(".", 1)[1] for r in redirects}) == 1
    check_golden([(name, eml)], update=update_golden)
