"""DKIM signatures in OpenSSL, added to each personalised message just before sending.

dkimpy signed here at ~6.6-7.3 ms a message (its RSA is pure Python), capping
a signed send at ~150 msg/s. Now (bench/send.py, the 12 KB sample issue) a
signature costs ~340 us: ~285 us for the 2048-bit rsa-sha256 operation in
OpenSSL through ``cryptography``, ~35 us to canonicalise and hash the body
(``dkim_canon``), the rest the signed headers and the field itself. The bytes
are signed as they are, never re-serialised. The RSA private operation is
nearly all of the cost and OpenSSL runs it without the GIL, so signing ahead
in threads would spread it over cores. An Ed25519 key (RFC 8463, ~25 us) adds
a second signature under its own selector; RSA stays on top, as receivers that
check only one signature check that one.

The header list is explicit: dkimpy's default left out ``List-Unsubscribe-Post``,
and Gmail and Yahoo honour one-click unsubscribe only when the signature
covers it. Relaxed/relaxed survives the header re-folding and trailing-space
changes relays are allowed to make. Keys are read and checked once, in
``from_config``, so a bad key stops the start, never a send halfway.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from publisher.config import DkimConfig
from publisher.deliver.dkim_canon import header_fields, relaxed_body, relaxed_header, split_message
from publisher.errors import DeliveryError

SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)
MIN_RSA_BITS = 1024  # RFC 8301: verifiers refuse shorter keys
RSA_HINT = (
    "make one with `openssl genrsa -out dkim.pem 2048` and publish its public half "
    "as the TXT record <selector>._domainkey.<domain>"
)
ED25519_HINT = (
    "make one with `openssl genpkey -algorithm ed25519 -out dkim-ed25519.pem` and publish "
    "its raw public key as k=ed25519 under email.dkim.ed25519_selector"
)


K = TypeVar("K")


class SigningKey(Protocol):
    """One DKIM key: its selector, its a= algorithm and the raw signature over the signed headers."""

    @property
    def selector(self) -> bytes: ...
    @property
    def algorithm(self) -> bytes: ...
    def signature(self, signed: bytes) -> bytes: ...


@dataclass(frozen=True)
class RsaKey:
    selector: bytes
    key: rsa.RSAPrivateKey
    algorithm: bytes = b"rsa-sha256"

    def signature(self, signed: bytes) -> bytes:
        return self.key.sign(signed, padding.PKCS1v15(), hashes.SHA256())


@dataclass(frozen=True)
class Ed25519Key:
    selector: bytes
    key: ed25519.Ed25519PrivateKey
    algorithm: bytes = b"ed25519-sha256"

    def signature(self, signed: bytes) -> bytes:
        """RFC 8463: PureEdDSA over the SHA-256 of the signed headers, not over the headers."""
        return self.key.sign(hashlib.sha256(signed).digest())


@dataclass(frozen=True)
class DkimSigner:
    domain: str
    keys: tuple[SigningKey, ...]  # RSA first; then Ed25519 when configured
    clock: Callable[[], float] = field(default=time.time, compare=False)

    @classmethod
    def from_config(cls, cfg: DkimConfig) -> DkimSigner:
        """Read, parse and check every key now; a bad one is a DeliveryError with a hint."""
        rsa_key = load_private_key(
            cfg.private_key_file,
            rsa.RSAPrivateKey,  # type: ignore[type-abstract]  # only for isinstance (mypy#4717)
            "RSA",
            RSA_HINT,
        )
        if rsa_key.key_size < MIN_RSA_BITS:
            raise DeliveryError(
                f"the DKIM key {cfg.private_key_file} is a {rsa_key.key_size}-bit RSA key; "
                f"receivers refuse DKIM keys under {MIN_RSA_BITS} bits",
                hint=RSA_HINT,
            )
        keys: list[SigningKey] = [RsaKey(cfg.selector.encode(), rsa_key)]
        if cfg.ed25519_key_file is not None:
            selector = cfg.ed25519_selector or f"{cfg.selector}-ed25519"
            if selector == cfg.selector:
                raise DeliveryError(
                    f"email.dkim.ed25519_selector is {selector!r}, the RSA key's selector too",
                    hint="each key is published under its own selector; pick another name",
                )
            ed_key = load_private_key(
                cfg.ed25519_key_file,
                ed25519.Ed25519PrivateKey,  # type: ignore[type-abstract]  # only for isinstance (mypy#4717)
                "Ed25519",
                ED25519_HINT,
            )
            keys.append(Ed25519Key(selector.encode(), ed_key))
        signer = cls(cfg.domain, tuple(keys))
        signer.sign(b"From: check@" + cfg.domain.encode() + b"\r\nSubject: key check\r\n\r\nok\r\n")
        return signer

    def sign(self, data: bytes) -> bytes:
        """``data`` (SMTP-ready, CRLF) with a DKIM-Signature header per key in front."""
        head, body = split_message(data)
        body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
        fields = header_fields(head)
        names = [name for name in SIGNED_HEADERS if name in fields]
        signed = b"".join(relaxed_header(name, fields[name]) for name in names)
        common = b"d=%s; t=%d;\r\n h=%s;\r\n bh=%s;\r\n b=" % (
            self.domain.encode(),
            int(self.clock()),
            b":".join(names),
            body_hash,
        )
        headers = [_signature_header(key, common, signed) for key in self.keys]
        return b"".join(headers) + data


def _signature_header(key: SigningKey, common: bytes, signed: bytes) -> bytes:
    """One folded DKIM-Signature field, b= computed over its own text with b= empty (§3.7)."""
    value = b" v=1; a=%s; c=relaxed/relaxed;\r\n s=%s; %s" % (key.algorithm, key.selector, common)
    own = relaxed_header(b"dkim-signature", value)[:-2]  # hashed without its CRLF
    b64 = base64.b64encode(key.signature(signed + own))
    folded = b"\r\n ".join(b64[i : i + 72] for i in range(0, len(b64), 72))
    return b"DKIM-Signature:" + value + folded + b"\r\n"


def load_private_key(path: Path, kind: type[K], name: str, hint: str) -> K:
    """The PEM private key in ``path``, which must be of ``kind``; else a DeliveryError."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise DeliveryError(f"cannot read the DKIM key {path}: {exc.strerror or exc}", hint=hint) from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise DeliveryError(
            f"the DKIM key {path} is not an unencrypted PEM private key: {exc}", hint=hint
        ) from None
    if not isinstance(key, kind):
        raise DeliveryError(
            f"the DKIM key {path} holds {type(key).__name__}, not an {name} private key",
            hint=hint,
        )
    return key
