"""Hostile names in every kind of mail: the parsed message has exactly the headers we wrote.

The attack (issue 12): a name that is an RFC 2047 encoded word hiding CR/LF, e.g.
``=?utf-8?q?x=0D=0AContent-Type:_text/html=0D=0A=0D=0A...?=``. ``email.headerregistry``
decodes it, and Pythons without the CVE-2024-6923 fix (3.11.7 here) write the CR/LF
out raw. Every mail kind is built by ``prepare_message`` + ``personalise``, whose
encoders never decode; these tests hold that whatever the Python patch level.
"""

from __future__ import annotations

import email.policy
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.config import Settings
from publisher.ops.confirm import confirmation_envelope
from publisher.render.digest import prepare_digest, render_digest
from publisher.render.email import PreparedMessage, make_recipient
from publisher.render.email_headers import clean_name
from publisher.web.pages import public_url
from tests.fixtures_email import SECRET, make_article

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ADDRESS = "target@example.org"
LIST_HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Feedback-ID",
    "MIME-Version",
    "Content-Type",
]
ONE_OFF_HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
]

_NASTY = "\r\n\x00\x85\u2028\u2029\u202e\u2066\u200f\x0b\x0c\t<>\"'\\=?:;,@"
encoded_words = st.builds(
    lambda head, body, charset, enc: f"=?{charset}?{enc}?{head}=0D=0A{body}=0D=0A=0D=0A<b>x</b>?=",
    st.text(alphabet="abcXYZ_", max_size=8),
    st.sampled_from(["Content-Type:_text/html", "Bcc:_all@evil.example", "X-Evil:_1", "\x00"]),
    st.sampled_from(["utf-8", "UTF-8", "iso-8859-1"]),
    st.sampled_from(["q", "Q", "b"]),
)
hostile_names = st.one_of(
    encoded_words,
    st.text(alphabet=st.sampled_from(list(_NASTY) + list("Ana Zoë 李 ")), max_size=60),
    st.builds(lambda a, w: f"{a} {w} {a}", st.text(max_size=20), encoded_words),
    st.builds(
        lambda piece: (piece * 10_000)[:10_000], st.text(alphabet=_NASTY + "ab", min_size=1, max_size=4)
    ),
    st.just("=?utf-8?q?x=0D=0AContent-Type:_text/html=0D=0A=0D=0A<h1>Win</h1>?="),
)


def parse(raw: bytes) -> EmailMessage:
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def check(raw: bytes, name: str, expected: list[str], reply_to: bool) -> None:
    """Exactly the headers we wrote, no defects anywhere, the name back as we cleaned it."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):  # each line is a header we name, or a folded continuation
        assert line[:1] == b" " or line.split(b":", 1)[0].decode() in [*expected, "Reply-To"], line
    assert b"\r\n\r\n<b>" not in raw and b"\n\n<h1>" not in raw
    msg = parse(raw)
    names = [k for k in msg]
    wanted = list(expected)
    if reply_to:
        wanted.insert(5, "Reply-To")
    assert names == wanted
    assert msg.defects == []
    for key in names:
        value = msg[key]
        assert getattr(value, "defects", ()) == (), (key, value.defects)
        assert "\r" not in str(value) and "\n" not in str(value)
    [to] = msg["To"].addresses
    assert to.addr_spec == ADDRESS
    assert to.display_name == clean_name(name)
    parts = [p.get_content_type() for p in msg.walk()]
    assert parts == ["multipart/alternative", "text/plain", "text/html"]
    for part in msg.walk():
        assert part.defects == []


@pytest.fixture(scope="module")
def digest(mail_settings: Settings) -> PreparedMessage:
    rendered = render_digest(mail_settings, "daily", [make_article("a"), make_article("b")], {})
    return prepare_digest(mail_settings, rendered, send_key="digest:daily:x", date=NOW, frequency="daily")


@pytest.fixture(scope="module")
def kinds(
    mail_settings: Settings, mail_prepared: PreparedMessage, digest: PreparedMessage
) -> dict[str, Callable[[str], bytes]]:
    """One builder per kind of mail we send: a name in, the bytes on the wire out."""

    def list_mail(prepared: PreparedMessage, send_key: str) -> Callable[[str], bytes]:
        return lambda name: prepared.personalise(
            make_recipient(mail_settings, SECRET, send_key, ADDRESS, name)
        )

    def one_off(already: bool) -> Callable[[str], bytes]:
        """The bytes ``ops.confirm`` hands to the transport, as the web app has it send them."""
        return lambda name: (
            confirmation_envelope(
                mail_settings,
                SECRET,
                ADDRESS,
                name,
                already=already,
                now=NOW,
                base_url=public_url(mail_settings),
            ).data
        )

    return {
        "issue": list_mail(mail_prepared, "issue:benches"),
        "test copy": list_mail(mail_prepared, "test:benches"),
        "digest": list_mail(digest, "digest:daily:x"),
        "confirmation": one_off(False),
        "already subscribed": one_off(True),
    }


@pytest.mark.parametrize("kind", ["issue", "test copy", "digest", "confirmation", "already subscribed"])
def test_the_known_attack_injects_nothing(kind: str, kinds: dict, mail_settings: Settings) -> None:
    name = "=?utf-8?q?x=0D=0AContent-Type:_text/html=0D=0A=0D=0A<h1>Win</h1>?="
    raw = kinds[kind](name)
    expected = ONE_OFF_HEADERS if kind in ("confirmation", "already subscribed") else LIST_HEADERS
    check(raw, name, expected, bool(mail_settings.email.reply_to))
    assert b"<h1>Win</h1>" not in raw.split(b"\r\n\r\n", 1)[0]


@pytest.mark.parametrize("kind", ["issue", "test copy", "digest", "confirmation", "already subscribed"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=hostile_names)
def test_hostile_names_leave_the_headers_as_written(
    kind: str, name: str, kinds: dict, mail_settings: Settings
) -> None:
    raw = kinds[kind](name)
    expected = ONE_OFF_HEADERS if kind in ("confirmation", "already subscribed") else LIST_HEADERS
    check(raw, name, expected, bool(mail_settings.email.reply_to))
