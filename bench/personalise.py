"""How fast a prepared issue email is filled in per subscriber, against the naive way.

Run: .venv/bin/python bench/personalise.py [--count 10000] [--naive-count N] [--per-subscriber]

``--per-subscriber`` turns ``analytics.per_subscriber`` on: every rewritten
link then ends in a per-recipient slot (the reader token, made with the other
signed links beforehand), filled by the same join.

Measured side by side in one run, pinned to one core (machines are noisy):

- personalise: ``PreparedMessage.personalise`` for N distinct subscribers
  (recipients and their signed links are made beforehand: that is the
  sender's work, not the message's);
- naive: for each subscriber, a fresh ``EmailMessage`` built from the
  already rendered HTML and text (names and links substituted into them)
  and serialised, which is what one would write without preparing;
- the render + inline time of the largest sample issue (the repo's issues
  through ``publisher.content.load_library``, else a built-in issue).

Goals (design §6): >= 20,000 msg/s and >= 100x the naive way, with click
rewriting on (issue #16: the links are rewritten once at prepare time).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from publisher.config import Settings, load_settings  # noqa: E402
from publisher.models import Article, Issue, Recipient  # noqa: E402
from publisher.render.email import PreparedMessage, make_recipient, prepare_issue_email  # noqa: E402
from publisher.render.email_mime import READER, recipient_maker  # noqa: E402

GOAL_RATE = 20_000
GOAL_RATIO = 100
SECRET = b"bench-secret-0123456789abcdef0123456789"
NAMES = ["Ana Souza", "", "Zoë Ångström", "李小龙", "مريم الحسيني", 'Bob "the Builder", Jr.', "👩🏽‍💻 Dev"]


def pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to cpu {cpu}"
    return "not pinned (no sched_setaffinity)"


def largest_issue(settings: Settings) -> tuple[Issue, str]:
    try:
        from publisher.content import load_library
    except ImportError:
        load_library = None
    if load_library is not None:
        try:
            issues = load_library(settings).published_issues
        except Exception as exc:  # a broken sample should not hide the figure
            print(f"(could not load the sample issues: {exc})", file=sys.stderr)
            issues = ()
        if issues:
            issue = max(issues, key=lambda i: sum(len(a.body) for a in i.articles) + len(i.intro))
            return issue, f"largest sample issue '{issue.slug}' ({len(issue.articles)} article(s))"
    body = "\n\n".join(
        f"## Section {n}\n\n" + "A paragraph of ordinary prose with a [link](https://example.org/). " * 12
        for n in range(8)
    )
    date = datetime(2026, 4, 7, 9, tzinfo=UTC)
    art = Article(
        slug="builtin",
        title="A built-in realistic issue",
        date=date,
        body=body,
        source=Path("issues/builtin.md"),
        issue_slug="builtin",
        summary="A built-in issue for the benchmark.",
        author="Bench",
    )
    issue = Issue(
        slug="builtin", title=art.title, subject=art.title, date=date, articles=(art,), source=art.source
    )
    return issue, "built-in issue (no sample issues found)"


def naive_message(settings: Settings, prepared: PreparedMessage, rcpt: Recipient, date: datetime) -> bytes:
    """What one writes without preparing: a new EmailMessage per subscriber."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = settings.email.from_
    msg["To"] = Address(display_name=rcpt.name, addr_spec=rcpt.email)
    msg["Subject"] = prepared.subject
    msg["Date"] = date
    msg["Message-ID"] = rcpt.message_id
    if settings.email.reply_to:
        msg["Reply-To"] = settings.email.reply_to
    msg["List-Id"] = f"{settings.site.title} <list.{settings.site.domain}>"
    mailto = f", <{rcpt.unsubscribe_mailto}>" if rcpt.unsubscribe_mailto else ""
    msg["List-Unsubscribe"] = f"<{rcpt.unsubscribe_url}>{mailto}"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(prepared.fill_text(rcpt), cte="quoted-printable")
    msg.add_alternative(prepared.fill_html(rcpt), subtype="html", cte="quoted-printable")
    return msg.as_bytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=10_000, help="distinct subscribers (default 10,000)")
    ap.add_argument(
        "--naive-count", type=int, default=None, help="subscribers for the naive way (default: --count)"
    )
    ap.add_argument(
        "--per-subscriber", action="store_true", help="analytics.per_subscriber on: links name the reader"
    )
    args = ap.parse_args()
    naive_count = args.naive_count or args.count
    where = pin_one_core()
    os.environ["PUBLISHER_SECRET_KEY"] = SECRET.decode()  # Settings.secret_key() signs the /r/ links
    settings = load_settings(ROOT / "config.yaml", environ={"PUBLISHER_SECRET_KEY": SECRET.decode()})
    if args.per_subscriber:
        analytics = settings.analytics.model_copy(update={"per_subscriber": True})
        settings = settings.model_copy(update={"analytics": analytics})
    issue, which = largest_issue(settings)
    send_key = f"issue:{issue.slug}"

    renders = []
    for _ in range(5):
        t0 = time.perf_counter()
        prepared = prepare_issue_email(settings, issue, send_key=send_key, date=issue.date)
        renders.append(time.perf_counter() - t0)

    make = recipient_maker(settings, SECRET, send_key)
    recipients = [
        make(f"reader{n}@example.org", f"{NAMES[n % len(NAMES)]} {n}".strip(), n + 1)
        if args.per_subscriber
        else make_recipient(
            settings, SECRET, send_key, f"reader{n}@example.org", f"{NAMES[n % len(NAMES)]} {n}".strip()
        )
        for n in range(args.count)
    ]
    if args.per_subscriber:
        filled = prepared.fill_html(recipients[3])
        assert recipients[3].extra[READER] in filled, "the reader token is in the links"
    check = email.message_from_bytes(prepared.personalise(recipients[3]), policy=email.policy.default)
    assert check["To"].addresses[0].display_name == recipients[3].name, check["To"]

    t0 = time.perf_counter()
    for rcpt in recipients:
        prepared.personalise(rcpt)
    fast = args.count / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    for rcpt in recipients[:naive_count]:
        naive_message(settings, prepared, rcpt, issue.date)
    naive = naive_count / (time.perf_counter() - t0)

    ratio = fast / naive
    print(
        f"# {where}; {args.count:,} subscribers (naive: {naive_count:,}); "
        f"message {len(check.as_bytes()):,} bytes"
    )
    print(
        f"personalise: {fast:,.0f} msg/s (goal >= {GOAL_RATE:,}) | naive: {naive:,.0f} msg/s | "
        f"ratio {ratio:,.0f}x (goal >= {GOAL_RATIO}x)"
    )
    print(
        f"render+inline: {renders[0] * 1000:.1f} ms first, "
        f"{statistics.median(renders[1:]) * 1000:.1f} ms warm "
        f"(median of 4) for the {which}; HTML part {prepared.html_size / 1024:.1f} KB"
    )
    links = len(prepared.links.urls) if prepared.links else 0
    state = "on" if settings.analytics.clicks else "off"
    reader = " + a per-reader slot (analytics.per_subscriber)" if args.per_subscriber else ""
    print(
        f"click rewriting (analytics.clicks): {state}; {links} link(s) through /r/<token>{reader}, "
        "rewritten once"
    )
    ok = fast >= GOAL_RATE and ratio >= GOAL_RATIO
    print("result:", "ok" if ok else "BELOW GOAL")


if __name__ == "__main__":
    main()
