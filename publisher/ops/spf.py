"""SPF as a receiver evaluates it (RFC 7208 check_host), for `publisher doctor`.

dnspython gives records, not SPF semantics, and pyspf (the usual library)
brings its own resolver and cannot count lookups against our ``Lookup``; the
part needed here is small: parse every term first (a syntax error anywhere is
a permerror), then the first matching mechanism wins, ``include:`` and
``redirect=`` recurse, and the whole walk stops after 10 DNS lookups
(section 4.6.4). Macros and ``ptr`` name the sender, not the relay, so they
never match; ``exists:`` without macros is looked up.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Protocol

from publisher.deliver.dns import Answer, Status, printable

SPF_LOOKUP_LIMIT = 10  # RFC 7208 4.6.4
_MOD = re.compile(r"^([a-z][a-z0-9_.-]*)=(.*)$", re.I)
_MECH = re.compile(
    r"^([+?~-]?)(all|include|a|mx|ptr|ip4|ip6|exists)(?::([^/]*))?(?:/(\d+))?(?://(\d+))?$", re.I
)
_QUALIFIER = {"+": "pass", "": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
IP = ipaddress.IPv4Address | ipaddress.IPv6Address


class Lookup(Protocol):
    """The DNS questions the checks ask (``deliver.dns.Resolver`` answers them)."""

    def query(self, name: str, rtype: str) -> Answer: ...
    def txt(self, name: str) -> Answer: ...
    def mx(self, name: str) -> Answer: ...
    def addresses(self, name: str) -> Answer: ...


class SpfError(Exception):
    """A check_host() that ends in permerror or temperror, with why."""

    def __init__(self, result: str, why: str) -> None:
        super().__init__(why)
        self.result, self.why = result, why


@dataclass(frozen=True, slots=True)
class _Mech:
    qualifier: str
    name: str
    arg: str | None
    cidr4: int | None
    cidr6: int | None
    text: str


def spf_records(lookup: Lookup, domain: str) -> list[str]:
    """The ``v=spf1`` records at ``domain``; SpfError when DNS cannot say."""
    answer = lookup.txt(domain)
    if answer.status is Status.TEMPORARY:
        raise SpfError("temperror", f"{domain}: {answer.error}")
    if answer.status is Status.BROKEN:
        raise SpfError("permerror", f"{printable(domain)}: {answer.error}")
    return [r for r in answer.records if re.match(r"^v=spf1( |$)", r, re.I)]


def _parse_mech(term: str) -> _Mech:
    m = _MECH.match(term)
    if m is None:
        raise SpfError("permerror", f"unknown term '{printable(term, 60)}'")
    qualifier, name, arg, c4, c6 = m.group(1), m.group(2).lower(), m.group(3), m.group(4), m.group(5)
    cidr4, cidr6 = (int(c4) if c4 else None), (int(c6) if c6 else None)
    if name == "ip6":  # ip6:addr/len: the one length is an IPv6 one
        cidr4, cidr6 = None, cidr4 if cidr6 is None else -1
    problem = _mech_problem(name, arg, cidr4, cidr6)
    if problem:
        raise SpfError("permerror", f"'{printable(term, 60)}': {problem}")
    return _Mech(qualifier, name, arg, cidr4, cidr6, term)


def _mech_problem(name: str, arg: str | None, cidr4: int | None, cidr6: int | None) -> str:
    """What RFC 7208 section 5 forbids in one mechanism ("" when it is well-formed)."""
    if arg == "":
        return "empty domain"
    if not 0 <= (cidr4 or 0) <= 32 or not 0 <= (cidr6 or 0) <= 128:
        return "bad prefix length"
    if name in ("ip4", "ip6"):
        try:
            address = ipaddress.ip_address(arg or "")
        except ValueError:
            return "not an IP address"
        return "" if address.version == int(name[2]) else f"not an IPv{name[2]} address"
    if name not in ("a", "mx") and (cidr4 is not None or cidr6 is not None):
        return "takes no prefix length"
    if name == "all" and arg is not None:
        return "takes no argument"
    if name in ("include", "exists") and arg is None:
        return "needs a domain"
    return ""


class _SpfWalk:
    """One RFC 7208 check_host() evaluation for one address, counting DNS lookups."""

    def __init__(self, lookup: Lookup, ip: IP) -> None:
        self.lookup, self.ip, self.lookups = lookup, ip, 0

    def count(self) -> None:
        self.lookups += 1
        if self.lookups > SPF_LOOKUP_LIMIT:
            raise SpfError("permerror", f"more than {SPF_LOOKUP_LIMIT} DNS lookups (RFC 7208 4.6.4)")

    def check_host(self, domain: str) -> tuple[str, str]:
        records = spf_records(self.lookup, domain)
        if len(records) != 1:
            if records:
                raise SpfError("permerror", f"{len(records)} v=spf1 records at {domain} (one is allowed)")
            return "none", f"no v=spf1 record at {printable(domain)}"
        mechs, redirect = [], None
        for term in records[0].split()[1:]:
            modifier = _MOD.match(term)
            if modifier and modifier.group(1).lower() == "redirect":
                if redirect is not None:
                    raise SpfError("permerror", f"two redirect= in {domain}")
                redirect = modifier.group(2)
            elif not modifier:
                mechs.append(_parse_mech(term))
        for mech in mechs:
            if self.matches(mech, domain):
                return _QUALIFIER[mech.qualifier], f"'{printable(mech.text, 60)}' in {printable(domain, 60)}"
        if redirect is not None and not any(m.name == "all" for m in mechs):
            self.count()
            result, why = self.check_host(redirect)
            if result == "none":
                raise SpfError("permerror", f"redirect={printable(redirect, 60)}: {why}")
            return result, why
        return "neutral", f"nothing in {printable(domain, 60)} matches"

    def matches(self, mech: _Mech, domain: str) -> bool:
        if mech.name == "all":
            return True
        if mech.name in ("ip4", "ip6"):
            return self.within([mech.arg or ""], mech)
        target = mech.arg or domain
        self.count()
        if mech.name in ("ptr", "exists") or "%" in target:
            return False  # ptr is deprecated and macros name the sender: neither applies to the relay
        if mech.name == "include":
            result, _ = self.check_host(target)
            if result == "none":
                raise SpfError("permerror", f"include:{printable(target, 60)} has no SPF record")
            return result == "pass"
        if mech.name == "a":
            return self.within(self.addresses(target), mech)
        exchanges = [r.split(" ", 1)[-1] for r in self.records(target, "MX")]
        if len(exchanges) > SPF_LOOKUP_LIMIT:
            raise SpfError("permerror", f"mx: {target} has more than {SPF_LOOKUP_LIMIT} MX hosts")
        return any(self.within(self.addresses(host), mech) for host in exchanges if host != ".")

    def addresses(self, name: str) -> list[str]:
        return self.records(name, "A" if self.ip.version == 4 else "AAAA")

    def records(self, name: str, rtype: str) -> list[str]:
        answer = self.lookup.query(name, rtype)
        if answer.status is Status.TEMPORARY:
            raise SpfError("temperror", f"{name} {rtype}: {answer.error}")
        if answer.status is Status.BROKEN:
            raise SpfError("permerror", f"{printable(name, 60)} {rtype}: {answer.error}")
        return list(answer.records)

    def within(self, addresses: list[str], mech: _Mech) -> bool:
        prefix = mech.cidr4 if self.ip.version == 4 else mech.cidr6
        for address in addresses:
            try:
                length = self.ip.max_prefixlen if prefix is None else prefix
                net = ipaddress.ip_network(f"{address}/{length}", strict=False)
            except ValueError:
                continue
            if net.version == self.ip.version and self.ip in net:
                return True
        return False


def spf_result(lookup: Lookup, domain: str, ip: IP) -> tuple[str, str]:
    """(result, why) as a receiver would see mail from ``ip`` with an envelope on ``domain``."""
    try:
        return _SpfWalk(lookup, ip).check_host(domain)
    except SpfError as exc:
        return exc.result, exc.why
