"""Double opt-in over the in-process client: subscribe, the confirmation mail, confirm, rate limits."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from publisher.config import Settings
from publisher.models import Frequency, SubscriberStatus
from publisher.ops.confirm import send_confirmation
from publisher.store import Store
from publisher.tokens import Purpose, make_token, read_token
from publisher.web import Limits
from tests.fixtures_content import article
from tests.fixtures_web import NS, Clock, form_fields, link_from, outbox_messages
from tests.fixtures_web import parse_html as parse


def path_of(url: str) -> str:
    return urlsplit(url).path


def confirm(client: TestClient, path: str):
    """Follow a confirm link as a person does: the GET shows a button, its POST confirms."""
    shown = client.get(path)
    if shown.status_code != 200:
        return shown
    assert "Confirm my subscription" in shown.text
    [form] = [f for f in parse(shown.text).iter(f"{{{NS['h']}}}form")]
    assert form.get("method") == "post" and urlsplit(form.get("action")).path == path
    return client.post(path)


def subscribe(client: TestClient, email: str, **fields: object) -> object:
    data: dict[str, object] = {"email": email, "frequency": "instant", "timezone": "Europe/London"}
    data.update(fields)
    return client.post("/subscribe", data=data)


def test_form_offers_the_sites_tags_and_prefills_the_site_time_zone(
    web_settings: Callable[..., Settings], make_app: Callable[..., FastAPI], write_issue
) -> None:
    write_issue("issues/one.md", article("One", extra="tags: [science, cities]"))
    write_issue("issues/two.md", article("Two", extra="tags: [food]\ndraft: true"))
    settings = web_settings()
    with TestClient(make_app(settings)) as client:
        page = client.get("/subscribe")
        assert page.status_code == 200
        fields = form_fields(page.text)
        assert fields["topics"] == ["cities", "science"]  # drafts' tags are not offered
        assert fields["timezone"] == [settings.site.timezone]
        assert set(fields["frequency"]) == {"*instant", "daily", "weekly"}
        # a new article's tag shows up without restarting the app
        write_issue("issues/three.md", article("Three", extra="tags: [bread]"))
        time.sleep(2.1)  # the tag list is re-scanned at most every 2 s
        assert "bread" in form_fields(client.get("/subscribe").text)["topics"]


def test_the_confirm_link_is_stamped_by_the_apps_clock(
    web_client: TestClient, web_settings: Callable[..., Settings], store: Store, web_clock: Clock
) -> None:
    """A link stamped ahead of the clock that reads it is refused as from the future: the app's
    clock (here behind real time, as another server's may be) must stamp it too."""
    settings = web_settings()
    web_clock.advance(seconds=-30)
    subscribe(web_client, "bea@example.org", name="Bea")
    [msg] = outbox_messages(settings)
    page = confirm(web_client, path_of(link_from(msg, "confirm")))
    assert page.status_code == 200 and "You are subscribed" in page.text
    sub = store.subscribers.get("bea@example.org")
    assert sub is not None and sub.status is SubscriberStatus.CONFIRMED


def test_subscribe_stores_pending_and_mails_a_confirm_link(
    web_client: TestClient, web_settings: Callable[..., Settings], store: Store
) -> None:
    settings = web_settings()
    r = subscribe(
        web_client, "Ann@Example.org", name="Ann Smith", frequency="weekly", timezone="Europe/Paris"
    )
    assert r.status_code == 200
    assert "Check your inbox" in r.text
    sub = store.subscribers.get("ann@example.org")
    assert sub is not None and sub.status is SubscriberStatus.PENDING
    assert (sub.name, sub.frequency, sub.timezone) == ("Ann Smith", Frequency.WEEKLY, "Europe/Paris")

    [msg] = outbox_messages(settings)
    assert msg["To"].addresses[0].addr_spec == "ann@example.org"
    assert msg["To"].addresses[0].display_name == "Ann Smith"
    assert "Confirm your subscription" in msg["Subject"]
    assert msg["Message-ID"].endswith("@news.example.org>")
    assert msg["Date"] and msg["From"].addresses[0].addr_spec == "news@example.org"
    assert msg.get_body(("html",)) is not None
    link = link_from(msg, "confirm")
    assert link.startswith(settings.site.url + "/confirm/")
    token = link.rsplit("/", 1)[1]
    assert read_token(settings.secret_key(), Purpose.CONFIRM, token) == "ann@example.org"
    html_part = msg.get_body(("html",)).get_content()
    assert link in html_part

    page = confirm(web_client, path_of(link))
    assert page.status_code == 200 and "You are subscribed" in page.text
    assert store.subscribers.get("ann@example.org").status is SubscriberStatus.CONFIRMED
    again = confirm(web_client, path_of(link))  # idempotent
    assert again.status_code == 200 and "You are subscribed" in again.text
    # the confirmed page links to working preferences
    prefs = parse(page.text).find(".//h:a[@href]", NS)
    hrefs = [a.get("href") for a in parse(page.text).iter(f"{{{NS['h']}}}a")]
    pref_link = next(h for h in hrefs if "/preferences/" in h)
    assert prefs is not None and web_client.get(pref_link).status_code == 200


def test_same_answer_for_known_and_unknown_and_confirmed_is_not_repended(
    web_client: TestClient, web_settings: Callable[..., Settings], store: Store, web_clock: Clock
) -> None:
    settings = web_settings()
    store.subscribers.add("old@example.org", now=web_clock(), name="Old", frequency="daily", topics=())
    fresh = subscribe(web_client, "new@example.org")
    web_clock.advance(seconds=1)
    known = subscribe(web_client, "old@example.org", name="Mallory", frequency="weekly")
    assert fresh.status_code == known.status_code == 200

    def body(text: str) -> str:
        main = parse(text).find(".//h:main", NS)
        return "".join(main.itertext()).replace("new@example.org", "X").replace("old@example.org", "X")

    assert body(fresh.text) == body(known.text)
    old = store.subscribers.get("old@example.org")
    assert old.status is SubscriberStatus.CONFIRMED  # not put back to pending
    assert (old.name, old.frequency) == ("Old", Frequency.DAILY)  # a stranger cannot change it
    msgs = {m["To"].addresses[0].addr_spec: m for m in outbox_messages(settings)}
    assert "already subscribed" in msgs["old@example.org"]["Subject"]
    assert "/confirm/" not in msgs["old@example.org"].get_body(("plain",)).get_content()
    assert link_from(msgs["old@example.org"], "preferences")


def test_pending_subscriber_resubscribing_updates_choices_and_gets_a_new_link(
    web_client: TestClient, web_settings: Callable[..., Settings], store: Store, web_clock: Clock
) -> None:
    subscribe(web_client, "p@example.org", frequency="daily")
    web_clock.advance(seconds=5)
    subscribe(web_client, "p@example.org", frequency="weekly")
    sub = store.subscribers.get("p@example.org")
    assert sub.status is SubscriberStatus.PENDING and sub.frequency is Frequency.WEEKLY
    assert len(outbox_messages(web_settings())) == 2


def test_confirm_link_expires_by_the_clock_and_purpose_is_checked(
    web_client: TestClient, web_settings: Callable[..., Settings], store: Store, web_clock: Clock
) -> None:
    settings = web_settings()
    secret = settings.secret_key()
    subscribe(web_client, "late@example.org")
    token = make_token(secret, Purpose.CONFIRM, "late@example.org")
    web_clock.advance(days=7, hours=1)
    r = confirm(web_client, f"/confirm/{token}")
    assert r.status_code == 400
    assert "not valid" in r.text and "late@example.org" not in r.text
    assert store.subscribers.get("late@example.org").status is SubscriberStatus.PENDING
    # an unsubscribe or preferences token is not a confirm token
    for purpose in (Purpose.UNSUBSCRIBE, Purpose.PREFERENCES):
        other = make_token(secret, purpose, "late@example.org")
        assert web_client.get(f"/confirm/{other}").status_code == 400
        assert web_client.post(f"/confirm/{other}").status_code == 400
    assert store.subscribers.get("late@example.org").status is SubscriberStatus.PENDING
    web_clock.advance(days=-1)
    assert confirm(web_client, f"/confirm/{token}").status_code == 200
    assert store.subscribers.get("late@example.org").status is SubscriberStatus.CONFIRMED


def test_an_old_confirm_link_does_not_undo_an_unsubscribe(
    web_settings: Callable[..., Settings], store: Store, make_app: Callable[..., FastAPI]
) -> None:
    from datetime import UTC, datetime, timedelta

    settings = web_settings()
    secret = settings.secret_key()
    old_token = make_token(secret, Purpose.CONFIRM, "gone@example.org")
    later = Clock(datetime.now(UTC) + timedelta(minutes=5))
    with TestClient(make_app(settings, store, clock=later)) as client:
        subscribe(client, "gone@example.org")
        assert confirm(client, f"/confirm/{old_token}").status_code == 200
        unsub = make_token(secret, Purpose.UNSUBSCRIBE, "gone@example.org")
        later.advance(minutes=1)
        assert client.post(f"/unsubscribe/{unsub}").status_code == 200
        assert store.subscribers.get("gone@example.org").status is SubscriberStatus.UNSUBSCRIBED
        r = client.post(f"/confirm/{old_token}")  # the old mail's link, followed again
        assert r.status_code == 400
        assert store.subscribers.get("gone@example.org").status is SubscriberStatus.UNSUBSCRIBED


def test_confirm_for_a_removed_subscriber_answers_plainly(
    web_client: TestClient, web_settings: Callable[..., Settings], store: Store
) -> None:
    token = make_token(web_settings().secret_key(), Purpose.CONFIRM, "never@example.org")
    r = web_client.post(f"/confirm/{token}")
    assert r.status_code == 400 and "never@example.org" not in r.text
    assert store.subscribers.get("never@example.org") is None


def test_rate_limits_per_ip_and_per_address(
    web_settings: Callable[..., Settings], store: Store, make_app: Callable[..., FastAPI], web_clock: Clock
) -> None:
    settings = web_settings()
    limits = Limits(ip_burst=5, ip_per_hour=60, address_burst=2, address_per_hour=6)
    with TestClient(make_app(settings, store, limits=limits)) as client:
        assert subscribe(client, "x@example.org").status_code == 200
        assert subscribe(client, "x@example.org").status_code == 200
        third = subscribe(client, "x@example.org")
        assert third.status_code == 429
        assert int(third.headers["Retry-After"]) > 0
        assert "Too many" in third.text
        assert len(outbox_messages(settings)) <= 2
        # other addresses still work from this IP until its bucket is empty
        assert subscribe(client, "y@example.org").status_code == 200
        assert subscribe(client, "z@example.org").status_code == 200
        assert subscribe(client, "w@example.org").status_code == 429  # 6th from this IP
        assert store.subscribers.get("w@example.org") is None
        web_clock.advance(minutes=10)  # both buckets refill with time
        assert subscribe(client, "x@example.org").status_code == 200


def test_invalid_form_is_a_422_page_with_reasons_and_nothing_stored(
    web_client: TestClient, web_settings: Callable[..., Settings], store: Store
) -> None:
    r = subscribe(web_client, "not-an-address", frequency="hourly", timezone="Mars/Olympus", topics=["nope"])
    assert r.status_code == 422
    text = "".join(parse(r.text).find(".//h:main", NS).itertext())
    for reason in ("not a valid email address", "choose one of", "time zone", "unknown topic"):
        assert reason in text
    assert store.subscribers.count() == 0
    assert outbox_messages(web_settings()) == []
    # the form comes back with what was typed, for correcting
    assert form_fields(r.text)["email"] == ["not-an-address"]


@pytest.mark.parametrize("transport", ["smtp"])
def test_confirmation_goes_through_smtp_when_configured(
    transport: str,
    web_settings: Callable[..., Settings],
    store: Store,
    make_app: Callable[..., FastAPI],
    smtp_server,
) -> None:
    settings = web_settings(email={"transport": transport, "smtp": {"port": smtp_server.port}})
    with TestClient(make_app(settings, store)) as client:
        assert subscribe(client, "smtp@example.org", name="S").status_code == 200
    [got] = smtp_server.received()
    assert got.rcpt == "smtp@example.org" and got.mail_from == "bounces@example.org"
    msg = got.message()
    assert "/confirm/" in link_from(msg, "confirm")


def test_confirmation_mail_is_dkim_signed_like_every_other(
    web_settings: Callable[..., Settings],
    store: Store,
    make_app: Callable[..., FastAPI],
    smtp_server,
    dkim_key,
) -> None:
    import dkim

    key, record = dkim_key
    settings = web_settings(
        email={
            "transport": "smtp",
            "smtp": {"port": smtp_server.port},
            "dkim": {"domain": "example.org", "selector": "news", "private_key_file": str(key)},
        }
    )
    with TestClient(make_app(settings, store)) as client:
        assert subscribe(client, "signed@example.org", name="S").status_code == 200
    [got] = smtp_server.received()
    assert got.message()["DKIM-Signature"]
    assert dkim.verify(got.data, dnsfunc=lambda name, timeout=5: record)  # the one fake: DNS


# -- ops.confirm: the one way a sign-up's mail is sent ---------------------------------------------

SIGNED_UP = datetime(2026, 12, 3, 10, 15, tzinfo=UTC)


def test_send_confirmation_hands_over_a_mail_whose_links_lead_to_the_base_url(
    web_settings: Callable[..., Settings],
) -> None:
    settings = web_settings()
    secret = b"seam-secret-0123456789abcdef0123456789"
    sent = send_confirmation(
        settings,
        secret,
        "seam@example.org",
        "Seam",
        already=False,
        now=SIGNED_UP,
        base_url="https://app.example.net/news",
        stop=threading.Event(),
    )
    assert sent
    [msg] = outbox_messages(settings)
    assert msg["Auto-Submitted"] == "auto-generated" and msg["List-Unsubscribe"] is None
    link = link_from(msg, "confirm")
    assert link.startswith("https://app.example.net/news/confirm/")
    assert read_token(secret, Purpose.CONFIRM, link.rsplit("/", 1)[1], now=SIGNED_UP) == "seam@example.org"


def test_send_confirmation_logs_and_returns_false_for_a_mail_it_cannot_build(
    web_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = web_settings()
    with caplog.at_level(logging.ERROR, logger="publisher.web"):
        sent = send_confirmation(
            settings,
            b"seam-secret-0123456789abcdef0123456789",
            "not an address",
            "",
            already=True,
            now=SIGNED_UP,
            base_url="https://app.example.net",
            stop=threading.Event(),
        )
    assert not sent
    assert "cannot prepare the confirmation mail for not an address" in caplog.text
    assert outbox_messages(settings) == []
