"""`publisher doctor`: is the sending setup one that receivers will trust?

Records in, findings out: the checks read DNS through a ``Lookup`` they are
given (``deliver.dns.Resolver`` in production) and a ``TlsReport`` the caller
probed, and say for each of SPF, DKIM, DMARC, MX and TLS ``ok``, ``warn`` or
``fail`` with the exact change to make. DNS data is never trusted: every value
shown goes through ``printable`` and broken records become findings, not
exceptions. DMARC alignment is approximated without the Public Suffix List:
relaxed means the same domain, a subdomain, or under the domain whose
``_dmarc`` record applies.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from publisher.config import DkimConfig, Settings
from publisher.deliver.dns import Status, printable
from publisher.deliver.tls_probe import TlsReport
from publisher.ops.drain import envelope_domain
from publisher.ops.spf import Lookup, SpfError, spf_records, spf_result

EXPIRY_WARNING = timedelta(days=14)
_TAG = re.compile(r"^([a-z][a-z0-9_]*)\s*=(.*)$", re.I | re.S)
_AGAIN = "check that the domain's nameservers answer, then run doctor again"
_FOR_REAL = "check again with PUBLISHER_EMAIL__TRANSPORT=smtp before sending for real"


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's verdict: what was found and, unless ok, what to change."""

    check: str  # spf | dkim | dmarc | mx | tls
    level: Level
    message: str
    fix: str = ""


def diagnose(settings: Settings, lookup: Lookup, tls: TlsReport | None, now: datetime) -> list[Finding]:
    """Every check in order; ``tls`` is None when the transport does not use the relay."""
    email, sender, bounce = settings.email, from_domain(settings), bounce_domain(settings)
    spf = check_spf(lookup, bounce, email.smtp.host, email.transport)
    dkim = check_dkim(lookup, email.dkim)
    passing = {f.check for f in (spf, dkim) if f.level is Level.OK}
    signer = email.dkim.domain.lower().rstrip(".") if email.dkim else None
    dmarc = check_dmarc(lookup, sender, signer, bounce, passing)
    mx = check_mx(lookup, bounce, inbound_used(settings))
    return [spf, dkim, dmarc, mx, check_tls(tls, now)]


def from_domain(settings: Settings) -> str:
    return parseaddr(settings.email.from_)[1].rpartition("@")[2].lower().rstrip(".")


def bounce_domain(settings: Settings) -> str:
    """Where ``bounces+…@`` lives: the VERP envelope sender's domain, as the sends use it."""
    return envelope_domain(settings).rstrip(".")


def inbound_used(settings: Settings) -> bool:
    """Inbound mail is read (so bounces need an MX) when ``inbound.listen`` or ``.mailbox`` is set."""
    return bool(settings.inbound.listen or settings.inbound.mailbox)


# --- SPF ---------------------------------------------------------------------------------------


def check_spf(lookup: Lookup, domain: str, relay: str, transport: str) -> Finding:
    """Does the bounce domain's SPF allow every address of the relay?"""
    if transport == "file":
        return _spf_without_relay(lookup, domain)
    answer = lookup.addresses(relay)
    ips = [ipaddress.ip_address(r) for r in answer.records]
    if not ips:
        problem = f"cannot resolve email.smtp.host {printable(relay)}: {answer.error}"
        return Finding("spf", Level.FAIL, problem, "set email.smtp.host to the relay's name or address")
    results = {ip: spf_result(lookup, domain, ip) for ip in ips}
    if all(result == "pass" for result, _ in results.values()):
        listed = ", ".join(str(ip) for ip in ips)
        return Finding("spf", Level.OK, f"SPF of {domain} allows the relay {relay} ({listed})")
    ip, (result, why) = next((ip, r) for ip, r in results.items() if r[0] != "pass")
    mechs = " ".join(f"ip{ip.version}:{ip}" for ip in ips)
    if result == "none":
        fix = f'publish {domain}. TXT "v=spf1 {mechs} ~all" (or your provider\'s include:)'
        return Finding("spf", Level.FAIL, f"{why}: nothing says {relay} may send for {domain}", fix)
    if result == "temperror":
        return Finding("spf", Level.WARN, f"SPF of {domain} could not be evaluated: {why}", _AGAIN)
    if result == "permerror":
        fix = "correct that term (RFC 7208 section 5)"
        if "DNS lookups" in why:
            fix = "keep it within 10 DNS lookups: replace nested include: by the ip4:/ip6: they stand for"
        return Finding("spf", Level.FAIL, f"SPF of {domain} is broken, receivers see permerror: {why}", fix)
    message = f"SPF of {domain} does not allow the relay {relay} ({ip}): {result} by {why}"
    if not any(ip.is_global for ip in ips):
        message += "; the relay has a private address, so SPF sees the public one it sends from"
        return Finding("spf", Level.WARN, message, f"make sure {domain}'s SPF allows that public address")
    return Finding(
        "spf", Level.FAIL, message, f'publish {domain}. TXT "{_amend(spf_records(lookup, domain)[0], mechs)}"'
    )


def _spf_without_relay(lookup: Lookup, domain: str) -> Finding:
    """File transport: no relay to check, but say whether there is a record to check later."""
    try:
        records = spf_records(lookup, domain)
        problem = "" if records else f"no v=spf1 record at {domain}"
    except SpfError as exc:
        records, problem = [], exc.why
    prefix = "not checked for file transport (no relay)"
    if records:
        return Finding("spf", Level.OK, f"{prefix}; {domain} has '{printable(records[0])}'")
    return Finding("spf", Level.WARN, f"{prefix}; {problem}", _FOR_REAL)


def _amend(record: str, mechs: str) -> str:
    """``record`` with ``mechs`` placed before its ``all`` (or ``redirect=``), else at the end."""
    terms = record.split()
    at = next((i for i, t in enumerate(terms) if re.match(r"^[+?~-]?all$|^redirect=", t, re.I)), len(terms))
    return printable(" ".join([*terms[:at], mechs, *terms[at:]]), 400)


# --- DKIM --------------------------------------------------------------------------------------


def tags(record: str) -> dict[str, str]:
    """``k=v; k=v`` (DKIM and DMARC records) -> dict; ValueError names the bad part."""
    out: dict[str, str] = {}
    for part in record.split(";"):
        if not part.strip():
            continue
        m = _TAG.match(part.strip())
        if m is None or m.group(1).lower() in out:
            raise ValueError(f"bad or repeated tag '{printable(part.strip(), 40)}'")
        out[m.group(1).lower()] = m.group(2).strip()
    return out


def public_key(path: Path) -> tuple[str, bytes]:
    """(k=, the p= bytes) of a PEM private key: SubjectPublicKeyInfo DER for RSA, raw for Ed25519."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        return "rsa", key.public_key().public_bytes(*der)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
        return "ed25519", key.public_key().public_bytes(*raw)
    raise ValueError(f"a {type(key).__name__}; DKIM keys are RSA or Ed25519")


def check_dkim(lookup: Lookup, cfg: DkimConfig | None) -> Finding:
    """Does ``<selector>._domainkey.<domain>`` publish the public half of the configured key?"""
    if cfg is None:
        message = (
            "email.dkim is not set: mail goes out unsigned (Gmail and Yahoo want DKIM from bulk senders)"
        )
        fix = "openssl genrsa -out dkim.pem 2048, set email.dkim, and run doctor again for the record"
        return Finding("dkim", Level.WARN, message, fix)
    try:
        kind, key = public_key(cfg.private_key_file)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        message = f"cannot read email.dkim.private_key_file {cfg.private_key_file}: {printable(str(exc))}"
        return Finding("dkim", Level.FAIL, message, "point it at an unencrypted PEM RSA or Ed25519 key")
    name = f"{cfg.selector}._domainkey.{cfg.domain}".lower()
    want = f"v=DKIM1; k={kind}; p={base64.b64encode(key).decode()}"
    fix = f'publish {name}. TXT "{want}"' + (" (as 255-character strings)" if len(want) > 255 else "")
    answer = lookup.txt(name)
    if answer.status is Status.TEMPORARY:
        return Finding("dkim", Level.WARN, f"{name}: {answer.error}", _AGAIN)
    if len(answer.records) != 1:
        found = f"{len(answer.records)} TXT records" if answer.records else answer.error
        return Finding("dkim", Level.FAIL, f"no single DKIM record at {name} ({found})", fix)
    problem = _dkim_problem(answer.records[0], kind, key)
    if problem:
        return Finding("dkim", Level.FAIL, f"{name}: {problem}", fix)
    return Finding("dkim", Level.OK, f"{name} publishes the {kind} key of {cfg.private_key_file.name}")


def _dkim_problem(record: str, kind: str, key: bytes) -> str:
    """Why ``record`` is not the DKIM key record of ``key`` ("" when it is)."""
    try:
        found = tags(record)
    except ValueError as exc:
        return f"not a DKIM record: {exc}"
    if found.get("v", "DKIM1") != "DKIM1":
        return f"v={printable(found['v'], 20)}, expected v=DKIM1"
    if found.get("k", "rsa").lower() != kind:
        return f"k={printable(found.get('k', 'rsa'), 20)}, but the private key is {kind}"
    if not found.get("p", "").strip():
        return "no public key (p= is missing or empty: the key is revoked)"
    try:
        published = base64.b64decode(re.sub(r"\s+", "", found["p"]), validate=True)
    except (binascii.Error, ValueError):
        return f"p= is not base64: '{printable(found['p'], 40)}'"
    return "" if published == key else "the published key does not match email.dkim.private_key_file"


# --- DMARC and MX ------------------------------------------------------------------------------


def _dmarc_record(lookup: Lookup, domain: str) -> tuple[str, str, str, Level]:
    """(where, the v=DMARC1 record, problem, its level): the From domain's, else its nearest parent's."""
    labels = domain.split(".")
    for i in range(max(1, len(labels) - 1)):
        org = ".".join(labels[i:])
        answer = lookup.txt(f"_dmarc.{org}")
        if answer.status in (Status.TEMPORARY, Status.BROKEN):
            level = Level.WARN if answer.status is Status.TEMPORARY else Level.FAIL
            return org, "", f"_dmarc.{org}: {answer.error}", level
        records = [r for r in answer.records if re.match(r"^v\s*=\s*DMARC1\s*(;|$)", r, re.I)]
        if len(records) > 1:
            return org, "", f"{len(records)} v=DMARC1 records at _dmarc.{org} (one is allowed)", Level.FAIL
        if records:
            return org, records[0], "", Level.OK
    return domain, "", f"no v=DMARC1 record at _dmarc.{domain}", Level.FAIL


def _aligned(domain: str | None, sender: str, org: str, mode: str) -> bool:
    """DMARC identifier alignment: strict is the same name; relaxed allows sub- and parent domains."""
    if domain is None:
        return False
    if mode.lower() == "s":
        return domain == sender
    return _under(domain, org) or ("." in domain and _under(sender, domain))


def _under(name: str, domain: str) -> bool:
    return name == domain or name.endswith("." + domain)


def check_dmarc(lookup: Lookup, sender: str, signer: str | None, bounce: str, passing: set[str]) -> Finding:
    """A DMARC policy for the From domain, and DKIM or SPF aligned with it (and passing above)."""
    org, record, problem, level = _dmarc_record(lookup, sender)
    fix = f'publish _dmarc.{sender}. TXT "v=DMARC1; p=none" (tighten to quarantine once reports look right)'
    if level is Level.WARN:
        return Finding("dmarc", level, problem, _AGAIN)
    if not record:
        return Finding("dmarc", level, f"{problem}: receivers apply no policy to mail From {sender}", fix)
    try:
        policy = tags(record)
    except ValueError as exc:
        return Finding("dmarc", Level.FAIL, f"_dmarc.{org}: not a DMARC record: {exc}", fix)
    if policy.get("p", "").lower() not in ("none", "quarantine", "reject"):
        return Finding("dmarc", Level.FAIL, f"_dmarc.{org}: p= must be none, quarantine or reject", fix)
    ways = {
        "dkim": _aligned(signer, sender, org, policy.get("adkim", "r")),
        "spf": _aligned(bounce, sender, org, policy.get("aspf", "r")),
    }
    good = [way.upper() for way, ok in ways.items() if ok and way in passing]
    where = f"_dmarc.{org} (p={printable(policy['p'], 20)})"
    if good:
        return Finding("dmarc", Level.OK, f"{where}; aligned and passing: {', '.join(good)}")
    if any(ways.values()):
        names = ", ".join(way.upper() for way, ok in ways.items() if ok)
        return Finding(
            "dmarc", Level.WARN, f"{where}; aligned through {names}, which fails above", "fix that"
        )
    message = (
        f"{where}; neither DKIM d={signer or '(unsigned)'} nor the bounce domain {bounce} aligns with"
        f" the From domain {sender}: mail fails DMARC"
    )
    sign = f"set email.dkim.domain to {sender}" if signer else f"sign with DKIM as {sender}"
    return Finding("dmarc", Level.FAIL, message, f"{sign}, or set inbound.bounce_domain under {sender}")


def check_mx(lookup: Lookup, domain: str, needed: bool) -> Finding:
    """An MX for the bounce domain, which only matters when inbound mail is read."""
    answer = lookup.mx(domain)
    if answer.status is Status.TEMPORARY:
        return Finding("mx", Level.WARN, f"MX of {domain}: {answer.error}", _AGAIN)
    hosts = [r.split(" ", 1)[-1] for r in answer.records if r.split(" ", 1)[-1] != "."]
    use = "bounces reach publisher inbound" if needed else "not needed: inbound is off"
    if hosts:
        return Finding("mx", Level.OK, f"MX of {domain}: {printable(', '.join(hosts))} ({use})")
    problem = answer.error if not answer.records else "a null MX: accepts no mail"
    if not needed:
        return Finding("mx", Level.OK, f"no MX at {domain}, {problem} ({use})")
    message = f"no MX at {domain} ({problem}): bounces never reach publisher inbound"
    return Finding(
        "mx", Level.FAIL, message, f"publish {domain}. MX 10 <the host that runs publisher inbound>"
    )


# --- TLS ---------------------------------------------------------------------------------------


def check_tls(report: TlsReport | None, now: datetime) -> Finding:
    """The relay's TLS: on, trusted, for the right name, not about to expire."""
    if report is None:
        return Finding("tls", Level.WARN, "not checked: email.transport is file (no relay)", _FOR_REAL)
    relay = f"{report.host}:{report.port}"
    if report.error and not report.protocol:
        return Finding(
            "tls", Level.FAIL, f"{relay} ({report.security}): {printable(report.error)}", _tls_fix(report)
        )
    if report.security == "none":
        offered = "; the server offers STARTTLS" if report.starttls_offered else ""
        message = f"email.smtp.security is none: mail to {relay} travels in clear{offered}"
        return Finding("tls", Level.WARN, message, _tls_fix(report))
    names = printable(", ".join(report.names) or "no names", 80)
    if report.verify_error:
        why = printable(report.verify_error)
        message = f"{relay}: untrusted certificate ({why}; for {names}): sends will refuse it"
        return Finding("tls", Level.FAIL, message, _tls_fix(report))
    until = report.not_after.date().isoformat() if report.not_after else "?"
    message = f"{relay}: {report.protocol}, certificate for {names} valid until {until}"
    if report.not_after and report.not_after - now < EXPIRY_WARNING:
        return Finding("tls", Level.WARN, f"{message}, soon", "renew the relay's certificate")
    if report.protocol in ("SSLv3", "TLSv1", "TLSv1.1"):
        return Finding(
            "tls", Level.WARN, f"{message}; {report.protocol} is obsolete", "enable TLS 1.2 or 1.3"
        )
    return Finding("tls", Level.OK, message)


def _tls_fix(report: TlsReport) -> str:
    error = (report.verify_error or report.error).lower()
    if report.security == "none":
        if report.starttls_offered:
            return "set email.smtp.security: starttls"
        return "use the provider's submission port: 587 with starttls, or 465 with ssl"
    if "starttls" in error:
        return "set email.smtp.security to ssl (port 465), or use the submission port 587"
    if "mismatch" in error:
        return f"set email.smtp.host to a name on the certificate ({printable(', '.join(report.names), 60)})"
    if "expired" in error:
        return "renew the relay's certificate"
    if report.verify_error:
        return "give the relay a certificate from a public CA (e.g. Let's Encrypt) for email.smtp.host"
    return "check email.smtp.host, port and security, and that the relay accepts connections from here"
