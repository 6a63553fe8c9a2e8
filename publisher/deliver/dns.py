"""DNS look-ups for `publisher doctor`: TXT, A/AAAA and MX, errors returned as data.

The checks in ``ops/doctor.py`` read whatever a zone holds, hostile or broken
(a CNAME loop, a 10 KB TXT record, NUL bytes, a server that times out), so
nothing here raises: every answer is an ``Answer`` whose ``status`` says what
happened. Answers are memoised for one run, because an SPF walk asks for the
same names once per relay address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.resolver

DEFAULT_TIMEOUT = 5.0


class Status(StrEnum):
    OK = "ok"  # at least one record
    NXDOMAIN = "nxdomain"  # the name does not exist
    NODATA = "nodata"  # the name exists, without records of this type
    TEMPORARY = "temporary"  # timeout, SERVFAIL, no answer: try again later
    BROKEN = "broken"  # an answer no resolver can use (CNAME loop, bad name, malformed reply)


@dataclass(frozen=True, slots=True)
class Answer:
    """The records of one (name, type) question, or why there are none."""

    name: str
    rtype: str
    status: Status
    records: tuple[str, ...] = ()  # TXT: the strings of each record joined; MX: "pref host"
    error: str = ""


class Resolver:
    """A stub resolver (the system's, or ``nameserver``) with a per-query ``timeout``."""

    def __init__(self, nameserver: tuple[str, int] | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.nameserver = nameserver
        self.timeout = timeout
        self._memo: dict[tuple[str, str], Answer] = {}
        self._resolver: dns.resolver.Resolver | None = None
        self._setup_error = ""

    def txt(self, name: str) -> Answer:
        return self.query(name, "TXT")

    def mx(self, name: str) -> Answer:
        return self.query(name, "MX")

    def addresses(self, name: str) -> Answer:
        """A and AAAA together; an IP literal answers itself."""
        try:
            return Answer(name, "A", Status.OK, (str(ipaddress.ip_address(name)),))
        except ValueError:
            pass
        v4, v6 = self.query(name, "A"), self.query(name, "AAAA")
        records = v4.records + v6.records
        if records:
            return Answer(name, "A", Status.OK, records)
        worst = v4 if v4.status in (Status.TEMPORARY, Status.BROKEN) else v6
        return Answer(name, "A", worst.status, (), worst.error)

    def query(self, name: str, rtype: str) -> Answer:
        key = (name.lower(), rtype)
        if key not in self._memo:
            self._memo[key] = self._ask(name, rtype)
        return self._memo[key]

    def _stub(self) -> dns.resolver.Resolver | None:
        if self._resolver is None and not self._setup_error:
            try:
                resolver = dns.resolver.Resolver(configure=self.nameserver is None)
            except (dns.exception.DNSException, OSError) as exc:
                self._setup_error = f"no system resolver: {exc}"
                return None
            if self.nameserver is not None:
                resolver.nameservers = [self.nameserver[0]]
                resolver.port = self.nameserver[1]
            resolver.timeout = self.timeout
            resolver.lifetime = self.timeout
            self._resolver = resolver
        return self._resolver

    def _ask(self, name: str, rtype: str) -> Answer:
        resolver = self._stub()
        if resolver is None:
            return Answer(name, rtype, Status.TEMPORARY, error=self._setup_error)
        try:
            qname = dns.name.from_text(name)
            answer = resolver.resolve(qname, rtype, search=False, raise_on_no_answer=True)
        except dns.resolver.NXDOMAIN:
            return Answer(name, rtype, Status.NXDOMAIN, error="no such domain")
        except dns.resolver.NoAnswer:
            return Answer(name, rtype, Status.NODATA, error=f"no {rtype} record")
        except dns.message.ChainTooLong:
            return Answer(name, rtype, Status.BROKEN, error="CNAME chain too long (a loop?)")
        except (dns.resolver.LifetimeTimeout, dns.exception.Timeout):
            return Answer(name, rtype, Status.TEMPORARY, error=f"no answer within {self.timeout:g} s")
        except dns.resolver.NoNameservers as exc:
            if _chain_too_long(exc):
                return Answer(name, rtype, Status.BROKEN, error="CNAME chain too long (a loop?)")
            return Answer(name, rtype, Status.TEMPORARY, error=f"the nameserver failed ({_first_line(exc)})")
        except dns.exception.DNSException as exc:
            return Answer(name, rtype, Status.BROKEN, error=_first_line(exc) or type(exc).__name__)
        except (OSError, ValueError, UnicodeError) as exc:
            return Answer(name, rtype, Status.TEMPORARY, error=_first_line(exc) or type(exc).__name__)
        return Answer(name, rtype, Status.OK, tuple(_text(rd) for rd in answer))


def _text(rdata: object) -> str:
    """One record as text: TXT strings joined (RFC 7208 3.3), MX as ``pref host``, else as written."""
    strings = getattr(rdata, "strings", None)
    if strings is not None:
        return b"".join(strings).decode("utf-8", errors="replace")
    exchange = getattr(rdata, "exchange", None)
    if exchange is not None:
        return f"{rdata.preference} {exchange.to_text(omit_final_dot=True) or '.'}"  # type: ignore[attr-defined]
    return rdata.to_text()  # type: ignore[attr-defined]


def _chain_too_long(exc: dns.resolver.NoNameservers) -> bool:
    """dnspython reports a CNAME loop as every nameserver failing; it is the zone that is broken."""
    errors = exc.kwargs.get("errors") or []
    return any(isinstance(part, dns.message.ChainTooLong) for error in errors for part in error)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else ""


def parse_nameserver(value: str) -> tuple[str, int]:
    """``IP``, ``IP:PORT`` or ``[IPv6]:PORT`` -> (ip, port); ValueError says what is wrong."""
    host, port = value.strip(), "53"
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"expected [IPv6]:PORT, got {value!r}")
            port = rest[1:]
    elif host.count(":") == 1:
        host, port = host.split(":")
    try:
        ip = str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"not an IP address: {host!r} (a nameserver is given by address)") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not a port number: {port!r}")
    return ip, int(port)


def printable(text: str, limit: int = 100) -> str:
    """DNS text made safe to print: control characters escaped, long values cut to ``limit``."""
    safe = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text[: limit * 4])
    if len(safe) <= limit and len(text) <= limit:
        return safe
    return f"{safe[:limit]}… ({len(text)} chars)"
