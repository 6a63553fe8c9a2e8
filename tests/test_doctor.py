"""`publisher doctor` against a real DNS server and a real STARTTLS relay, both on 127.0.0.1.

The DNS server is dnslib's, serving the zone each test writes; the relay is
aiosmtpd with a certificate made here. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import NameOID
from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import DNSLogger, DNSServer
from typer.testing import CliRunner, Result

from publisher.cli import app
from publisher.config import DkimConfig
from publisher.deliver.dns import Resolver, Status, parse_nameserver
from publisher.ops.doctor import Level, check_dkim, check_spf

DOMAIN = "example.test"
SELECTOR = "s1"


# --- a DNS server serving the test's zone --------------------------------------------------------


@dataclass
class Zone:
    """Records by lower-case name; a CNAME is followed inside the zone, loops included."""

    records: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)

    def add(self, name: str, rtype: str, value: Any) -> None:
        self.records.setdefault(name.lower(), []).append((rtype, value))

    def txt(self, name: str, text: str | bytes) -> None:
        self.add(name, "TXT", text.encode() if isinstance(text, str) else text)

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        name, qtype = str(request.q.qname).rstrip(".").lower(), QTYPE[request.q.qtype]
        for _ in range(20):
            entries = self.records.get(name)
            if entries is None:
                reply.header.rcode = RCODE.NXDOMAIN if not reply.rr else RCODE.NOERROR
                return reply
            target = next((v for t, v in entries if t == "CNAME"), None)
            if target is not None and qtype != "CNAME":
                reply.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME(target), ttl=60))
                name = target
                continue
            for rtype, value in entries:
                if rtype == qtype:
                    reply.add_answer(RR(name, getattr(QTYPE, rtype), rdata=_rdata(rtype, value), ttl=60))
            return reply
        return reply


def _rdata(rtype: str, value: Any) -> Any:
    if rtype == "TXT":
        return TXT([value[i : i + 255] for i in range(0, len(value), 255)] or [b""])
    if rtype == "MX":
        preference, host = value.split()
        return MX(host, int(preference))
    return {"A": A, "AAAA": AAAA, "CNAME": CNAME}[rtype](value)


@pytest.fixture(scope="module")
def dns_server() -> Iterator[tuple[Zone, int]]:
    zone = Zone()
    server = DNSServer(zone, address="127.0.0.1", port=0, logger=DNSLogger("-send,-recv,-request,-reply"))
    server.start_thread()
    yield zone, server.server.server_address[1]
    server.stop()
    server.server.server_close()  # dnslib's stop() leaves the socket open


@pytest.fixture
def zone(dns_server: tuple[Zone, int]) -> Zone:
    dns_server[0].records.clear()
    return dns_server[0]


# --- keys, a certificate and a STARTTLS relay ----------------------------------------------------


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _dkim_record(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


@pytest.fixture(scope="module")
def keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    return _rsa(), _rsa()


def _certificate(folder: Path, days: int) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and relay.test) valid for ``days`` more days."""
    key = _rsa()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.test")])
    now = datetime.now(UTC)
    san = [x509.DNSName("relay.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / f"relay-{days}.pem", folder / f"relay-{days}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(_pem(key))
    return cert_file, key_file


class _Sink:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 OK"


@pytest.fixture
def start_relay(tmp_path: Path) -> Iterator[Callable[..., tuple[int, Path]]]:
    """Start an aiosmtpd relay offering STARTTLS (certificate valid ``days``); (port, cert file)."""
    loops: list[tuple[asyncio.AbstractEventLoop, threading.Thread, asyncio.Server]] = []

    def start(days: int = 30) -> tuple[int, Path]:
        cert, key = _certificate(tmp_path, days)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        loop = asyncio.new_event_loop()
        factory = lambda: SMTP(_Sink(), tls_context=context, hostname="relay.test", loop=loop)  # noqa: E731
        server = loop.run_until_complete(loop.create_server(factory, "127.0.0.1", 0))
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        loops.append((loop, thread, server))
        return server.sockets[0].getsockname()[1], cert

    yield start
    for loop, thread, server in loops:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


# --- the command -----------------------------------------------------------------------------


@dataclass
class Setup:
    """A project whose relay, keys and DNS are right; each test breaks one thing."""

    zone: Zone
    dns_port: int
    relay_port: int
    relay_cert: Path
    project: Path
    make_settings: Callable[..., Any]
    monkeypatch: pytest.MonkeyPatch
    dkim_file: Path

    def good_zone(self, dkim_key: rsa.RSAPrivateKey) -> None:
        self.zone.txt(DOMAIN, "v=spf1 ip4:127.0.0.1 -all")
        self.zone.txt(DOMAIN, "google-site-verification=abc")
        self.zone.txt(f"{SELECTOR}._domainkey.{DOMAIN}", _dkim_record(dkim_key))
        self.zone.txt(f"_dmarc.{DOMAIN}", "v=DMARC1; p=reject; adkim=s; rua=mailto:d@example.test")
        self.zone.add(DOMAIN, "MX", f"10 mx.{DOMAIN}")

    def run(self, *extra: str, trust_relay: bool = True, **overrides: Any) -> Result:
        email = {
            "from": f"News <news@{DOMAIN}>",
            "transport": "smtp",
            "smtp": {"host": "127.0.0.1", "port": self.relay_port, "security": "starttls", "timeout": 5},
            "dkim": {"domain": DOMAIN, "selector": SELECTOR, "private_key_file": str(self.dkim_file)},
        }
        email.update(overrides.pop("email", {}))
        self.make_settings(email=email, **overrides)
        if trust_relay:
            self.monkeypatch.setenv("SSL_CERT_FILE", str(self.relay_cert))
        else:
            self.monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        args = ["doctor", "--config", str(self.project / "config.yaml"), "--timeout", "2"]
        return CliRunner().invoke(app, [*args, "--nameserver", f"127.0.0.1:{self.dns_port}", *extra])


@pytest.fixture
def setup(
    zone: Zone,
    dns_server: tuple[Zone, int],
    start_relay: Callable[..., tuple[int, Path]],
    keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey],
    project: Path,
    make_settings: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> Setup:
    port, cert = start_relay()
    dkim_file = project / "dkim.pem"
    dkim_file.write_bytes(_pem(keys[0]))
    return Setup(zone, dns_server[1], port, cert, project, make_settings, monkeypatch, dkim_file)


def lines(result: Result) -> dict[str, str]:
    """check -> its output line; asserts the command ended without a traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    out: dict[str, str] = {}
    for line in result.output.splitlines():
        level, check, *_ = line.split()
        assert level in {"ok", "warn", "fail"}, line
        out[check] = line
    assert list(out) == ["spf", "dkim", "dmarc", "mx", "tls"], result.output
    return out


def level(result: Result, check: str) -> str:
    return lines(result)[check].split()[0]


# --- everything right ---------------------------------------------------------------------------


def test_everything_right_exits_0(setup: Setup, keys: Any) -> None:
    setup.good_zone(keys[0])
    result = setup.run()
    out = lines(result)
    assert result.exit_code == 0, result.output
    assert all(line.startswith("ok") for line in out.values()), result.output
    assert "allows the relay 127.0.0.1" in out["spf"]
    assert "aligned and passing: DKIM, SPF" in out["dmarc"]
    assert "TLSv1." in out["tls"] and "relay.test" in out["tls"]


def test_help_names_every_check() -> None:
    result = CliRunner().invoke(app, ["doctor", "--help"])
    assert result.exit_code == 0
    for word in ("SPF", "DKIM", "DMARC", "MX", "TLS", "--nameserver", "IP[:PORT]"):
        assert word in result.output


# --- SPF ---------------------------------------------------------------------------------------


def test_spf_missing_fails_with_the_record_to_publish(setup: Setup, keys: Any) -> None:
    setup.good_zone(keys[0])
    setup.zone.records[DOMAIN] = [
        (t, v) for t, v in setup.zone.records[DOMAIN] if t != "TXT" or b"spf1" not in v
    ]
    result = setup.run()
    assert result.exit_code == 1
    spf = lines(result)["spf"]
    assert spf.startswith("fail") and f"no v=spf1 record at {DOMAIN}" in spf
    assert f'publish {DOMAIN}. TXT "v=spf1 ip4:127.0.0.1 ~all"' in spf


def test_spf_not_including_a_loopback_relay_warns(setup: Setup, keys: Any) -> None:
    setup.good_zone(keys[0])
    setup.zone.records[DOMAIN][0] = ("TXT", b"v=spf1 ip4:192.0.2.1 -all")
    spf = lines(setup.run())["spf"]
    assert spf.startswith("warn") and "does not allow the relay 127.0.0.1" in spf and "private" in spf


def test_spf_not_including_a_public_relay_fails_with_the_amended_record(dns_server: tuple[Zone, int]) -> None:
    zone, port = dns_server
    zone.records.clear()
    zone.add("relay.example.test", "A", "203.0.114.7")
    zone.add("relay.example.test", "AAAA", "2001:4860::7")
    zone.txt(DOMAIN, "v=spf1 ip4:203.0.114.7 include:_spf.other.test -all")
    zone.txt("_spf.other.test", "v=spf1 a:mail.other.test mx:other.test ~all")
    finding = check_spf(Resolver(("127.0.0.1", port), 2), DOMAIN, "relay.example.test", "smtp")
    assert finding.level is Level.FAIL
    assert "2001:4860::7" in finding.message and "'-all'" in finding.message
    amended = "v=spf1 ip4:203.0.114.7 include:_spf.other.test ip4:203.0.114.7 ip6:2001:4860::7 -all"
    assert finding.fix == f'publish {DOMAIN}. TXT "{amended}"'
    zone.records[DOMAIN] = [("TXT", b"v=spf1 redirect=_spf.other.test")]
    zone.add("mail.other.test", "A", "203.0.114.7")
    zone.add("other.test", "MX", "10 mx6.other.test")
    zone.add("mx6.other.test", "AAAA", "2001:4860::7")
    ok = check_spf(Resolver(("127.0.0.1", port), 2), DOMAIN, "relay.example.test", "smtp")
    assert ok.level is Level.OK, ok


def test_spf_include_chain_over_ten_lookups_fails(setup: Setup, keys: Any) -> None:
    setup.good_zone(keys[0])
    setup.zone.records[DOMAIN][0] = ("TXT", b"v=spf1 include:i1.example.test -all")
    for n in range(1, 12):
        setup.zone.txt(f"i{n}.example.test", f"v=spf1 include:i{n + 1}.example.test ~all")
    setup.zone.txt("i12.example.test", "v=spf1 ip4:127.0.0.1 -all")
    result = setup.run()
    assert result.exit_code == 1
    spf = lines(result)["spf"]
    assert spf.startswith("fail") and "more than 10 DNS lookups" in spf and "ip4:/ip6:" in spf


def test_spf_include_loop_is_bounded(setup: Setup, keys: Any) -> None:
    setup.good_zone(keys[0])
    setup.zone.records[DOMAIN][0] = ("TXT", b"v=spf1 include:example.test -all")
    assert "more than 10 DNS lookups" in lines(setup.run())["spf"]


def test_spf_with_file_transport_is_not_checked_but_the_record_is_reported(setup: Setup, keys: Any) -> None:
    setup.good_zone(keys[0])
    out = lines(setup.run(email={"transport": "file"}))
    assert out["spf"].startswith("ok") and "not checked for file transport" in out["spf"]
    assert "v=spf1 ip4:127.0.0.1 -all" in out["spf"]
    assert out["tls"].startswith("warn") and "not checked" in out["tls"]
    setup.zone.records.pop(DOMAIN)
    assert lines(setup.run(email={"transport": "file"}))["spf"].startswith("warn")


# --- DKIM --------------------------------------------------------------------------------------


def test_dkim_record_missing_fails_with_the_record(setup: Setup, keys: Any) -> None:
    setup.good_zone(keys[0])
    setup.zone.records.pop(f"{SELECTOR}._domainkey.{DOMAIN}")
    result = setup.run()
    assert result.exit_code == 1
    dkim = lines(result)["dkim"]
    assert dkim.startswith("fail") and f"no single DKIM record at {SELECTOR}._domainkey.{DOMAIN}" in dkim
    assert f'publish {SELECTOR}._domainkey.{DOMAIN}. TXT "{_dkim_record(keys[0])}"' in dkim


def test_dkim_key_mismatch_fails(setup: Setup, keys: Any) -> None:
    setup.good_zone(keys[1])
    result = setup.run()
    assert result.exit_code == 1
    out = lines(result)
    assert out["dkim"].startswith("fail") and "does not match email.dkim.private_key_file" in out["dkim"]
    assert _dkim_record(keys[0]) in out["dkim"]
    assert out["dmarc"].startswith("ok") and "passing: SPF" in out["dmarc"]  # SPF still aligns


def test_dkim_not_configured_warns(setup: Setup, keys: Any) -> None:
    setup.good_zone(keys[0])
    result = setup.run(email={"dkim": None})
    assert result.exit_code == 0
    dkim = lines(result)["dkim"]
    assert dkim.startswith("warn") and "email.dkim is not set" in dkim


def test_dkim_ed25519_key(dns_server: tuple[Zone, int], tmp_path: Path) -> None:
    zone, port = dns_server
    zone.records.clear()
    key = ed25519.Ed25519PrivateKey.generate()
    key_file = tmp_path / "ed.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    zone.txt(f"ed._domainkey.{DOMAIN}", f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}")
    cfg = DkimConfig(domain=DOMAIN, selector="ed", private_key_file=key_file)
    assert check_dkim(Resolver(("127.0.0.1", port), 2), cfg).level is Level.OK
    zone.records[f"ed._domainkey.{DOMAIN}"] = [("TXT", b"v=DKIM1; p=" + base64.b64encode(raw))]
    assert "but the private key is ed25519" in check_dkim(Resolver(("127.0.0.1", port), 2), cfg).message


# --- DMARC -------------------------------------------------------------------------------------


def test_dmarc_missing_fails(setup: Setup, keys: Any) -> None:
    setup.good_zone(keys[0])
    setup.zone.records.pop(f"_dmarc.{DOMAIN}")
    result = setup.run()
    assert result.exit_code == 1
    dmarc = lines(result)["dmarc"]
    assert dmarc.startswith("fail") and f'publish _dmarc.{DOMAIN}. TXT "v=DMARC1; p=none"' in dmarc


def test_dmarc_found_at_the_parent_domain(setup: Setup, keys: Any) -> None:
    setup.good_zone(keys[0])
    setup.zone.records[f"_dmarc.{DOMAIN}"] = [("TXT", b"v=DMARC1; p=quarantine")]
    sub = f"news.{DOMAIN}"
    result = setup.run(email={"from": f"News <news@{sub}>"}, inbound={"bounce_domain": DOMAIN})
    assert "_dmarc.example.test (p=quarantine); aligned and passing: DKIM, SPF" in lines(result)["dmarc"]


def test_dmarc_misaligned_fails(setup: Setup, keys: Any) -> None:
    setup.good_zone(keys[0])
    setup.zone.txt(f"{SELECTOR}._domainkey.other.test", _dkim_record(keys[0]))
    setup.zone.txt("bounce.other.test", "v=spf1 ip4:127.0.0.1 -all")
    dkim = {"domain": "other.test", "selector": SELECTOR, "private_key_file": str(setup.dkim_file)}
    result = setup.run(email={"dkim": dkim}, inbound={"bounce_domain": "bounce.other.test"})
    assert result.exit_code == 1
    out = lines(result)
    assert out["spf"].startswith("ok") and out["dkim"].startswith("ok")
    assert out["dmarc"].startswith("fail") and "neither DKIM d=other.test nor" in out["dmarc"]
    assert f"set email.dkim.domain to {DOMAIN}" in out["dmarc"]


def test_dmarc_strict_alignment(setup: Setup, keys: Any) -> None:
    setup.good_zone(keys[0])
    setup.zone.records[f"_dmarc.{DOMAIN}"] = [("TXT", b"v=DMARC1; p=reject; aspf=s; adkim=s")]
    setup.zone.txt(f"{SELECTOR}._domainkey.mail.{DOMAIN}", _dkim_record(keys[0]))
    setup.zone.txt(f"bounces.{DOMAIN}", "v=spf1 ip4:127.0.0.1 -all")
    dkim = {"domain": f"mail.{DOMAIN}", "selector": SELECTOR, "private_key_file": str(setup.dkim_file)}
    strict = setup.run(email={"dkim": dkim}, inbound={"bounce_domain": f"bounces.{DOMAIN}"})
    assert level(strict, "dmarc") == "fail"
    setup.zone.records[f"_dmarc.{DOMAIN}"] = [("TXT", b"v=DMARC1; p=reject")]
    relaxed = setup.run(email={"dkim": dkim}, inbound={"bounce_domain": f"bounces.{DOMAIN}"})
    assert level(relaxed, "dmarc") == "ok"


# --- MX ----------------------------------------------------------------------------------------


def test_mx_missing_is_fine_without_inbound_and_fails_with_it(setup: Setup, keys: Any) -> None:
    setup.good_zone(keys[0])
    setup.zone.records[DOMAIN] = [(t, v) for t, v in setup.zone.records[DOMAIN] if t != "MX"]
    without = lines(setup.run())["mx"]
    assert without.startswith("ok") and "not needed" in without
    result = setup.run(inbound={"listen": "127.0.0.1:2525"})
    assert result.exit_code == 1
    mx = lines(result)["mx"]
    assert mx.startswith("fail") and f"publish {DOMAIN}. MX 10" in mx


# --- TLS ---------------------------------------------------------------------------------------


def test_tls_self_signed_certificate_is_untrusted(setup: Setup, keys: Any) -> None:
    setup.good_zone(keys[0])
    result = setup.run(trust_relay=False)
    assert result.exit_code == 1
    tls = lines(result)["tls"]
    assert tls.startswith("fail") and "untrusted certificate" in tls and "self-signed" in tls
    assert "certificate from a public CA" in tls


def test_tls_certificate_about_to_expire_warns(setup: Setup, keys: Any, start_relay: Any) -> None:
    setup.good_zone(keys[0])
    setup.relay_port, setup.relay_cert = start_relay(days=3)
    result = setup.run()
    assert result.exit_code == 0
    assert level(result, "tls") == "warn" and "soon" in lines(result)["tls"]


def test_tls_security_none_warns_and_names_starttls(setup: Setup, keys: Any) -> None:
    setup.good_zone(keys[0])
    smtp = {"host": "127.0.0.1", "port": setup.relay_port, "security": "none"}
    result = setup.run(email={"smtp": smtp})
    assert result.exit_code == 0
    tls = lines(result)["tls"]
    assert tls.startswith("warn") and "offers STARTTLS" in tls and "security: starttls" in tls


def test_tls_relay_not_listening_fails(setup: Setup, keys: Any) -> None:
    setup.good_zone(keys[0])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    smtp = {"host": "127.0.0.1", "port": closed, "security": "ssl"}
    tls = lines(setup.run(email={"smtp": smtp}))["tls"]
    assert tls.startswith("fail") and f"127.0.0.1:{closed} (ssl)" in tls


# --- hostile DNS data --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "record", "check", "expected"),
    [
        (DOMAIN, b"v=spf1 " + b"a" * 10_000, "spf", "unknown term"),
        (DOMAIN, b"v=spf1 ip4:127.0.0.1\x00 -all", "spf", "\\x00"),
        (DOMAIN, b"v=spf1 ip4:999.1.1.1 include -all", "spf", "not an IP address"),
        (DOMAIN, b"v=spf1 include:" + b"x" * 300 + b".test -all", "spf", "permerror"),
        (f"{SELECTOR}._domainkey.{DOMAIN}", b"v=DKIM1; p=" + b"A" * 10_000, "dkim", "does not match"),
        (f"{SELECTOR}._domainkey.{DOMAIN}", b"v=DKIM1; k=rsa; p=\x00\xff;", "dkim", "not base64"),
        (f"{SELECTOR}._domainkey.{DOMAIN}", b"[bold]v=DKIM1 k rsa", "dkim", "'[bold]v=DKIM1 k rsa'"),
        (f"_dmarc.{DOMAIN}", b"v=DMARC1; p=\x00reject", "dmarc", "p= must be"),
        (f"_dmarc.{DOMAIN}", b"v=DMARC1; p=none; " + b"x=1; " * 2000, "dmarc", "bad or repeated tag"),
    ],
)
def test_hostile_records_are_reported_not_raised(
    setup: Setup, keys: Any, name: str, record: bytes, check: str, expected: str
) -> None:
    setup.good_zone(keys[0])
    setup.zone.records[name] = [(t, v) for t, v in setup.zone.records.get(name, []) if t != "TXT"]
    setup.zone.txt(name, record)
    result = setup.run()
    assert result.exit_code == 1
    line = lines(result)[check]
    assert line.startswith("fail") and expected in line, line
    assert "\x00" not in result.output and len(line) < 1500


@pytest.mark.parametrize("name", [DOMAIN, f"{SELECTOR}._domainkey.{DOMAIN}", f"_dmarc.{DOMAIN}"])
def test_cname_loops_are_reported(setup: Setup, keys: Any, name: str) -> None:
    setup.good_zone(keys[0])
    setup.zone.records[name] = [("CNAME", f"loop.{DOMAIN}")]
    setup.zone.records[f"loop.{DOMAIN}"] = [("CNAME", name)]
    result = setup.run()
    assert result.exit_code == 1
    assert "CNAME chain too long" in result.output


def test_a_silent_nameserver_gives_warnings_not_a_hang(setup: Setup, keys: Any) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        setup.dns_port = silent.getsockname()[1]
        result = setup.run("--timeout", "0.3")
    out = lines(result)
    assert out["spf"].startswith("warn") and "no answer within 0.3 s" in out["spf"]
    assert all(out[check].startswith("warn") for check in ("dkim", "dmarc", "mx")), result.output
    assert result.exit_code == 0  # nothing is known to be wrong


# --- the resolver wrapper -----------------------------------------------------------------------


def test_resolver_answers_as_data(dns_server: tuple[Zone, int]) -> None:
    zone, port = dns_server
    zone.records.clear()
    zone.add("mx.test", "MX", "0 .")
    resolver = Resolver(("127.0.0.1", port), 2)
    assert resolver.mx("mx.test").records == ("0 .",)
    assert resolver.txt("mx.test").status is Status.NODATA
    assert resolver.txt("nowhere.test").status is Status.NXDOMAIN
    assert resolver.txt("bad..name").status is Status.BROKEN
    assert resolver.addresses("::1").records == ("::1",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("192.0.2.1", ("192.0.2.1", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)), ("[::1]:53", ("::1", 53))],
)
def test_parse_nameserver(value: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(value) == expected


def test_bad_nameserver_is_a_usage_error(setup: Setup) -> None:
    args = ["doctor", "--config", str(setup.project / "config.yaml"), "--nameserver", "ns.example:53"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "not an IP address" in result.output
