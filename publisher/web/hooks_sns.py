"""Amazon SES events through SNS (``/hooks/ses``): the SNS signature, the topic, then the SES event.

SNS signs a canonical string of the message's fields with the key of a
certificate it serves from ``SigningCertURL`` (SignatureVersion 1: SHA1withRSA,
2: SHA256withRSA; AWS, "Verifying the signatures of Amazon SNS messages").
Anyone with an AWS account can get SNS to sign a message from their own topic,
so a valid signature proves little alone: only topics listed in
``hooks.ses.topics`` are believed, and only those get a subscription confirmed.
The certificate URL (and the SubscribeURL we GET to confirm) must be https on
``sns.<region>.amazonaws.com``: a look-alike host, http, a port or user-info in
the URL is refused before anything is fetched. Fetching is a ``Fetcher`` given
to the app (tests serve their own certificate); the production one uses urllib
with a timeout and no redirects, and certificates are cached by URL.
"""

from __future__ import annotations

import base64
import binascii
import ssl
import threading
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.error import URLError
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from publisher.config import SesHookConfig
from publisher.models import Feedback, FeedbackKind
from publisher.web.hooks_common import (
    Call,
    HookError,
    Verified,
    check_count,
    check_fresh,
    enhanced_status,
    feedback,
    keep,
    mapping,
    parse_json,
    parse_text_json,
    text,
)

Fetcher = Callable[[str], bytes]  # GET an https URL, return the body; raises OSError when it cannot
MAX_AGE = timedelta(hours=1)
MAX_AHEAD = timedelta(minutes=5)
MAX_FETCH = 64 * 1024
_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the host rule was checked on this URL, not on wherever it points next


class HttpsFetcher:
    """The production ``Fetcher``: urllib, a timeout, no redirects, at most ``MAX_FETCH`` bytes."""

    def __init__(self, timeout: float = 5.0, context: ssl.SSLContext | None = None) -> None:
        ctx = context or ssl.create_default_context()
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), _NoRedirect)
        self._timeout = timeout

    def __call__(self, url: str) -> bytes:
        if not url.startswith("https://"):
            raise URLError("only https")
        with self._opener.open(url, timeout=self._timeout) as answer:
            if answer.status != 200:
                raise URLError(f"HTTP {answer.status}")
            return bytes(answer.read(MAX_FETCH))


class CertCache:
    """Signing certificates by URL (SNS rotates them rarely; a fetch per message would be absurd)."""

    def __init__(self, fetch: Fetcher, size: int = 32) -> None:
        self._fetch = fetch
        self._size = size
        self._certs: OrderedDict[str, x509.Certificate] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str) -> x509.Certificate:
        with self._lock:
            if url in self._certs:
                return self._certs[url]
        try:
            cert = x509.load_pem_x509_certificate(self._fetch(url))
        except (OSError, ValueError):
            raise HookError(503, "the signing certificate could not be fetched; try again") from None
        with self._lock:
            self._certs[url] = cert
            while len(self._certs) > self._size:
                self._certs.popitem(last=False)
        return cert


def is_sns_url(url: str) -> bool:
    """Whether ``url`` is https on ``sns.<region>.amazonaws.com``, with no port or user-info."""
    if any(c in url for c in "\\ \t\r\n\x00") or len(url) > 2048:
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    host = parts.hostname or ""
    labels = host.split(".")
    return (
        parts.scheme == "https"
        and port is None
        and "@" not in parts.netloc
        and len(labels) == 4
        and labels[0] == "sns"
        and labels[2:] == ["amazonaws", "com"]
        and bool(labels[1])
        and all(c.isalnum() or c == "-" for c in labels[1])
    )


class SesHook:
    """``/hooks/ses``: SNS messages from the configured topics, carrying SES events."""

    name = "ses"

    def __init__(self, config: SesHookConfig, fetch: Fetcher) -> None:
        self._topics = frozenset(config.topics)
        self._fetch = fetch
        self._certs = CertCache(fetch)

    @property
    def configured(self) -> bool:
        return bool(self._topics)

    def read(self, call: Call) -> Verified:
        msg = _message(call)
        if not is_sns_url(msg["SigningCertURL"]) or not urlsplit(msg["SigningCertURL"]).path.endswith(".pem"):
            raise HookError(401, "SigningCertURL is not an SNS address")
        if msg["TopicArn"] not in self._topics:
            raise HookError(401, "the topic is not one of hooks.ses.topics")
        _verify(msg, self._certs.get(msg["SigningCertURL"]), call.now)
        check_fresh(_timestamp(msg["Timestamp"]), call.now, MAX_AGE, MAX_AHEAD)
        replay, ttl = f"{msg['TopicArn']} {msg['MessageId']}", MAX_AGE + MAX_AHEAD
        if msg["Type"] == "SubscriptionConfirmation":
            url = msg["SubscribeURL"]
            if not is_sns_url(url):
                raise HookError(401, "SubscribeURL is not an SNS address")
            return Verified(replay=replay, replay_ttl=ttl, then=lambda: self._confirm(url))
        if msg["Type"] == "UnsubscribeConfirmation":
            return Verified(replay=replay, replay_ttl=ttl)
        return Verified(ses_feedback(msg["MessageId"], msg["Message"]), replay=replay, replay_ttl=ttl)

    def _confirm(self, url: str) -> None:
        try:
            self._fetch(url)
        except OSError:
            raise HookError(503, "the subscription could not be confirmed; try again") from None


def _message(call: Call) -> dict[str, str]:
    """The SNS message's fields, all strings, its type one we know; else 400."""
    msg = parse_json(call.body)
    if not isinstance(msg, dict):
        raise HookError(400, "the body is not an SNS message")
    kind = msg.get("Type")
    if kind not in _FIELDS:
        raise HookError(400, "not an SNS message type we take")
    header = call.headers.get("x-amz-sns-message-type")
    if header is not None and header != kind:
        raise HookError(400, "x-amz-sns-message-type does not match the message")
    needed = [f for f in _FIELDS[kind] if f != "Subject"]
    needed += ["Signature", "SignatureVersion", "SigningCertURL"]
    if any(not isinstance(msg.get(f), str) for f in needed):
        missing = [f for f in needed if not isinstance(msg.get(f), str)]
        status = 401 if set(missing) & {"Signature", "SignatureVersion", "SigningCertURL"} else 400
        raise HookError(status, f"the SNS message lacks {', '.join(missing)}")
    if ("Subject" in msg and not isinstance(msg["Subject"], str)) or not msg["MessageId"]:
        raise HookError(400, "the SNS message has no MessageId, or a Subject that is not text")
    return msg


def canonical(msg: dict[str, str]) -> bytes:
    """The string SNS signs: each present field of the type's list as 'Name\\nValue\\n', in order."""
    fields = _FIELDS[msg["Type"]]
    return "".join(f"{f}\n{msg[f]}\n" for f in fields if f in msg).encode("utf-8")


def _verify(msg: dict[str, str], cert: x509.Certificate, now: datetime) -> None:
    algorithm = _HASHES.get(msg["SignatureVersion"])
    if algorithm is None:
        raise HookError(401, "unknown SignatureVersion")
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise HookError(401, "the signing certificate is not valid now")
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise HookError(401, "the signing certificate holds no RSA key")
    try:
        signature = base64.b64decode(msg["Signature"], validate=True)
        key.verify(signature, canonical(msg), padding.PKCS1v15(), algorithm())
    except (binascii.Error, ValueError, InvalidSignature):
        raise HookError(401, "the SNS signature does not match") from None


def _timestamp(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise HookError(400, "Timestamp is not a time") from None
    if when.tzinfo is None:
        raise HookError(400, "Timestamp has no time zone")
    return when


def ses_feedback(message_id: str, message: str) -> tuple[Feedback, ...]:
    """The facts in one SES event (identity notification or configuration-set event); () if none."""
    event = mapping(parse_text_json(message))
    kind = text(event.get("notificationType") or event.get("eventType"))
    if kind == "Bounce":
        bounce = mapping(event.get("bounce"))
        hard = text(bounce.get("bounceType")) == "Permanent"
        recipients = _list(bounce.get("bouncedRecipients"))
        return keep(
            *(
                feedback(
                    "ses",
                    FeedbackKind.HARD_BOUNCE if hard else FeedbackKind.SOFT_BOUNCE,
                    f"{message_id}:{i}",
                    mapping(r).get("emailAddress"),
                    enhanced_status(mapping(r).get("status"), mapping(r).get("diagnosticCode")),
                    mapping(r).get("diagnosticCode") or bounce.get("bounceSubType"),
                )
                for i, r in enumerate(recipients)
            )
        )
    if kind == "Complaint":
        complaint = mapping(event.get("complaint"))
        detail = complaint.get("complaintFeedbackType") or "complaint"
        recipients = _list(complaint.get("complainedRecipients"))
        return keep(
            *(
                feedback(
                    "ses",
                    FeedbackKind.COMPLAINT,
                    f"{message_id}:{i}",
                    mapping(r).get("emailAddress"),
                    "",
                    detail,
                )
                for i, r in enumerate(recipients)
            )
        )
    if kind == "Delivery":
        delivery = mapping(event.get("delivery"))
        recipients = _list(delivery.get("recipients"))
        detail = delivery.get("smtpResponse")
        return keep(
            *(
                feedback("ses", FeedbackKind.DELIVERED, f"{message_id}:{i}", r, "", detail)
                for i, r in enumerate(recipients)
            )
        )
    return ()


def _list(value: Any) -> list[Any]:
    items = value if isinstance(value, list) else []
    check_count(len(items))
    return items
