"""The issue email, parsed back the way mail clients parse it."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

import html5lib
import pytest
from lxml import html as lxml_html

from publisher.config import Settings
from publisher.errors import RenderError
from publisher.render.email import (
    issue_email_files,
    make_recipient,
    prepare_issue_email,
    render_issue_email,
)
from publisher.render.email_mime import MARKER_PREFIX, slot
from publisher.render.inline import inline_css
from publisher.tokens import Purpose, message_id, read_token
from tests.fixtures_email import (
    ISSUE_DATE,
    SECRET,
    SEND,
    html_doc,
    make_article,
    make_folder_issue,
    make_issue,
    parse,
    part_text,
    recipient,
)

# -- structure and headers -------------------------------------------------------------------------


def test_message_is_multipart_alternative_text_first(mail_settings, mail_prepared):
    msg = parse(mail_prepared.personalise(recipient(mail_settings)))
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert msg.defects == [] and all(p.defects == [] for p in parts)


def test_headers(mail_settings, mail_prepared):
    rcpt = recipient(mail_settings)
    msg = parse(mail_prepared.personalise(rcpt))
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
    assert uris == [rcpt.unsubscribe_url]  # no mailto: unless a mailbox that is read is configured
    token = uris[0].rsplit("/", 1)[1]
    assert read_token(SECRET, Purpose.UNSUBSCRIBE, token) == "ana@example.org"
    for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe"):
        assert len(msg.get_all(name)) == 1


def test_build_is_deterministic(mail_settings):
    issue = make_issue()
    a = prepare_issue_email(mail_settings, issue, send_key=SEND, date=ISSUE_DATE)
    b = prepare_issue_email(mail_settings, issue, send_key=SEND, date=ISSUE_DATE)
    rcpt = recipient(mail_settings)
    assert a.personalise(rcpt) == b.personalise(rcpt)
    other = prepare_issue_email(mail_settings, issue, send_key="issue:other", date=ISSUE_DATE)
    boundary = parse(a.personalise(rcpt)).get_boundary()
    assert boundary.startswith("=_publisher_") and boundary != parse(other.personalise(rcpt)).get_boundary()


def test_message_id_is_per_send_and_subscriber(mail_settings):
    ids = {
        make_recipient(mail_settings, SECRET, s, e, "").message_id
        for s in ("a", "b")
        for e in ("x@a.org", "y@a.org")
    }
    assert len(ids) == 4
    assert make_recipient(mail_settings, SECRET, "a", "x@a.org", "X").message_id in ids


def test_personalise_many_subscribers(mail_settings, mail_prepared):
    seen_ids = set()
    for n in range(60):
        rcpt = recipient(mail_settings, f"reader{n}@example.org", f"Reader Nº{n}" if n % 3 else "")
        msg = parse(mail_prepared.personalise(rcpt))
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


def test_subject_and_title_cannot_inject_headers(mail_settings):
    issue = make_issue(subject="Hello\r\nBcc: victim@example.org\nX-Evil: 1 — ünïcode " + "long " * 30)
    prepared = prepare_issue_email(mail_settings, issue, send_key=SEND, date=ISSUE_DATE)
    msg = parse(prepared.personalise(recipient(mail_settings)))
    assert msg.get_all("Bcc") is None and msg.get_all("X-Evil") is None
    assert msg["Subject"].startswith("Hello Bcc: victim@example.org X-Evil: 1 — ünïcode long")


# -- the HTML part ---------------------------------------------------------------------------------


def test_only_media_rules_stay_and_keep_important(mail_settings, mail_prepared):
    doc = html_doc(parse(mail_prepared.personalise(recipient(mail_settings))))
    styles = doc.xpath("//style")
    assert len(styles) == 1
    css = styles[0].text
    from publisher.render.inline import KEPT_RULES

    depth0 = re.sub(r"\{[^{}]*\}", "", re.sub(r"\{[^{}]*\}", "", css))  # strip inner, then outer blocks
    preludes = [p.strip() for p in depth0.split("\n") if p.strip()]
    assert preludes[0] == "@media only screen and (max-width: 620px)"
    assert all(p.startswith(KEPT_RULES) for p in preludes)  # the phone and dark-mode rules, nothing else
    in_media = "".join(re.findall(r"@media[^{]*\{((?:[^{}]*\{[^{}]*\})*)", css))
    declarations = re.findall(r"[\w-]+\s*:\s*[^;{}]+", in_media)
    assert declarations and all(d.rstrip().endswith("!important") for d in declarations)


def test_no_invented_attributes(mail_settings):
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

    rendered = render_issue_email(mail_settings, make_issue())
    doc = lxml_html.document_fromstring(rendered.html)
    # only an <img> may carry height: the template writes it from the file (issue 13.2), premailer none
    assert not doc.xpath("//*[@bgcolor or @valign or (@height and not(self::img))]")
    assert 'height="auto"' not in rendered.html


def test_images_have_alt_and_absolute_links(mail_settings, mail_prepared):
    doc = html_doc(parse(mail_prepared.personalise(recipient(mail_settings))))
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
    # links go through /r/<token> (click counting); the URLs they redirect to are the ones recorded
    recorded = list(mail_prepared.links.urls) if mail_prepared.links else []
    hrefs = [a.get("href") for a in doc.iter("a")] + recorded
    assert "https://news.example.org/benches/walks/benches.html" in hrefs  # relative to the page, as there
    assert "https://news.example.org/benches/" in hrefs  # view in browser


def test_html_parses_cleanly_with_html5lib(mail_settings, mail_prepared):
    msg = parse(mail_prepared.personalise(recipient(mail_settings)))
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


def test_preheader_is_hidden_and_first(mail_settings, mail_prepared):
    doc = html_doc(parse(mail_prepared.personalise(recipient(mail_settings))))
    body = doc.find("body")
    first = next(iter(body))
    assert "preheader" in first.get("class")
    assert "display:none" in first.get("style").replace(" ", "")
    assert first.text_content().startswith("How do you tell whether a street is friendly")


def test_placeholders_survive_inlining(mail_prepared):
    """The slot markers in hrefs came through premailer and lxml's URL escaping untouched."""
    doc = lxml_html.document_fromstring(mail_prepared.html)
    hrefs = [a.get("href") for a in doc.iter("a")]
    assert slot("unsubscribe_url") in hrefs and slot("preferences_url") in hrefs
    assert slot("greeting") in doc.find_class("greeting")[0].text_content()
    assert "%7B" not in mail_prepared.html


def test_folder_issue(mail_settings):
    issue = make_folder_issue()
    prepared = prepare_issue_email(mail_settings, issue, send_key="issue:summer-of-water", date=ISSUE_DATE)
    msg = parse(prepared.personalise(recipient(mail_settings)))
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
    assert "\n### Where 2\n" in text  # body headings sit below the article titles
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


def test_marker_in_content_is_refused(mail_settings):
    issue = make_issue(make_article(body=f"Sneaky {MARKER_PREFIX}unsubscribe_urlX here."))
    with pytest.raises(RenderError, match="reserved"):
        prepare_issue_email(mail_settings, issue, send_key=SEND, date=ISSUE_DATE)


def test_template_error_names_the_template(make_settings, project):
    (project / "templates" / "email.html").write_text("<p>{{ no_such_thing }}</p>")
    with pytest.raises(RenderError, match=r"templates/email\.html"):
        prepare_issue_email(make_settings(), make_issue(), send_key=SEND, date=ISSUE_DATE)


def test_naive_date_is_refused(mail_settings):
    with pytest.raises(RenderError):
        prepare_issue_email(mail_settings, make_issue(), send_key=SEND, date=datetime(2026, 1, 1))


def test_issue_email_files(mail_settings, monkeypatch):
    issue = make_issue()
    monkeypatch.setattr("time.time", lambda: 1_700_000_000.0)  # builds a year apart...
    files = issue_email_files(mail_settings, issue, secret=SECRET)
    monkeypatch.setattr("time.time", lambda: 1_731_536_000.0)
    assert sorted(files) == ["emails/benches.eml", "emails/benches.html", "emails/benches.txt"]
    assert files == issue_email_files(mail_settings, issue, secret=SECRET)  # ...give the same bytes
    msg = parse(files["emails/benches.eml"])
    assert str(msg["To"]) == "Sample Reader <reader@example.org>"
    assert msg["Date"].datetime == issue.date
    assert msg["Message-ID"] == message_id(SECRET, "issue:benches", "reader@example.org", "news.example.org")
    assert part_text(msg, "plain") == files["emails/benches.txt"].decode()
    assert part_text(msg, "html") == files["emails/benches.html"].decode()
    assert "Hi <bdi>Sample Reader</bdi>," in files["emails/benches.html"].decode()
    assert (
        '<a href="https://news.example.org/unsubscribe/sample-reader"'
        in files["emails/benches.html"].decode()
    )
    assert "<https://news.example.org/unsubscribe/sample-reader>" in str(msg["List-Unsubscribe"])


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


def test_the_unsubscribe_mailto_is_the_configured_mailbox_only() -> None:
    """Issue 13.4: no mailto: to a mailbox nobody reads; the configured one when there is one."""
    from publisher.config import load_settings
    from tests.fixtures_email import ROOT, parse

    env = {"PUBLISHER_SECRET_KEY": "test-secret-0123456789abcdef0123456789"}
    for box, expected in ((None, []), ("leave@news.example.org", ["mailto:leave@news.example.org"])):
        if box:
            env["PUBLISHER_EMAIL__UNSUBSCRIBE_MAILBOX"] = box
        settings = load_settings(ROOT / "config.yaml", environ=env)
        prepared = prepare_issue_email(settings, make_issue(), send_key=SEND, date=ISSUE_DATE)
        rcpt = make_recipient(settings, SECRET, SEND, "ana@example.org", "Ana")
        msg = parse(prepared.personalise(rcpt))
        uris = re.findall(r"<([^>]+)>", str(msg["List-Unsubscribe"]))
        assert [u.split("?")[0] for u in uris[1:]] == expected
        assert "unsubscribe@news.example.org" not in str(msg["List-Unsubscribe"])


def test_the_postal_address_is_in_every_footer_and_check_warns_without_it(tmp_path) -> None:
    """Issue 13.4: CAN-SPAM wants a postal address in commercial mail; check warns when it is missing."""
    from typer.testing import CliRunner

    from publisher.cli import app
    from publisher.config import load_settings
    from tests.fixtures_email import ROOT, parse, part_text

    env = {"PUBLISHER_SECRET_KEY": "test-secret-0123456789abcdef0123456789"}
    address = "The Example Gazette, 1 Long Street, Springfield 12345"
    settings = load_settings(ROOT / "config.yaml", environ={**env, "PUBLISHER_SITE__POSTAL_ADDRESS": address})
    msg = parse(
        prepare_issue_email(settings, make_issue(), send_key=SEND, date=ISSUE_DATE).personalise(
            make_recipient(settings, SECRET, SEND, "ana@example.org", "Ana")
        )
    )
    assert address in part_text(msg, "plain") and address in part_text(msg, "html")
    runner = CliRunner()
    config = ["--config", str(ROOT / "config.yaml")]
    warned = runner.invoke(app, ["check", *config], env={**env, "PUBLISHER_EMAIL__COMMERCIAL": "true"})
    assert warned.exit_code == 0 and "site.postal_address is empty" in warned.output
    quiet = runner.invoke(app, ["check", *config], env={**env, "PUBLISHER_EMAIL__COMMERCIAL": "false"})
    assert quiet.exit_code == 0 and "postal_address" not in quiet.output
