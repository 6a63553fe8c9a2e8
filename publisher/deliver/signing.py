"""DKIM signatures (dkimpy), added to each personalised message just before sending.

dkimpy's default header list leaves out ``List-Unsubscribe-Post``; Gmail and
Yahoo only honour one-click unsubscribe when the signature covers it, so the
list here is explicit. Relaxed/relaxed canonicalisation survives the header
re-folding and trailing-space changes relays are allowed to make.
"""

from __future__ import annotations

from dataclasses import dataclass

import dkim

from publisher.config import DkimConfig
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


@dataclass(frozen=True)
class DkimSigner:
    domain: str
    selector: str
    private_key: bytes  # PEM

    @classmethod
    def from_config(cls, cfg: DkimConfig) -> DkimSigner:
        try:
            key = cfg.private_key_file.read_bytes()
        except OSError as exc:
            raise DeliveryError(
                f"cannot read the DKIM key {cfg.private_key_file}: {exc.strerror or exc}",
                hint="email.dkim.private_key_file must name a PEM RSA private key",
            ) from None
        signer = cls(cfg.domain, cfg.selector, key)
        signer.sign(b"From: check@" + cfg.domain.encode() + b"\r\nSubject: key check\r\n\r\nok\r\n")
        return signer

    def sign(self, data: bytes) -> bytes:
        """``data`` with a DKIM-Signature header in front (CRLF line endings expected)."""
        try:
            header = dkim.sign(
                data,
                self.selector.encode(),
                self.domain.encode(),
                self.private_key,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=list(SIGNED_HEADERS),
            )
        except (dkim.DKIMException, ValueError, IndexError) as exc:
            raise DeliveryError(
                f"DKIM signing failed: {exc}",
                hint="email.dkim.private_key_file must be a PEM RSA private key",
            ) from None
        return header + data
