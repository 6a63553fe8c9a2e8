"""Issues built in code for the email tests (tests must not read shared samples)."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from lxml import html as lxml_html

from publisher.config import Settings, load_settings
from publisher.models import Article, Issue, Recipient
from publisher.render.email import PreparedMessage, make_recipient, prepare_issue_email

ISSUE_DATE = datetime(2026, 4, 7, 9, 30, tzinfo=UTC)

RICH_BODY = """\
How do you tell whether a street is friendly to older people? You could commission a survey,
convene a panel and publish a report. Or you could [walk down it](walks/benches.html) and count.

| Street | Length (m) | Public benches | Benches per 100 m | Notes on the survey, long header |
|---|---:|---:|---:|---|
| Station Road | 820 | 24 | 2.9 | counted twice, on a wet Saturday and a dry Sunday |
| Orchard Lane | 540 | 55 | 10.2 | https://example.org/a/very/long/path/without/any/spaces/at/all/in/it |

## Why benches matter

- A bench is a tiny piece of infrastructure.
- It decides whether the shops are *reachable* at all.
  1. first nested
  2. second nested

> Quoted wisdom from Jane Jacobs.

![Chart of benches](media/bench-count.png)

A long link: https://example.org/a/very/long/url/that/goes/on/and/on/and/on/and/on/forever/and/ever/amen
and **strong** text with a footnote.[^1]

```
curl https://example.org/api/v1/some/very/long/endpoint?with=query&and=more&parameters=that&never=end
```

[^1]: The volunteers counted [every bench](https://example.org/benches).
"""


def make_article(slug: str = "benches", **kw: Any) -> Article:
    defaults: dict[str, Any] = {
        "slug": slug,
        "title": "Measuring a City by Its Benches",
        "date": ISSUE_DATE,
        "body": RICH_BODY,
        "source": Path(f"issues/{slug}.md"),
        "issue_slug": slug,
        "summary": "How do you tell whether a street is friendly to older people?",
        "author": "Priya Natarajan",
        "tags": ("cities",),
        "image": "media/bench-count.png",
        "image_alt": "Bar chart of public benches counted on five streets",
    }
    defaults.update(kw)
    return Article(**defaults)


def make_issue(*articles: Article, **kw: Any) -> Issue:
    arts = articles or (make_article(),)
    first = arts[0]
    defaults: dict[str, Any] = {
        "slug": first.issue_slug,
        "title": first.title,
        "subject": first.title,
        "date": first.date,
        "articles": arts,
        "source": first.source,
    }
    defaults.update(kw)
    return Issue(**defaults)


def make_folder_issue() -> Issue:
    arts = tuple(
        make_article(
            slug=f"water-{n}",
            title=f"Water piece {n}",
            issue_slug="summer-of-water",
            source=Path(f"issues/summer-of-water/water-{n}.md"),
            body=(
                f"Piece {n} about water.[^1] See [the map](maps/{n}.png).\n\n"
                f"## Where {n}\n\nText.\n\n[^1]: Note {n}.\n"
            ),
            image=None,
            order=n,
        )
        for n in (1, 2, 3)
    )
    return make_issue(
        *arts,
        slug="summer-of-water",
        title="A Summer of Water",
        subject="The Example Gazette: a summer of water",
        source=Path("issues/summer-of-water/index.md"),
        intro="This issue is about **water** in the city. [Background](background/).",
        preheader="Rain gardens, a forgotten map of wells, and a jar of river water.",
        is_folder=True,
    )


def parse(raw: bytes) -> EmailMessage:
    """Parse as a mail client does."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def part_text(msg: EmailMessage, kind: str) -> str:
    """A part's decoded text with CRLF line ends normalised, as a client shows it."""
    part = msg.get_body((kind,))
    assert part is not None, f"no text/{kind} part"
    return part.get_content().replace("\r\n", "\n")


ROOT = Path(__file__).resolve().parent.parent
SECRET = b"test-secret-0123456789abcdef0123456789"
SEND = "issue:benches"


@pytest.fixture(scope="module")
def mail_settings() -> Settings:
    """The repo's config.yaml and templates, module-wide (rendering is the slow part of these tests)."""
    return load_settings(
        ROOT / "config.yaml", environ={"PUBLISHER_SECRET_KEY": "test-secret-0123456789abcdef0123456789"}
    )


@pytest.fixture(scope="module")
def mail_prepared(mail_settings: Settings) -> PreparedMessage:
    """The rich issue, rendered and inlined once for the module."""
    return prepare_issue_email(mail_settings, make_issue(), send_key=SEND, date=ISSUE_DATE)


def recipient(settings: Settings, email: str = "ana@example.org", name: str = "Ana Souza") -> Recipient:
    return make_recipient(settings, SECRET, SEND, email, name)


def html_doc(msg: EmailMessage) -> lxml_html.HtmlElement:
    return lxml_html.document_fromstring(part_text(msg, "html"))
