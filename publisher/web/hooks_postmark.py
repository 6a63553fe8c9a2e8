"""Postmark (``/hooks/postmark``): HTTP basic auth on the webhook URL, since Postmark signs nothing.

The operator puts ``https://USER:PASSWORD@host/hooks/postmark`` in Postmark's
webhook settings; the username is ``hooks.postmark.username``, the password
(32+ bytes, like every secret here) comes from the variable
``hooks.postmark.password_env`` names, and both are compared in constant time.
``hooks.postmark.networks`` can also restrict callers to Postmark's published
source addresses. With no signed timestamp there is no staleness to check: a
replayed call is stopped by the exactly-once keys (ID or MessageID + RecordType).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from ipaddress import ip_address

from publisher.config import PostmarkHookConfig, check_secret
from publisher.models import Feedback, FeedbackKind
from publisher.web.hooks_common import (
    Call,
    HookError,
    Verified,
    enhanced_status,
    feedback,
    keep,
    parse_json,
    text,
)

CHALLENGE = {"WWW-Authenticate": 'Basic realm="hooks", charset="UTF-8"'}
_BOUNCES = {
    "HardBounce": FeedbackKind.HARD_BOUNCE,
    "BadEmailAddress": FeedbackKind.HARD_BOUNCE,
    "SoftBounce": FeedbackKind.SOFT_BOUNCE,
    "Transient": FeedbackKind.SOFT_BOUNCE,
    "DnsError": FeedbackKind.SOFT_BOUNCE,
    "SpamComplaint": FeedbackKind.COMPLAINT,
    "Unsubscribe": FeedbackKind.UNSUBSCRIBE,
}
_SUPPRESSIONS = {
    "HardBounce": FeedbackKind.HARD_BOUNCE,
    "SpamComplaint": FeedbackKind.COMPLAINT,
    "ManualSuppression": FeedbackKind.UNSUBSCRIBE,
}


class PostmarkHook:
    """``/hooks/postmark``: Bounce, SpamComplaint, SubscriptionChange and Delivery records."""

    name = "postmark"

    def __init__(self, config: PostmarkHookConfig, environ: Mapping[str, str]) -> None:
        password = environ.get(config.password_env) or None
        if password is not None:
            check_secret(
                password.encode(), f"{config.password_env} (environment)", "the Postmark hook password"
            )
        self._expected = f"{config.username}:{password}".encode() if config.username and password else None
        self._networks = config.networks

    @property
    def configured(self) -> bool:
        return self._expected is not None

    def read(self, call: Call) -> Verified:
        self._check_source(call.client)
        self._check_auth(call.headers.get("authorization", ""))
        record = parse_json(call.body)
        if not isinstance(record, dict):
            raise HookError(400, "the body is not a Postmark record")
        return Verified(keep(postmark_feedback(record)))

    def _check_source(self, client: str | None) -> None:
        if not self._networks:
            return
        try:
            peer = ip_address(client or "")
        except ValueError:
            raise HookError(401, "the caller is not in hooks.postmark.networks") from None
        if not any(peer in net for net in self._networks):
            raise HookError(401, "the caller is not in hooks.postmark.networks")

    def _check_auth(self, header: str) -> None:
        scheme, _, value = header.partition(" ")
        try:
            given = base64.b64decode(value.strip(), validate=True) if scheme.lower() == "basic" else b""
        except (binascii.Error, ValueError):
            given = b""
        if self._expected is None or not hmac.compare_digest(given, self._expected):
            raise HookError(401, "wrong or missing credentials", CHALLENGE)


def postmark_feedback(record: dict[str, object]) -> Feedback | None:
    """The fact in one Postmark record, or None (a type we do not act on, a reactivation)."""
    kind, ident = text(record.get("RecordType")), text(record.get("ID")) or text(record.get("MessageID"))
    if not ident:
        return None  # nothing to key it by: it could not be applied exactly once
    key = f"{ident}:{kind}"
    if kind == "Bounce":
        found = _BOUNCES.get(text(record.get("Type")))
        detail = record.get("Details") or record.get("Description")
        status = enhanced_status(record.get("Details"), record.get("Description"))
        if found is None:
            return None  # auto-replies, challenges, address changes: not about deliverability
        return feedback("postmark", found, key, record.get("Email"), status, detail)
    if kind == "SpamComplaint":
        return feedback("postmark", FeedbackKind.COMPLAINT, key, record.get("Email"), "", "spam complaint")
    if kind == "SubscriptionChange":
        found = _SUPPRESSIONS.get(text(record.get("SuppressionReason")))
        if record.get("SuppressSending") is not True or found is None:
            return None  # a reactivation brings no one back: they re-subscribe themselves
        return feedback("postmark", found, key, record.get("Recipient"), "", record.get("SuppressionReason"))
    if kind == "Delivery":
        return feedback(
            "postmark", FeedbackKind.DELIVERED, key, record.get("Recipient"), "", record.get("Details")
        )
    return None
