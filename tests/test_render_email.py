"""The issue email, parsed back the way mail clients parse it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import html5lib
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from lxml import html as lxml_html

from publisher.config import Settings, load_settings
from publisher.errors import RenderError
from publisher.models import Recipient
from publisher.render.email import (
    issue_email_files,
    make_recipient,
    prepare_issue_email,
    prepare_message,
    render_issue_email,
)
from publisher.render.email_headers import clean_name, clean_text
from publisher.render.email_mime import MARKER_PREFIX, slot
from publisher.render.inline import inline_css
from publisher.tokens import Purpose, message_id, read_token
from tests.fixtures_email import ISSUE_DATE, make_article, make_folder_issue, make_issue, parse, part_text

ROOT = Path(__file__).resolve().parent.parent
SECRET = b"test-secret"
SEND = "issue:benches"


@pytest.fixture(scope="module")
def repo_settings() -> Settings:
    return load_settings(ROOT / "config.yaml", environ={"PUBLISHER_SECRET_KEY": "test-secret"})


@pytest.fixture(scope="module")
def prepared(repo_settings: Settings):
    return prepare_issue_email(repo_settings, make_issue(), send_key=SEND, date=ISSUE_DATE)


def recipient(settings: Settings, email: str = "ana@example.org", name: str = "Ana Souza") -> Recipient:
    return make_recipient(settings, SECRET, SEND, email, name)


def html_doc(msg):
    return lxml_html.document_fromstring(part_text(msg, "html"))


# -- structure and headers -------------------------------------------------------------------------


def test_message_is_multipart_alternative_text_first(repo_settings, prepared):
    msg = parse(prepared.personalise(recipient(repo_settings)))
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert msg.defects == [] and all(p.defects == [] for p in parts)


def test_headers(repo_settings, prepared):
    rcpt = recipient(repo_settings)
    msg = parse(prepared.personalise(rcpt))
    assert str(msg["From"]) == "The Example Gazette <news@example.org>"
    assert msg["To"].addresses[0].display_name == "Ana Souza"
    assert msg["To"].addresses[0].addr_spec == "ana@example.org"
    assert msg["Subject"] == "Measuring a City by Its Benches"
    assert msg["Date"].datetime == ISSUE_DATE
    assert msg["Message-ID"] == message_id(SECRET, SEND, "ana@example.org", "news.example.org")
    assert msg["Reply-To"].addresses[0].addr_spec == "editors@example.org"
    assert msg["List-Id"] == "The Example Gazette <list.news.example.org>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Feedback-ID"] == "benches:issue:newsletter:news.example.org"
    uris = re.findall(r"<([^>]+)>", str(msg["List-Unsubscribe"]))
    assert uris == [rcpt.unsubscribe_url, "mailto:unsubscribe@news.example.org?subject=unsubscribe"]
    token = uris[0].rsplit("/", 1)[1]
    assert read_token(SECRET, Purpose.UNSUBSCRIBE, token) == "ana@example.org"
    for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe"):
        assert len(msg.get_all(name)) == 1


def test_lines_are_crlf_and_short(repo_settings, prepared):
    raw = prepared.personalise(recipient(repo_settings, name="Zoë " * 40))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert raw.isascii()


def test_build_is_deterministic(repo_settings):
    issue = make_issue()
    a = prepare_issue_email(repo_settings, issue, send_key=SEND, date=ISSUE_DATE)
    b = prepare_issue_email(repo_settings, issue, send_key=SEND, date=ISSUE_DATE)
    rcpt = recipient(repo_settings)
    assert a.personalise(rcpt) == b.personalise(rcpt)
    other = prepare_issue_email(repo_settings, issue, send_key="issue:other", date=ISSUE_DATE)
    boundary = parse(a.personalise(rcpt)).get_boundary()
    assert boundary.startswith("=_publisher_") and boundary != parse(other.personalise(rcpt)).get_boundary()


def test_message_id_is_per_send_and_subscriber(repo_settings):
    ids = {
        make_recipient(repo_settings, SECRET, s, e, "").message_id
        for s in ("a", "b")
        for e in ("x@a.org", "y@a.org")
    }
    assert len(ids) == 4
    assert make_recipient(repo_settings, SECRET, "a", "x@a.org", "X").message_id in ids


def test_personalise_many_subscribers(repo_settings, prepared):
    seen_ids = set()
    for n in range(60):
        rcpt = recipient(repo_settings, f"reader{n}@example.org", f"Reader Nº{n}" if n % 3 else "")
        msg = parse(prepared.personalise(rcpt))
        assert msg["To"].addresses[0].addr_spec == rcpt.email
        seen_ids.add(msg["Message-ID"])
        text = part_text(msg, "plain")
        doc = html_doc(msg)
        greeting = doc.find_class("greeting")[0].text_content()
        if n % 3:
            assert text.startswith(f"Hi Reader Nº{n},\n")
            assert greeting == f"Hi Reader Nº{n},"
            assert msg["To"].addresses[0].display_name == f"Reader Nº{n}"
        else:
            assert text.startswith("Hello,\n") and greeting == "Hello,"
            assert str(msg["To"]) == rcpt.email
        hrefs = [a.get("href") for a in doc.iter("a")]
        assert rcpt.unsubscribe_url in hrefs and rcpt.preferences_url in hrefs
        assert f"Unsubscribe: {rcpt.unsubscribe_url}" in text
        assert f"Change your preferences: {rcpt.preferences_url}" in text
        assert MARKER_PREFIX not in text and MARKER_PREFIX not in part_text(msg, "html")
    assert len(seen_ids) == 60


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


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAMES)
def test_any_name_round_trips(repo_settings, prepared, name):
    rcpt = recipient(repo_settings, name=name)
    raw = prepared.personalise(rcpt)
    msg = parse(raw)
    expected = clean_name(name)
    assert msg.defects == []
    to = msg["To"]
    assert to.defects == ()
    assert to.addresses[0].addr_spec == "ana@example.org"
    assert to.addresses[0].display_name == expected
    assert msg.get_all("Bcc") is None
    assert sorted(msg.keys()) == sorted(parse(prepared.personalise(recipient(repo_settings))).keys())
    greeting = f"Hi {expected}," if expected else "Hello,"
    text = part_text(msg, "plain")
    assert text.split("\n", 1)[0] == greeting
    doc = html_doc(msg)
    assert doc.find_class("greeting")[0].text_content() == greeting
    assert not doc.xpath("//script")
    assert max(len(line) for line in raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n")) <= 76
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_bad_address_is_refused(repo_settings, prepared):
    with pytest.raises(RenderError):
        prepared.personalise(replace(recipient(repo_settings), email="a@b.org\r\nBcc: c@d.org"))
    with pytest.raises(RenderError):
        prepared.personalise(replace(recipient(repo_settings), message_id="<a b@c>"))


def test_subject_and_title_cannot_inject_headers(repo_settings):
    issue = make_issue(subject="Hello\r\nBcc: victim@example.org\nX-Evil: 1 — ünïcode " + "long " * 30)
    prepared = prepare_issue_email(repo_settings, issue, send_key=SEND, date=ISSUE_DATE)
    msg = parse(prepared.personalise(recipient(repo_settings)))
    assert msg.get_all("Bcc") is None and msg.get_all("X-Evil") is None
    assert msg["Subject"].startswith("Hello Bcc: victim@example.org X-Evil: 1 — ünïcode long")


# -- the HTML part ---------------------------------------------------------------------------------


def test_only_media_rules_stay_and_keep_important(repo_settings, prepared):
    doc = html_doc(parse(prepared.personalise(recipient(repo_settings))))
    styles = doc.xpath("//style")
    assert len(styles) == 1
    css = styles[0].text
    assert css.strip().startswith("@media")
    depth0 = re.sub(r"\{[^{}]*\}", "", re.sub(r"\{[^{}]*\}", "", css))  # strip inner, then outer blocks
    assert [p.strip() for p in depth0.split("\n") if p.strip()] == [
        "@media only screen and (max-width: 620px)"
    ]
    declarations = re.findall(r"[\w-]+\s*:\s*[^;{}]+", re.sub(r"^[^{]*\{", "", css, count=1))
    assert declarations and all(d.rstrip().endswith("!important") for d in declarations)


def test_no_invented_attributes(repo_settings):
    """premailer may only add style=; every other attribute must be the template's own."""
    css = (
        "td { background-color: #abc; text-align: center; vertical-align: top; width: 300px; height: 20px }"
        " img { max-width: 100%; height: auto; float: left } .x { width: 100% }"
        " @media (max-width: 600px) { .x { width: 50% } }"
    )
    page = f'<html><head><style>{css}</style></head><body><table><tr><td class="x">a</td></tr></table>'
    page += '<img src="https://a.org/i.png" alt="i"></body></html>'
    before = lxml_html.document_fromstring(page)
    after = lxml_html.document_fromstring(inline_css(page)[0])
    shape = lambda doc: [(e.tag, sorted(set(e.attrib) - {"style"})) for e in doc.iter() if e.tag != "style"]  # noqa: E731
    assert shape(before) == shape(after)
    assert after.xpath("//td")[0].get("style")  # the CSS itself was inlined

    rendered = render_issue_email(repo_settings, make_issue())
    doc = lxml_html.document_fromstring(rendered.html)
    assert not doc.xpath("//*[@bgcolor or @valign or @height]")
    assert 'height="auto"' not in rendered.html


def test_images_have_alt_and_absolute_links(repo_settings, prepared):
    doc = html_doc(parse(prepared.personalise(recipient(repo_settings))))
    imgs = doc.xpath("//img")
    assert len(imgs) == 2
    for img in imgs:
        assert img.get("alt") is not None and img.get("src").startswith("https://")
        assert "max-width:100%" in img.get("style").replace(" ", "")
        assert "height:auto" in img.get("style").replace(" ", "")
    assert "https://news.example.org/media/bench-count.png" in [i.get("src") for i in imgs]
    for a in doc.iter("a"):
        href = a.get("href")
        assert re.match(r"^(https://|mailto:|#a1-fn)", href), href
    hrefs = [a.get("href") for a in doc.iter("a")]
    assert "https://news.example.org/walks/benches.html" in hrefs
    assert "https://news.example.org/benches/" in hrefs  # view in browser


def test_html_parses_cleanly_with_html5lib(repo_settings, prepared):
    msg = parse(prepared.personalise(recipient(repo_settings)))
    parser = html5lib.HTMLParser(strict=False, namespaceHTMLElements=False)
    doc = parser.parse(part_text(msg, "html"))
    assert not [e for e in parser.errors if e[1] not in ("unknown-doctype",)], parser.errors
    body_text = "".join(doc.find("body").itertext())
    for piece in (
        "The Example Gazette",
        "Measuring a City by Its Benches",
        "Why you get this",
        "Unsubscribe",
    ):
        assert piece in body_text


def test_preheader_is_hidden_and_first(repo_settings, prepared):
    doc = html_doc(parse(prepared.personalise(recipient(repo_settings))))
    body = doc.find("body")
    first = next(iter(body))
    assert "preheader" in first.get("class")
    assert "display:none" in first.get("style").replace(" ", "")
    assert first.text_content().startswith("How do you tell whether a street is friendly")


def test_placeholders_survive_inlining(prepared):
    """The slot markers in hrefs came through premailer and lxml's URL escaping untouched."""
    doc = lxml_html.document_fromstring(prepared.html)
    hrefs = [a.get("href") for a in doc.iter("a")]
    assert slot("unsubscribe_url") in hrefs and slot("preferences_url") in hrefs
    assert slot("greeting") in doc.find_class("greeting")[0].text_content()
    assert "%7B" not in prepared.html


def test_folder_issue(repo_settings):
    issue = make_folder_issue()
    prepared = prepare_issue_email(repo_settings, issue, send_key="issue:summer-of-water", date=ISSUE_DATE)
    msg = parse(prepared.personalise(recipient(repo_settings)))
    doc = html_doc(msg)
    assert doc.find_class("issue-title")[0].text_content() == "A Summer of Water"
    assert "water in the city" in doc.find_class("intro")[0].text_content()
    assert [h.text_content() for h in doc.xpath("//h2[contains(@class,'title')]")] == [
        "Water piece 1",
        "Water piece 2",
        "Water piece 3",
    ]
    ids = [el.get("id") for el in doc.xpath("//*[@id]")]
    assert len(ids) == len(set(ids)) and len(ids) >= 6  # footnotes of three articles kept apart
    for a in doc.xpath("//a[starts-with(@href,'#')]"):
        assert a.get("href")[1:] in ids
    assert doc.find_class("preheader")[0].text_content().startswith("Rain gardens")
    text = part_text(msg, "plain")
    assert "A Summer of Water\n=================" in text
    assert "Water piece 2\n-------------" in text
    assert "Background (https://news.example.org/background/)" in " ".join(text.split())


# -- size guard, errors, build files ---------------------------------------------------------------


def test_size_warning_and_limit(make_settings: Callable[..., Settings]):
    issue = make_issue(make_article(body="Words and more words. " * 900))
    warned = prepare_issue_email(
        make_settings(email={"size_warn_kb": 20, "size_limit_kb": 200}), issue, send_key=SEND, date=ISSUE_DATE
    )
    assert warned.html_size > 20 * 1024
    assert any("issues/benches.md" in w and "KB" in w for w in warned.warnings)
    quiet = prepare_issue_email(
        make_settings(email={"size_warn_kb": 90}), make_issue(), send_key=SEND, date=ISSUE_DATE
    )
    assert quiet.warnings == ()
    with pytest.raises(RenderError) as err:
        prepare_issue_email(make_settings(email={"size_limit_kb": 20}), issue, send_key=SEND, date=ISSUE_DATE)
    assert "issues/benches.md" in err.value.message and "KB" in err.value.message


def test_marker_in_content_is_refused(repo_settings):
    issue = make_issue(make_article(body=f"Sneaky {MARKER_PREFIX}unsubscribe_urlX here."))
    with pytest.raises(RenderError, match="reserved"):
        prepare_issue_email(repo_settings, issue, send_key=SEND, date=ISSUE_DATE)


def test_template_error_names_the_template(make_settings, project):
    (project / "templates" / "email.html").write_text("<p>{{ no_such_thing }}</p>")
    with pytest.raises(RenderError, match=r"templates/email\.html"):
        prepare_issue_email(make_settings(), make_issue(), send_key=SEND, date=ISSUE_DATE)


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


def test_generic_prepare_message_with_extra_slot(repo_settings):
    prepared = digest_like(repo_settings)
    rcpt = replace(recipient(repo_settings), extra={"topic": "Cities & <Data>"})
    msg = parse(prepared.personalise(rcpt))
    assert part_text(msg, "plain") == f"Hi Ana Souza,\nTopic: Cities & <Data>\n{rcpt.unsubscribe_url}\n"
    assert "<p>Cities &amp; &lt;Data&gt;</p>" in part_text(msg, "html")
    with pytest.raises(RenderError, match="topic"):
        prepared.personalise(recipient(repo_settings))


def test_a_message_without_unsubscribe_link_is_refused(repo_settings):
    with pytest.raises(RenderError, match="no unsubscribe link"):
        digest_like(repo_settings, text="Hello\n")


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    subject=st.one_of(
        st.text(max_size=300), st.sampled_from(["a" * 1200, "x\r\nBcc: y@z.org", "=?utf-8?q?x?="])
    )
)
def test_any_subject_round_trips(repo_settings, subject):
    rcpt = replace(recipient(repo_settings), extra={"topic": "x"})
    raw = digest_like(repo_settings, subject=subject).personalise(rcpt)
    msg = parse(raw)
    assert msg["Subject"] == clean_text(subject)
    assert msg.get_all("Bcc") is None
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_naive_date_is_refused(repo_settings):
    with pytest.raises(RenderError):
        prepare_issue_email(repo_settings, make_issue(), send_key=SEND, date=datetime(2026, 1, 1))


def test_issue_email_files(repo_settings):
    issue = make_issue()
    files = issue_email_files(repo_settings, issue, secret=SECRET)
    assert sorted(files) == ["emails/benches.eml", "emails/benches.html", "emails/benches.txt"]
    assert files == issue_email_files(repo_settings, issue, secret=SECRET)
    msg = parse(files["emails/benches.eml"])
    assert str(msg["To"]) == "Sample Reader <reader@example.org>"
    assert msg["Date"].datetime == issue.date
    assert msg["Message-ID"] == message_id(SECRET, "issue:benches", "reader@example.org", "news.example.org")
    assert part_text(msg, "plain") == files["emails/benches.txt"].decode()
    assert part_text(msg, "html") == files["emails/benches.html"].decode()
    assert "Hi <bdi>Sample Reader</bdi>," in files["emails/benches.html"].decode()


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
def test_quoted_printable_round_trips_any_body(repo_settings, pieces, topic):
    """Whatever the body and the values, the decoded part is the body with values filled in."""
    body = "".join(slot(p[1]) if isinstance(p, tuple) else p for p in pieces) + slot("unsubscribe_url")
    rcpt = replace(recipient(repo_settings), extra={"topic": topic})
    prepared = digest_like(repo_settings, text=body, html=f"<p>{body}</p>")
    raw = prepared.personalise(rcpt)
    vals = prepared.values(rcpt)
    expected = "".join(vals[p[1]] if isinstance(p, tuple) else p for p in pieces) + rcpt.unsubscribe_url
    expected = expected.replace("\r\n", "\n").replace("\r", "\n")
    assert part_text(parse(raw), "plain") == expected
    assert prepared.fill_text(rcpt).replace("\r\n", "\n").replace("\r", "\n") == expected
    _, _, body_bytes = raw.partition(b"\r\n\r\n")
    assert max(len(line) for line in body_bytes.split(b"\r\n")) <= 76


def test_every_sample_issue_builds(sample_settings):
    """The repo's own issues (read only) all give a parseable, deterministic email."""
    from publisher.content import load_library

    issues = load_library(sample_settings).published_issues
    assert issues
    for issue in issues:
        files = issue_email_files(sample_settings, issue, secret=SECRET)
        assert files == issue_email_files(sample_settings, issue, secret=SECRET)
        msg = parse(files[f"emails/{issue.slug}.eml"])
        assert msg.defects == [] and msg["Subject"] == issue.subject
        assert str(msg["To"]) == "Sample Reader <reader@example.org>"
        doc = lxml_html.document_fromstring(files[f"emails/{issue.slug}.html"].decode())
        assert all(img.get("alt") for img in doc.iter("img"))
        assert all(re.match(r"^(https://|mailto:|#)", a.get("href")) for a in doc.iter("a"))
        assert part_text(msg, "plain") == files[f"emails/{issue.slug}.txt"].decode()
