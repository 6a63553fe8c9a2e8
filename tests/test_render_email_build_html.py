"""The build hands ``issue_email_files`` the article HTML it rendered for the pages.

The email must be byte for byte the one made from the Markdown (what ``publisher
send`` sends), and the HTML passed in must be what the body shows (it is used, not
rendered again); an article without a content hash never takes another's HTML.
"""

from __future__ import annotations

from publisher.config import Settings
from publisher.render.email import issue_email_files
from publisher.render.markdown import markdown_to_html
from tests.fixtures_email import RICH_BODY, SECRET, make_article, make_issue


def test_the_same_files_with_the_builds_html(mail_settings: Settings) -> None:
    article = make_article(content_hash="h1")
    issue = make_issue(article)
    plain = issue_email_files(mail_settings, issue, secret=SECRET)
    given = issue_email_files(mail_settings, issue, secret=SECRET, html={"h1": markdown_to_html(RICH_BODY)})
    assert given == plain


def test_the_html_given_is_the_html_shown(mail_settings: Settings) -> None:
    issue = make_issue(make_article(content_hash="h1"))
    files = issue_email_files(mail_settings, issue, secret=SECRET, html={"h1": "<p>From the build.</p>"})
    assert b"From the build." in files["emails/benches.html"]


def test_no_content_hash_no_borrowed_html(mail_settings: Settings) -> None:
    issue = make_issue(make_article(content_hash=""))
    files = issue_email_files(mail_settings, issue, secret=SECRET, html={"": "<p>Someone else's.</p>"})
    assert b"Someone else" not in files["emails/benches.html"]
