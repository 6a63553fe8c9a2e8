"""Which addresses are ours: the VERP bounce address and the unsubscribe mailbox.

A delivery id is only ever read from an address that carries our sealed token
(``publisher.tokens.bounce_address``); an address a report merely names is a
claim, never an attribution.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import getaddresses

from publisher.store.values import InvalidValueError, normalise_email
from publisher.tokens import BOUNCE_PREFIX, read_bounce_address

MAX_ADDRESSES = 50
_PLAIN = re.compile(r"^\s*<?[^\s<>@,;:\"()\[\]\\]{1,64}@[A-Za-z0-9.-]{1,253}>?\s*$")


def bare(addresses: Iterable[str]) -> list[str]:
    """The addr-specs in header values or envelope addresses, lower-cased, at most ``MAX_ADDRESSES``.

    A plain ``a@b`` or ``<a@b>`` (every envelope address, most report fields)
    skips ``getaddresses``, which is a fifth of ``classify``'s time otherwise.
    """
    values = [a[:1000] for a, _ in zip(addresses, range(MAX_ADDRESSES), strict=False) if a]
    if all(_PLAIN.match(v) for v in values):
        return [v.strip().strip("<>").lower() for v in values]
    found = []
    for _, addr in getaddresses(values):
        addr = addr.strip().strip("<>").strip().lower()
        if "@" in addr and len(addr) <= 320:
            found.append(addr)
    return found[:MAX_ADDRESSES]


def address_of(value: str) -> str | None:
    """The address in a report field (``rfc822; <a@b>``, ``a@b``, ``Name <a@b>``), normalised, or None."""
    text = value.strip()[:1000]
    kind, semi, rest = text.partition(";")
    if semi and "@" not in kind:
        text = rest
    return first_address(text)


def first_address(value: str) -> str | None:
    """The first address in a header value, normalised as subscribers are stored, or None."""
    found = bare([value])
    if not found:
        return None
    try:
        return normalise_email(found[0])
    except (InvalidValueError, ValueError, UnicodeError):
        return None


@dataclass(frozen=True)
class Ours:
    """The addresses mail to us arrives at, and the key that reads their tokens."""

    secret: bytes
    bounce_domain: str
    unsubscribe_mailbox: str | None

    def is_bounce(self, address: str) -> bool:
        """``bounces@<domain>`` or ``bounces+<anything>@<domain>``."""
        local, _, domain = address.rpartition("@")
        prefix = local.partition("+")[0]
        return prefix == BOUNCE_PREFIX and domain == self.bounce_domain.lower()

    def is_unsubscribe(self, address: str) -> bool:
        """The unsubscribe mailbox, or a plus-addressed form of it."""
        if not self.unsubscribe_mailbox:
            return False
        want_local, _, want_domain = self.unsubscribe_mailbox.lower().rpartition("@")
        local, _, domain = address.rpartition("@")
        return domain == want_domain and local.partition("+")[0] == want_local

    def delivery_id(self, address: str) -> int | None:
        """The delivery sealed in one of our bounce addresses (or the unsubscribe mailbox's +tag)."""
        if self.is_bounce(address):
            return read_bounce_address(self.secret, address)
        if self.is_unsubscribe(address) and "+" in address.rpartition("@")[0]:
            tag = address.rpartition("@")[0].partition("+")[2]
            return read_bounce_address(self.secret, f"{BOUNCE_PREFIX}+{tag}@{self.bounce_domain}")
        return None

    def one_delivery(self, addresses: Iterable[str]) -> int | None:
        """The delivery the addresses name, when they name exactly one (two tokens: trust neither)."""
        ids = {i for i in (self.delivery_id(a) for a in addresses) if i is not None}
        return ids.pop() if len(ids) == 1 else None
