"""Personalisation and the MIME layer: any name, subject or body must parse back exactly."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from publisher.config import Settings
from publisher.deliver.smtp_session import smtp_body
from publisher.errors import RenderError
from publisher.render.email import prepare_message
from publisher.render.email_headers import clean_name, clean_text
from publisher.render.email_mime import slot
from publisher.render.email_qp import qp_value
from tests.fixtures_email import html_doc, parse, part_text, recipient


def test_lines_are_crlf_and_short(mail_settings, mail_prepared):
    raw = mail_prepared.personalise(recipient(mail_settings, name="Zoë " * 40))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert raw.isascii()


# Any Unicode at all, plus the nasty cases named in the brief.
NAMES = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=400),
    st.sampled_from(
        [
            'Ana "Zé" O\'Neil, Jr.',
            "<script>alert(1)</script>",
            "Eve\r\nBcc: victim@example.org",
            "مريم الحسيني",
            "👩🏽‍💻 Dev",
            "=?utf-8?q?Fake?=",
            "x" * 3000,
            "\u202eevil\u202c",
        ]
    ),
)


@pytest.mark.parametrize(
    "value",
    ["a" * 74 + "." * 5 + "b" * 200, "x" * 75 + ".y", "é" * 37 + ".." + "é" * 40, "Zoë " * 40, "." + "e" * 9],
)
def test_no_encoded_value_line_starts_with_a_dot(value: str) -> None:
    import quopri

    lines = qp_value(value).split(b"\r\n")
    assert not any(line.startswith(b".") for line in lines)
    assert all(len(line) <= 76 for line in lines)
    assert quopri.decodestring(b"\n".join(lines)).decode() == value


def assert_smtp_ready(raw: bytes) -> None:
    """What ``Envelope(smtp_ready=True)`` promises: the transport sends these bytes as they are."""
    assert raw.count(b"\n") == raw.count(b"\r\n") and raw.count(b"\r") == raw.count(b"\r\n")
    assert not raw.startswith(b".") and b"\n." not in raw  # no line needs SMTP dot-stuffing
    assert raw.endswith(b"\r\n")
    assert smtp_body(raw) is raw


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAMES)
def test_any_name_round_trips(mail_settings, mail_prepared, name):
    rcpt = recipient(mail_settings, name=name)
    raw = mail_prepared.personalise(rcpt)
    msg = parse(raw)
    expected = clean_name(name)
    assert msg.defects == []
    to = msg["To"]
    assert to.defects == ()
    assert to.addresses[0].addr_spec == "ana@example.org"
    assert to.addresses[0].display_name == expected
    assert msg.get_all("Bcc") is None
    assert sorted(msg.keys()) == sorted(parse(mail_prepared.personalise(recipient(mail_settings))).keys())
    greeting = f"Hi {expected}," if expected else "Hello,"
    text = part_text(msg, "plain")
    assert text.split("\n", 1)[0] == greeting
    doc = html_doc(msg)
    assert doc.find_class("greeting")[0].text_content() == greeting
    assert not doc.xpath("//script")
    assert max(len(line) for line in raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n")) <= 76
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert_smtp_ready(raw)


def test_bad_address_is_refused(mail_settings, mail_prepared):
    with pytest.raises(RenderError):
        mail_prepared.personalise(replace(recipient(mail_settings), email="a@b.org\r\nBcc: c@d.org"))
    with pytest.raises(RenderError):
        mail_prepared.personalise(replace(recipient(mail_settings), message_id="<a b@c>"))


def digest_like(settings: Settings, subject: str = "Your weekly digest", **kw):
    return prepare_message(
        settings,
        subject=subject,
        html=kw.pop(
            "html",
            f"<html><body><p>{slot('greeting')}</p><p>{slot('topic')}</p>"
            f'<a href="{slot("unsubscribe_url")}">Unsubscribe</a></body></html>',
        ),
        text=kw.pop("text", f"{slot('greeting')}\nTopic: {slot('topic')}\n{slot('unsubscribe_url')}\n"),
        send_key="digest:weekly:2026-W15",
        date=datetime(2026, 4, 13, 7, tzinfo=UTC),
        feedback_id="2026-W15:digest:weekly:news.example.org",
        **kw,
    )


def test_generic_prepare_message_with_extra_slot(mail_settings):
    prepared = digest_like(mail_settings)
    rcpt = replace(recipient(mail_settings), extra={"topic": "Cities & <Data>"})
    msg = parse(prepared.personalise(rcpt))
    assert part_text(msg, "plain") == f"Hi Ana Souza,\nTopic: Cities & <Data>\n{rcpt.unsubscribe_url}\n"
    assert "<p>Cities &amp; &lt;Data&gt;</p>" in part_text(msg, "html")
    with pytest.raises(RenderError, match="topic"):
        prepared.personalise(recipient(mail_settings))


def test_a_message_without_unsubscribe_link_is_refused(mail_settings):
    with pytest.raises(RenderError, match="no unsubscribe link"):
        digest_like(mail_settings, text="Hello\n")


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    subject=st.one_of(
        st.text(max_size=300), st.sampled_from(["a" * 1200, "x\r\nBcc: y@z.org", "=?utf-8?q?x?="])
    )
)
def test_any_subject_round_trips(mail_settings, subject):
    rcpt = replace(recipient(mail_settings), extra={"topic": "x"})
    raw = digest_like(mail_settings, subject=subject).personalise(rcpt)
    msg = parse(raw)
    assert msg["Subject"] == clean_text(subject)
    assert msg.get_all("Bcc") is None
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert_smtp_ready(raw)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pieces=st.lists(
        st.one_of(
            st.text(max_size=120), st.sampled_from(["name", "email", "topic"]).map(lambda k: ("slot", k))
        ),
        max_size=12,
    ),
    topic=st.text(max_size=200),
)
def test_quoted_printable_round_trips_any_body(mail_settings, pieces, topic):
    """Whatever the body and the values, the decoded part is the body with values filled in."""
    body = "".join(slot(p[1]) if isinstance(p, tuple) else p for p in pieces) + slot("unsubscribe_url")
    rcpt = replace(recipient(mail_settings), extra={"topic": topic})
    prepared = digest_like(mail_settings, text=body, html=f"<p>{body}</p>")
    raw = prepared.personalise(rcpt)
    vals = prepared.values(rcpt)
    expected = "".join(vals[p[1]] if isinstance(p, tuple) else p for p in pieces) + rcpt.unsubscribe_url
    expected = expected.replace("\r\n", "\n").replace("\r", "\n")
    assert part_text(parse(raw), "plain") == expected
    assert prepared.fill_text(rcpt).replace("\r\n", "\n").replace("\r", "\n") == expected
    _, _, body_bytes = raw.partition(b"\r\n\r\n")
    assert max(len(line) for line in body_bytes.split(b"\r\n")) <= 76
    assert_smtp_ready(raw)
