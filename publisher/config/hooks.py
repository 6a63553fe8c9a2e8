"""The ``hooks`` section: one model per ESP webhook, each off until its secret is set."""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import IPvAnyNetwork, field_validator

from publisher.config.sections import _Section

_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")


class SesHookConfig(_Section):
    """Amazon SES through SNS: only messages from these topics are believed (any AWS account can sign)."""

    topics: tuple[str, ...] = ()  # TopicArns; empty: /hooks/ses is off (503)

    @field_validator("topics")
    @classmethod
    def _arns(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for arn in v:
            if not _TOPIC_ARN.match(arn):
                raise ValueError(
                    f"expected an SNS topic ARN such as arn:aws:sns:eu-west-1:123456789012:ses, got {arn!r}"
                )
        return v


class PostmarkHookConfig(_Section):
    """Postmark signs nothing: the webhook URL carries HTTP basic auth, optionally from known networks."""

    username: str | None = None  # with the password in ``password_env``; either unset: off (503)
    password_env: str = "PUBLISHER_POSTMARK_HOOK_PASSWORD"
    networks: tuple[IPvAnyNetwork, ...] = ()  # empty: any source address


class MailgunHookConfig(_Section):
    signing_key_env: str = "PUBLISHER_MAILGUN_SIGNING_KEY"  # the HTTP webhook signing key; unset: off


class SendgridHookConfig(_Section):
    public_key: str | None = None  # the verification key as SendGrid shows it (base64 DER); unset: off

    @field_validator("public_key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        try:
            key = serialization.load_der_public_key(base64.b64decode(v.strip(), validate=True))
        except (ValueError, binascii.Error):
            raise ValueError(
                "expected the base64 public key SendGrid shows for the signed event webhook"
            ) from None
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("expected an ECDSA P-256 public key (SendGrid's signed event webhook)")
        return v.strip()


class HooksConfig(_Section):
    """ESP webhooks under /hooks/<provider>: each is off until its secret (or topic, or key) is set."""

    ses: SesHookConfig = SesHookConfig()
    postmark: PostmarkHookConfig = PostmarkHookConfig()
    mailgun: MailgunHookConfig = MailgunHookConfig()
    sendgrid: SendgridHookConfig = SendgridHookConfig()
