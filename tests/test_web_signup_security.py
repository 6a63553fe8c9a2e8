"""Sign-up and confirm as an attacker uses them: link scanners, mail-bombing, stale links, timing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from publisher.config import Settings
from publisher.models import SubscriberStatus
from publisher.store import Store
from publisher.tokens import Purpose, make_token
from publisher.web import Limits
from publisher.web.server import ServerHandle
from tests.fixtures_web import Clock, outbox_messages
from tests.polling import wait_for


def subscribe(client: Any, email: str, **fields: object) -> Any:
    data: dict[str, object] = {"email": email, "frequency": "instant", "timezone": "Europe/London"}
    data.update(fields)
    return client.post("/subscribe", data=data)


# -- 3. fetching a link changes nothing ---------------------------------------------------------


def test_get_and_head_of_a_confirm_link_confirm_nothing(
    web_client: TestClient, web_settings: Callable[..., Settings], store: Store
) -> None:
    """Link scanners and prefetchers GET (and HEAD) every link in a mail: that must not confirm."""
    subscribe(web_client, "scanned@example.org")
    token = make_token(web_settings().secret_key(), Purpose.CONFIRM, "scanned@example.org")
    for _ in range(3):
        assert web_client.get(f"/confirm/{token}").status_code == 200
        assert web_client.head(f"/confirm/{token}").status_code == 200
    assert store.subscribers.get("scanned@example.org").status is SubscriberStatus.PENDING
    # the button's POST needs no cookie and no form field: the link is the secret
    web_client.cookies.clear()
    done = web_client.post(f"/confirm/{token}")
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert store.subscribers.get("scanned@example.org").status is SubscriberStatus.CONFIRMED


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}],
    ids=["foreign-origin", "cross-site"],
)
def test_a_cross_site_post_does_not_confirm(
    headers: dict[str, str], web_client: TestClient, web_settings: Callable[..., Settings], store: Store
) -> None:
    subscribe(web_client, "victim@example.org")
    token = make_token(web_settings().secret_key(), Purpose.CONFIRM, "victim@example.org")
    r = web_client.post(f"/confirm/{token}", headers=headers)
    assert r.status_code == 403
    assert store.subscribers.get("victim@example.org").status is SubscriberStatus.PENDING


def test_no_get_or_head_changes_state_anywhere(
    web_client: TestClient, web_settings: Callable[..., Settings], store: Store, web_clock: Clock
) -> None:
    """Every link we mail (confirm, unsubscribe, preferences) is safe to fetch any number of times."""
    secret = web_settings().secret_key()
    store.subscribers.add("reader@example.org", now=web_clock(), status="pending")
    before = store.subscribers.get("reader@example.org")
    for purpose in (Purpose.CONFIRM, Purpose.UNSUBSCRIBE, Purpose.PREFERENCES):  # the links we mail
        path = f"/{purpose.value}/{make_token(secret, purpose, 'reader@example.org', now=web_clock())}"
        for method in ("GET", "HEAD"):
            assert web_client.request(method, path).status_code == 200, (method, path)
    assert store.subscribers.get("reader@example.org") == before


# -- 4. one mailbox, one bucket; no mail to addresses that bounced or complained -----------------


def test_plus_tags_and_case_share_one_mailbox_limit(
    web_settings: Callable[..., Settings], store: Store, make_app: Callable[..., FastAPI]
) -> None:
    settings = web_settings()
    limits = Limits(ip_burst=100, ip_per_hour=60, address_burst=3, address_per_hour=6)
    with TestClient(make_app(settings, store, limits=limits)) as client:
        codes = [subscribe(client, f"Victim+{i}@Example.com").status_code for i in range(20)]
        codes.append(subscribe(client, "VICTIM@example.com").status_code)
    assert codes[:3] == [200, 200, 200] and set(codes[3:]) == {429}
    assert len(outbox_messages(settings)) == 3  # not 20: the mailbox is one


@pytest.mark.parametrize("status", [SubscriberStatus.COMPLAINED, SubscriberStatus.BOUNCED])
def test_no_confirmation_to_an_address_that_complained_or_bounced(
    status: SubscriberStatus,
    web_client: TestClient,
    web_settings: Callable[..., Settings],
    store: Store,
    web_clock: Clock,
) -> None:
    store.subscribers.add("angry@example.org", now=web_clock(), name="Angry", status=status)
    unknown = subscribe(web_client, "fresh@example.org")
    known = subscribe(web_client, "angry@example.org", name="Someone")
    assert known.status_code == unknown.status_code == 200
    assert known.text.replace("angry@", "X@") == unknown.text.replace("fresh@", "X@")  # nothing revealed
    sent_to = [m["To"].addresses[0].addr_spec for m in outbox_messages(web_settings())]
    assert sent_to == ["fresh@example.org"]
    row = store.subscribers.get("angry@example.org")
    assert (row.status, row.name) == (status, "Angry")
    # and a confirm link made before they left does not bring them back
    old = make_token(web_settings().secret_key(), Purpose.CONFIRM, "angry@example.org", now=web_clock())
    web_clock.advance(seconds=1)
    assert web_client.post(f"/confirm/{old}").status_code == 400
    assert store.subscribers.get("angry@example.org").status is status


# -- 5. a stale confirm link, to the microsecond -------------------------------------------------


def test_a_confirm_link_issued_in_the_same_second_before_an_unsubscribe_is_refused(
    web_settings: Callable[..., Settings], store: Store, make_app: Callable[..., FastAPI]
) -> None:
    settings = web_settings()
    secret = settings.secret_key()
    start = datetime.now(UTC).replace(microsecond=100_000)
    clock = Clock(start)
    with TestClient(make_app(settings, store, clock=clock)) as client:
        subscribe(client, "quick@example.org")
        link = make_token(secret, Purpose.CONFIRM, "quick@example.org", now=start)
        assert client.post(f"/confirm/{link}").status_code == 200
        clock.advance(microseconds=300_000)  # same second
        client.post(f"/unsubscribe/{make_token(secret, Purpose.UNSUBSCRIBE, 'quick@example.org')}")
        assert store.subscribers.get("quick@example.org").status is SubscriberStatus.UNSUBSCRIBED
        clock.advance(microseconds=100_000)  # still the same second
        assert client.post(f"/confirm/{link}").status_code == 400
        left = clock()
        tie = make_token(
            secret, Purpose.CONFIRM, "quick@example.org", now=left - timedelta(microseconds=100_000)
        )
        assert client.post(f"/confirm/{tie}").status_code == 400  # issued the very microsecond it left
        assert store.subscribers.get("quick@example.org").status is SubscriberStatus.UNSUBSCRIBED
        after = make_token(
            secret, Purpose.CONFIRM, "quick@example.org", now=left - timedelta(microseconds=99_999)
        )
        assert client.post(f"/confirm/{after}").status_code == 200
        assert store.subscribers.get("quick@example.org").status is SubscriberStatus.CONFIRMED


# -- 8. the answer goes out before the store is touched ------------------------------------------


class GatedStore:
    """The real store, whose subscriber table waits for a gate: shows when the sign-up touches it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.gate = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @property
    def subscribers(self) -> Any:
        assert self.gate.wait(30), "the gate was never opened"
        return self._store.subscribers


@pytest.fixture
def gated(store: Store) -> Iterator[GatedStore]:
    gated = GatedStore(store)
    yield gated
    gated.gate.set()


@pytest.mark.parametrize("state", ["unknown", "pending", "confirmed", "complained"])
def test_the_sign_up_answers_before_the_store_is_touched(
    state: str,
    web_settings: Callable[..., Settings],
    store: Store,
    gated: GatedStore,
    make_app: Callable[..., FastAPI],
    live_server: Callable[..., ServerHandle],
    web_clock: Clock,
) -> None:
    """Whatever the address's state, the page comes back while the table cannot be read: so the time
    it takes cannot depend on that state. The work is done afterwards."""
    if state != "unknown":
        store.subscribers.add("t@example.org", now=web_clock(), status=state, name="T")
    settings = web_settings()
    handle = live_server(settings, make_app(settings, gated))  # type: ignore[arg-type]
    r = subscribe(httpx.Client(base_url=handle.url, timeout=10), "t@example.org", name="New")
    assert r.status_code == 200 and "Check your inbox" in r.text
    assert not gated.gate.is_set()
    gated.gate.set()
    if state == "complained":
        wait_for(lambda: store.subscribers.get("t@example.org") is not None)
        return
    wait_for(lambda: len(outbox_messages(settings)) == 1)
    assert store.subscribers.get("t@example.org") is not None


# -- issue 13.14: a form embedded elsewhere sends only the address ------------------------------


@pytest.mark.parametrize("fields", [{}, {"name": "Emb"}, {"timezone": "", "frequency": ""}])
def test_an_email_only_sign_up_takes_the_defaults(
    fields: dict[str, str], web_client: TestClient, web_settings: Callable[..., Settings], store: Store
) -> None:
    r = web_client.post("/subscribe", data={"email": "embedded@example.org", **fields})
    assert r.status_code == 200 and "Check your inbox" in r.text
    sub = store.subscribers.get("embedded@example.org")
    assert sub is not None and sub.status is SubscriberStatus.PENDING
    assert (sub.timezone, sub.frequency.value, sub.topics) == (web_settings().site.timezone, "instant", ())
    assert len(outbox_messages(web_settings())) == 1
    # a value that is sent must still be a good one
    bad = web_client.post("/subscribe", data={"email": "embedded2@example.org", "timezone": "Mars/Base"})
    assert bad.status_code == 422 and store.subscribers.get("embedded2@example.org") is None


def test_a_confirmed_sign_up_takes_an_erased_address_off_the_suppression_list(
    web_client: TestClient, web_settings: Callable[..., Settings], store: Store, web_clock: Clock
) -> None:
    """Issue 14: erasure keeps the address unmailable; signing up again and confirming is consent."""
    from publisher.ops.feedback import erase_subscriber, hasher_for

    settings = web_settings()
    hasher = hasher_for(settings.secret_key())
    store.subscribers.add("back@example.org", now=web_clock())
    assert erase_subscriber(store, settings, "back@example.org", now=web_clock())
    assert store.feedback.suppressed("back@example.org", hasher=hasher) == "erased"
    web_clock.advance(seconds=1)
    assert subscribe(web_client, "back@example.org").status_code == 200
    assert store.feedback.suppressed("back@example.org", hasher=hasher) == "erased"  # not by signing up
    token = make_token(settings.secret_key(), Purpose.CONFIRM, "back@example.org", now=web_clock())
    assert web_client.post(f"/confirm/{token}").status_code == 200
    assert store.feedback.suppressed("back@example.org", hasher=hasher) is None
    assert store.subscribers.get("back@example.org").status is SubscriberStatus.CONFIRMED
