"""ESP webhooks under /hooks/<provider>: signed calls change the store once; anything else changes nothing.

The only fake is the provider: each test signs its payloads with keys it makes
(an RSA certificate under a CA of its own for SNS, an HMAC key for Mailgun, an
ECDSA P-256 key for SendGrid, a basic-auth password for Postmark), and SNS
certificates are served by a fetcher mapping the real-looking SNS URL to them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import ipaddress
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from sqlalchemy import select

from publisher.config import Settings
from publisher.errors import ConfigError
from publisher.store import Store
from publisher.store.schema import inbound_events
from publisher.web.hooks_common import RecentSet
from publisher.web.hooks_sns import HttpsFetcher
from tests.fixtures_web import API_TOKEN, Clock

CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem"
SUBSCRIBE_URL = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=t0k"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
MAILGUN_KEY = "mailgun-signing-key-0123456789abcdef"
POSTMARK_PASSWORD = "postmark-hook-password-0123456789abcdef"
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
ENVIRON = {
    "PUBLISHER_API_TOKEN": API_TOKEN,
    "PUBLISHER_MAILGUN_SIGNING_KEY": MAILGUN_KEY,
    "PUBLISHER_POSTMARK_HOOK_PASSWORD": POSTMARK_PASSWORD,
}
READERS = ("ann@example.org", "bob@example.org", "cat@example.org", "dan@example.org")
UNTOUCHED = "confirmed confirmed confirmed confirmed"


# -- the provider's side: keys, certificates, signatures -----------------------------------------


def make_cert(
    key: Any, name: str, ca_key: Any, *, ca: bool = False, ip: str | None = None
) -> x509.Certificate:
    """A certificate for ``key`` issued by "Test CA" (``ca_key``); valid from yesterday to next month."""
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Provider:
    """Everything the fake providers sign with, and what the app fetched from SNS."""

    sns_key: rsa.RSAPrivateKey
    sns_pem: bytes
    other_pem: bytes  # a valid certificate for another key
    sendgrid_key: ec.EllipticCurvePrivateKey
    fetched: list[str] = field(default_factory=list)

    def fetch(self, url: str) -> bytes:
        self.fetched.append(url)
        return {CERT_URL: self.sns_pem, CERT_URL + "?other": self.other_pem}.get(url, b"ok")

    def sns(self, kind: str, now: datetime, version: str = "2", **fields: str) -> dict[str, str]:
        msg = {
            "Type": kind,
            "MessageId": "m-1",
            "TopicArn": TOPIC,
            "Message": "",
            "SignatureVersion": version,
        }
        msg |= {"Timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "SigningCertURL": CERT_URL}
        if kind != "Notification":
            msg |= {"SubscribeURL": SUBSCRIBE_URL, "Token": "t0k"}
        msg |= fields
        names = NOTIFICATION_FIELDS if kind == "Notification" else CONFIRMATION_FIELDS
        canonical = "".join(f"{k}\n{msg[k]}\n" for k in names if k in msg)
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.sns_key.sign(canonical.encode(), padding.PKCS1v15(), algorithm)
        return msg | {"Signature": base64.b64encode(signature).decode()}

    def sendgrid_headers(self, body: bytes, when: datetime) -> dict[str, str]:
        stamp = str(int(when.timestamp()))
        signature = self.sendgrid_key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }

    @property
    def sendgrid_public(self) -> str:
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        return base64.b64encode(
            self.sendgrid_key.public_key().public_bytes(serialization.Encoding.DER, spki)
        ).decode()


def ses_event(kind: str, *addresses: str, bounce_type: str = "Permanent") -> str:
    """The SES event JSON SNS carries in Message."""
    if kind == "Bounce":
        rcpts = [
            {"emailAddress": a, "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 no"} for a in addresses
        ]
        body: dict[str, Any] = {"bounce": {"bounceType": bounce_type, "bouncedRecipients": rcpts}}
    elif kind == "Complaint":
        body = {"complaint": {"complainedRecipients": [{"emailAddress": a} for a in addresses]}}
    else:
        body = {"delivery": {"recipients": list(addresses), "smtpResponse": "250 ok"}}
    return json.dumps({"notificationType": kind, "mail": {"messageId": "x"}, **body})


def mailgun(
    event: str, to: str, when: datetime, token: str = "tok-1", key: str = MAILGUN_KEY, **ev: Any
) -> bytes:
    stamp = str(int(when.timestamp()))
    signed = {"timestamp": stamp, "token": token}
    signed["signature"] = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    data = {"event": event, "id": ev.pop("id", f"ev-{token}"), "recipient": to, **ev}
    return json.dumps({"signature": signed, "event-data": data}).encode()


def pm(record_type: str, **fields: Any) -> dict[str, Any]:
    """A Postmark webhook record."""
    return {"RecordType": record_type, "SuppressionReason": "ManualSuppression", **fields}


def sg(event: str, email: Any, event_id: str, **fields: Any) -> dict[str, Any]:
    """A SendGrid event."""
    return {"event": event, "email": email, "sg_event_id": event_id, **fields}


def basic(user: str = "postmark", password: str = POSTMARK_PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def provider_keys() -> tuple[rsa.RSAPrivateKey, bytes, bytes, ec.EllipticCurvePrivateKey]:
    ca = ec.generate_private_key(ec.SECP256R1())
    leaf, other = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    name = "sns.amazonaws.com"
    return (
        leaf,
        pem(make_cert(leaf, name, ca)),
        pem(make_cert(other, name, ca)),
        ec.generate_private_key(ec.SECP256R1()),
    )


@pytest.fixture
def provider(provider_keys: tuple[Any, ...]) -> Provider:
    return Provider(*provider_keys)


# -- the app's side ----------------------------------------------------------------------------


@dataclass
class Hooked:
    client: TestClient
    store: Store
    clock: Clock
    settings: Settings

    def post(self, provider: str, body: bytes | dict[str, Any] | list[Any], **headers: str) -> int:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.post(f"/hooks/{provider}", content=data, headers=headers).status_code

    def statuses(self) -> str:
        return " ".join(self.store.subscribers.get(a).status.value for a in READERS)

    def events(self) -> str:
        """'key=kind' of every fact the store recorded, sorted."""
        with self.store.read() as conn:
            rows = conn.execute(select(inbound_events.c.key, inbound_events.c.kind))
            return " ".join(sorted(f"{key}={kind}" for key, kind in rows))


@pytest.fixture
def hooks_config(provider: Provider) -> dict[str, Any]:
    return {
        "ses": {"topics": [TOPIC]},
        "postmark": {"username": "postmark"},
        "sendgrid": {"public_key": provider.sendgrid_public},
    }


@pytest.fixture
def hooked(
    web_settings: Callable[..., Settings],
    make_app: Callable[..., Any],
    store: Store,
    web_clock: Clock,
    provider: Provider,
    hooks_config: dict[str, Any],
) -> Iterator[Hooked]:
    settings = web_settings(hooks=hooks_config)
    for address in READERS:
        store.subscribers.add(address, now=web_clock())
    with TestClient(make_app(settings, store, environ=ENVIRON, fetch=provider.fetch)) as client:
        yield Hooked(client, store, web_clock, settings)


# -- Amazon SES through SNS --------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_an_ses_hard_bounce_marks_the_reader_once(hooked: Hooked, provider: Provider, version: str) -> None:
    msg = provider.sns(
        "Notification", hooked.clock(), version, Message=ses_event("Bounce", "Ann@Example.org")
    )
    assert hooked.post("ses", msg) == 200
    assert (hooked.statuses(), hooked.events()) == (
        UNTOUCHED.replace("confirmed", "bounced", 1),
        "ses:m-1:0=hard_bounce",
    )
    assert hooked.post("ses", msg) == 400  # the same MessageId again: a replay
    assert hooked.events() == "ses:m-1:0=hard_bounce"
    assert provider.fetched == [CERT_URL]  # the certificate is fetched once, then cached


def test_ses_soft_bounces_complaints_and_deliveries(hooked: Hooked, provider: Provider) -> None:
    soft = ses_event("Bounce", "bob@example.org", "nobody@example.org", bounce_type="Transient")
    messages = [soft, ses_event("Complaint", "cat@example.org"), ses_event("Delivery", "dan@example.org")]
    for n, message in enumerate(messages):
        assert (
            hooked.post(
                "ses", provider.sns("Notification", hooked.clock(), Message=message, MessageId=f"m-{n}")
            )
            == 200
        )
    assert hooked.statuses() == "confirmed confirmed complained confirmed"  # one soft bounce is not enough
    assert (
        hooked.events()
        == "ses:m-0:0=soft_bounce ses:m-0:1=soft_bounce ses:m-1:0=complaint ses:m-2:0=delivered"
    )


def test_a_subscription_is_confirmed_only_for_a_configured_topic(hooked: Hooked, provider: Provider) -> None:
    now = hooked.clock()
    assert hooked.post("ses", provider.sns("SubscriptionConfirmation", now)) == 200
    assert provider.fetched == [CERT_URL, SUBSCRIBE_URL]
    foreign = provider.sns("SubscriptionConfirmation", now, MessageId="m-2", TopicArn=TOPIC + "-evil")
    away = provider.sns(
        "SubscriptionConfirmation", now, MessageId="m-3", SubscribeURL="https://evil.example/"
    )
    assert (hooked.post("ses", foreign), hooked.post("ses", away)) == (401, 401)
    assert provider.fetched == [CERT_URL, SUBSCRIBE_URL]


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.amazonaws.com.evil.example/SimpleNotificationService-abc.pem",
        "https://sns.eu-west-1.amazonaws.com.evil.example/x.pem",
        "https://sns.eu-west-1.amazonaws.com@evil.example/x.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/x.pem",
        "https://evil.example/?sns.eu-west-1.amazonaws.com",
        "https://sns.eu_west.amazonaws.com/x.pem",
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.txt",
    ],
)
def test_a_certificate_from_anywhere_but_sns_is_never_fetched(
    hooked: Hooked, provider: Provider, url: str
) -> None:
    msg = provider.sns("Notification", hooked.clock(), Message=ses_event("Bounce", "ann@example.org"))
    assert hooked.post("ses", msg | {"SigningCertURL": url}) == 401
    assert provider.fetched == [] and hooked.events() == ""


def test_sns_messages_that_are_forged_stale_or_malformed_change_nothing(
    hooked: Hooked, provider: Provider
) -> None:
    now, bounce = hooked.clock(), ses_event("Bounce", "ann@example.org")
    good = provider.sns("Notification", now, Message=bounce)
    codes = [
        hooked.post("ses", good | {"Message": ses_event("Bounce", "bob@example.org")}),  # signed another body
        hooked.post("ses", good | {"SigningCertURL": CERT_URL + "?other"}),  # another key's certificate
        hooked.post("ses", good | {"SignatureVersion": "3"}),
        hooked.post("ses", {k: v for k, v in good.items() if k != "Signature"}),
        hooked.post("ses", good | {"Signature": "not base64!"}),
        hooked.post("ses", provider.sns("Notification", now - timedelta(minutes=61), Message=bounce)),
        hooked.post("ses", provider.sns("Notification", now + timedelta(minutes=6), Message=bounce)),
        hooked.post("ses", b'{"Type": "Notification", '),
        hooked.post("ses", good | {"Type": "Surprise"}),
        hooked.post("ses", good | {"MessageId": 7}),
        hooked.post("ses", b"[" * 30000 + b"]" * 30000),
    ]
    assert codes == [401, 401, 401, 401, 401, 400, 400, 400, 400, 400, 400]
    assert (hooked.statuses(), hooked.events()) == (UNTOUCHED, "")


def test_a_replayed_sns_message_after_a_restart_has_no_second_effect(
    hooked: Hooked, provider: Provider, make_app: Callable[..., Any]
) -> None:
    """The per-process replay memory is gone after a restart; the store's keys still hold."""
    msg = provider.sns("Notification", hooked.clock(), Message=ses_event("Bounce", "ann@example.org"))
    assert hooked.post("ses", msg) == 200
    hooked.store.subscribers.set_status("ann@example.org", "confirmed", now=hooked.clock())
    with TestClient(make_app(hooked.settings, hooked.store, environ=ENVIRON, fetch=provider.fetch)) as fresh:
        assert fresh.post("/hooks/ses", content=json.dumps(msg)).status_code == 200
    assert (hooked.statuses(), hooked.events()) == (UNTOUCHED, "ses:m-1:0=hard_bounce")


# -- Postmark ----------------------------------------------------------------------------------


def test_postmark_records_with_basic_auth(hooked: Hooked) -> None:
    records = [
        pm("Bounce", ID=42, Type="HardBounce", Email="ann@example.org", Details="550 5.1.1 unknown"),
        pm("SpamComplaint", ID=43, Type="SpamComplaint", Email="bob@example.org"),
        pm("SubscriptionChange", MessageID="p-1", Recipient="cat@example.org", SuppressSending=True),
        pm("SubscriptionChange", MessageID="p-2", Recipient="dan@example.org", SuppressSending=False),
        pm("Delivery", MessageID="p-3", Recipient="dan@example.org"),
        pm("Bounce", ID=44, Type="AutoResponder", Email="dan@example.org"),
    ]
    assert [hooked.post("postmark", r, **basic()) for r in records] == [200] * 6
    assert hooked.post("postmark", records[0], **basic()) == 200  # a repeat: its key is taken, no effect
    assert hooked.statuses() == "bounced complained unsubscribed confirmed"
    assert hooked.events() == (
        "postmark:42:Bounce=hard_bounce postmark:43:SpamComplaint=complaint "
        "postmark:p-1:SubscriptionChange=unsubscribe postmark:p-3:Delivery=delivered"
    )


def test_postmark_refuses_wrong_or_missing_credentials(hooked: Hooked) -> None:
    bounce = pm("Bounce", ID=1, Type="HardBounce", Email="ann@example.org")
    refused = [
        hooked.client.post("/hooks/postmark", json=bounce, headers=headers)
        for headers in (
            {},
            basic(password=POSTMARK_PASSWORD + "x"),
            basic(user="other"),
            {"Authorization": "Basic %%%"},
            {"Authorization": "Bearer " + POSTMARK_PASSWORD},
        )
    ]
    assert [r.status_code for r in refused] == [401] * 5
    assert refused[0].headers["www-authenticate"].startswith("Basic")
    assert hooked.post("postmark", b"{not json", **basic()) == 400
    assert (hooked.statuses(), hooked.events()) == (UNTOUCHED, "")


@pytest.mark.parametrize(
    "hooks_config", [{"postmark": {"username": "postmark", "networks": ["198.51.100.0/24"]}}]
)
def test_postmark_only_from_its_networks(
    hooked: Hooked, make_app: Callable[..., Any], provider: Provider
) -> None:
    bounce = pm("Bounce", ID=1, Type="HardBounce", Email="ann@example.org")
    assert hooked.post("postmark", bounce, **basic()) == 401  # the test client is not in the network
    app = make_app(hooked.settings, hooked.store, environ=ENVIRON, fetch=provider.fetch)
    with TestClient(app, client=("198.51.100.7", 4000)) as inside:
        assert inside.post("/hooks/postmark", json=bounce, headers=basic()).status_code == 200
    assert hooked.statuses() == UNTOUCHED.replace("confirmed", "bounced", 1)


# -- Mailgun -----------------------------------------------------------------------------------


def test_mailgun_events_apply_once(hooked: Hooked) -> None:
    now, status = hooked.clock(), {"message": "550 5.1.1 no such user", "code": 550}
    calls = [
        mailgun("failed", "ann@example.org", now, "t1", severity="permanent", **{"delivery-status": status}),
        mailgun("failed", "bob@example.org", now, "t2", severity="temporary"),
        mailgun("complained", "cat@example.org", now, "t3"),
        mailgun("unsubscribed", "dan@example.org", now, "t4"),
        mailgun("delivered", "bob@example.org", now, "t5"),
        mailgun("opened", "bob@example.org", now, "t6"),
    ]
    assert [hooked.post("mailgun", c) for c in calls] == [200] * 6
    assert hooked.post("mailgun", calls[0]) == 400  # the same token: a replay
    reused = mailgun("complained", "bob@example.org", now, "t1", id="fresh-id")  # a new body, an old token
    assert hooked.post("mailgun", reused) == 400
    assert hooked.statuses() == "bounced confirmed complained unsubscribed"
    assert hooked.events() == (
        "mailgun:ev-t1=hard_bounce mailgun:ev-t2=soft_bounce mailgun:ev-t3=complaint "
        "mailgun:ev-t4=unsubscribe mailgun:ev-t5=delivered"
    )


def test_mailgun_refuses_bad_signatures_and_stale_calls(hooked: Hooked) -> None:
    now, ann = hooked.clock(), "ann@example.org"
    unsigned, tampered = (
        json.loads(mailgun("complained", ann, now)),
        json.loads(mailgun("complained", ann, now)),
    )
    del unsigned["signature"]
    tampered["signature"]["token"] = "tok-2"
    codes = [
        hooked.post("mailgun", mailgun("complained", ann, now, key="another-key")),
        hooked.post("mailgun", unsigned),
        hooked.post("mailgun", tampered),
        hooked.post("mailgun", mailgun("complained", ann, now - timedelta(minutes=6), "old")),
        hooked.post("mailgun", mailgun("complained", ann, now + timedelta(minutes=6), "ahead")),
        hooked.post("mailgun", b"\xff\xfe not utf-8"),
        hooked.post("mailgun", b"[]"),
    ]
    assert codes == [401, 401, 401, 400, 400, 400, 400]
    assert (hooked.statuses(), hooked.events()) == (UNTOUCHED, "")


# -- SendGrid ----------------------------------------------------------------------------------


def sendgrid(hooked: Hooked, provider: Provider, events: Any, when: datetime | None = None) -> int:
    body = json.dumps(events).encode()
    return hooked.post("sendgrid", body, **provider.sendgrid_headers(body, when or hooked.clock()))


def test_a_sendgrid_batch_applies_each_event_once(hooked: Hooked, provider: Provider) -> None:
    batch = [
        sg("bounce", "ann@example.org", "s1", type="bounce", status="5.1.1"),
        sg("bounce", "bob@example.org", "s2", type="blocked"),
        sg("dropped", "ann@example.org", "s3", reason="Bounced Address"),
        sg("dropped", "bob@example.org", "s4", reason="Spam Content"),
        sg("spamreport", "cat@example.org", "s5"),
        sg("group_unsubscribe", "dan@example.org", "s6"),
        sg("unsubscribe", "stranger@example.org", "s7"),
        sg("delivered", "bob@example.org", "s8"),
        sg("open", "bob@example.org", "s9"),
    ]
    assert sendgrid(hooked, provider, batch) == 200
    assert hooked.statuses() == "bounced confirmed complained unsubscribed"
    expected = (
        "sendgrid:s1=hard_bounce sendgrid:s2=soft_bounce sendgrid:s3=hard_bounce sendgrid:s5=complaint "
        "sendgrid:s6=unsubscribe sendgrid:s7=unsubscribe sendgrid:s8=delivered"
    )
    assert hooked.events() == expected
    hooked.clock.advance(seconds=2)
    assert sendgrid(hooked, provider, batch) == 200  # the batch re-signed later: the keys hold
    assert hooked.events() == expected


def test_sendgrid_refuses_forged_stale_replayed_or_oversized_calls(
    hooked: Hooked, provider: Provider
) -> None:
    now, event = hooked.clock(), [sg("spamreport", "ann@example.org", "s1")]
    body, stamp = json.dumps(event).encode(), "X-Twilio-Email-Event-Webhook-Timestamp"
    signed, malformed = provider.sendgrid_headers(body, now), b'[{"event": "spamreport", '
    codes = [
        hooked.post("sendgrid", body),
        hooked.post("sendgrid", body, **provider.sendgrid_headers(b"[]", now)),  # signed another body
        hooked.post("sendgrid", body, **{**signed, stamp: str(int(now.timestamp()) + 1)}),
        hooked.post("sendgrid", body, **{**signed, "X-Twilio-Email-Event-Webhook-Signature": "AAAA"}),
        sendgrid(hooked, provider, event, now - timedelta(minutes=6)),
        sendgrid(hooked, provider, event, now + timedelta(minutes=6)),
        sendgrid(hooked, provider, {"event": "spamreport"}),
        hooked.post("sendgrid", malformed, **provider.sendgrid_headers(malformed, now)),
        sendgrid(hooked, provider, [{"event": "open"}] * 1001),
    ]
    assert codes == [401, 401, 401, 401, 400, 400, 400, 400, 413]
    assert hooked.events() == ""
    assert hooked.post("sendgrid", body, **signed) == 200
    assert hooked.post("sendgrid", body, **signed) == 400  # the same signature again: a replay
    assert hooked.events() == "sendgrid:s1=complaint"


# -- every provider ----------------------------------------------------------------------------


def test_hostile_addresses_and_keys_are_dropped(hooked: Hooked, provider: Provider) -> None:
    hostile = [
        "a" * 10_000 + "@example.org",
        "ann@example.org\x00",
        "ann\x00@example.org",
        "=?utf-8?q?ann=40example.org?=",
        "ann@example.org\r\nBcc: x@example.org",
        "",
        None,
        ["ann@example.org"],
    ]
    batch = [sg("spamreport", a, f"h{i}") for i, a in enumerate(hostile)]
    batch += [
        sg("spamreport", "bob@example.org", "k" * 10_000),
        sg("spamreport", "bob@example.org", "bad\x00id"),
    ]
    assert sendgrid(hooked, provider, batch) == 200
    assert (hooked.statuses(), hooked.events()) == (UNTOUCHED, "")


def test_the_answer_does_not_say_whether_the_address_is_ours(hooked: Hooked) -> None:
    now = hooked.clock()
    known = hooked.client.post("/hooks/mailgun", content=mailgun("complained", "ann@example.org", now, "a"))
    unknown = hooked.client.post("/hooks/mailgun", content=mailgun("complained", "zed@example.org", now, "b"))
    assert (
        (known.status_code, known.content) == (unknown.status_code, unknown.content) == (200, b'{"ok":true}')
    )


def test_unconfigured_hooks_answer_503_and_change_nothing(
    web_settings: Callable[..., Settings], make_app: Callable[..., Any], store: Store, provider: Provider
) -> None:
    store.subscribers.add("ann@example.org", now=datetime.now(UTC))
    with TestClient(make_app(web_settings(), store, fetch=provider.fetch)) as client:
        codes = [
            client.post(f"/hooks/{p}", content=b"{}").status_code
            for p in ("ses", "postmark", "mailgun", "sendgrid")
        ]
        assert codes == [503] * 4
        assert client.post("/hooks/unknown", content=b"{}").status_code == 404
    assert store.subscribers.get("ann@example.org").status.value == "confirmed"


def test_a_body_over_the_cap_is_413_and_a_get_changes_nothing(hooked: Hooked) -> None:
    big = mailgun("complained", "ann@example.org", hooked.clock(), "t", padding="x" * 1_100_000)
    assert hooked.post("mailgun", big) == 413
    assert hooked.client.get("/hooks/mailgun").status_code != 200  # the archive answers a GET
    assert (hooked.statuses(), hooked.events()) == (UNTOUCHED, "")


def test_a_webhook_batch_past_the_forms_cap_is_taken(hooked: Hooked, provider: Provider) -> None:
    """SNS messages run to 256 KB and SendGrid posts batches: /hooks/ has a cap of its own (1 MB),
    while a form or API body stays capped at 64 KB."""
    batch = [sg("bounce", "ann@example.org", "big1", type="bounce", status="5.1.1", pad="x" * 200_000)]
    assert sendgrid(hooked, provider, batch) == 200
    assert hooked.events() == "sendgrid:big1=hard_bounce"
    form = hooked.client.post("/subscribe", data={"email": "a@example.org", "name": "x" * 200_000})
    assert form.status_code == 413


# -- the production fetcher, the replay memory, the config -------------------------------------


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, ssl.SSLContext, list[str]]]:
    """A real HTTPS server on 127.0.0.1, its certificate from a test CA: (URL, client context, paths hit)."""
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "leaf.pem").write_bytes(pem(make_cert(leaf_key, "127.0.0.1", ca_key, ip="127.0.0.1")))
    private = serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    (tmp_path / "leaf.key").write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, *private))
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/cert.pem")
                self.end_headers()
                return
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"certificate bytes")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = ssl.create_default_context(cadata=pem(make_cert(ca_key, "Test CA", ca_key, ca=True)).decode())
    yield f"https://127.0.0.1:{server.server_address[1]}", client, hits
    server.shutdown()
    server.server_close()


def test_the_https_fetcher_gets_over_tls_and_follows_no_redirect(
    https_server: tuple[str, ssl.SSLContext, list[str]],
) -> None:
    base, context, hits = https_server
    fetch = HttpsFetcher(timeout=5, context=context)
    assert fetch(f"{base}/cert.pem") == b"certificate bytes"
    with pytest.raises(OSError):
        fetch(f"{base}/redirect")
    with pytest.raises(OSError):
        HttpsFetcher(timeout=5)(f"{base}/cert.pem")  # the system's CAs do not know the test CA
    with pytest.raises(OSError):
        fetch(base.replace("https://", "http://") + "/cert.pem")
    assert hits == ["/cert.pem", "/redirect"]


def test_the_replay_memory_is_bounded_and_forgets_what_is_stale() -> None:
    recent, now, ttl = RecentSet(cap=3), datetime(2026, 1, 1, tzinfo=UTC), timedelta(minutes=10)
    assert [recent.reserve(t, now, ttl) for t in ("a", "b", "a")] == [True, True, False]
    assert [recent.reserve(t, now, ttl) for t in ("c", "d", "e")] == [True, True, True]
    assert recent.reserve("a", now, ttl)  # pushed out by the cap (the store's keys still hold)
    assert recent.reserve("e", now + ttl, ttl)  # expired with its window
    recent.release("e")
    assert recent.reserve("e", now + ttl, ttl)


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        (
            {"sendgrid": {"public_key": "bm90IGEga2V5"}},
            "hooks.sendgrid.public_key: expected the base64 public key",
        ),
        ({"ses": {"topics": ["arn:aws:sqs:eu-west-1:1:x"]}}, "hooks.ses.topics: expected an SNS topic ARN"),
        ({"postmark": {"networks": ["not a network"]}}, "hooks.postmark.networks.0"),
    ],
)
def test_bad_hook_settings_fail_at_start(
    web_settings: Callable[..., Settings], hooks: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        web_settings(hooks=hooks)
    assert any(message in line for line in err.value.lines())


def test_a_short_postmark_password_stops_the_app(
    web_settings: Callable[..., Settings], make_app: Callable[..., Any], store: Store
) -> None:
    settings = web_settings(hooks={"postmark": {"username": "postmark"}})
    with pytest.raises(ConfigError, match="the Postmark hook password is 5 bytes"):
        make_app(settings, store, environ={**ENVIRON, "PUBLISHER_POSTMARK_HOOK_PASSWORD": "short"})
