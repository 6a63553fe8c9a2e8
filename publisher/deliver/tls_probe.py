"""The TLS handshake with the SMTP relay, as `publisher doctor` sees it.

The probe shakes hands the way ``deliver/smtp.py`` does (the system's trusted
CAs, hostname checked), so a certificate the probe refuses is one every send
would refuse. When verification fails it shakes hands once more without
verifying, only to read the protocol and the certificate for the report.
Nothing raises: connection and TLS trouble come back in ``TlsReport.error``.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, replace
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

EHLO_NAME = "localhost"  # socket.getfqdn() can wait seconds on a reverse lookup


@dataclass(frozen=True, slots=True)
class TlsReport:
    """What the relay offered: the protocol, the certificate, and whether it verified."""

    host: str
    port: int
    security: str  # none | starttls | ssl
    error: str = ""  # no connection, no STARTTLS, or a handshake that failed even unverified
    starttls_offered: bool | None = None  # known for none and starttls
    protocol: str = ""  # e.g. TLSv1.3
    verify_error: str = ""  # why the certificate is not trusted ("" = trusted)
    not_after: datetime | None = None
    names: tuple[str, ...] = ()  # subject CN and DNS/IP alternative names

    @property
    def verified(self) -> bool:
        return not self.error and not self.verify_error and bool(self.protocol)


class _NoStartTls(Exception):
    pass


def probe(host: str, port: int, security: str, timeout: float) -> TlsReport:
    """Connect to the relay with ``security`` (none, starttls or ssl) and report the TLS it offers."""
    base = TlsReport(host, port, security)
    if security == "none":
        return _plain(base, timeout)
    try:
        protocol, der = _handshake(host, port, security, timeout, ssl.create_default_context())
        return _with_cert(base, protocol, der, "")
    except ssl.SSLCertVerificationError as exc:
        verify_error = exc.verify_message or _reason(exc)
    except _NoStartTls:
        return _replace(base, error="the server does not offer STARTTLS", starttls_offered=False)
    except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        return _replace(base, error=_reason(exc))
    try:
        protocol, der = _handshake(host, port, security, timeout, _unverified())
    except (OSError, smtplib.SMTPException, ssl.SSLError, _NoStartTls) as exc:
        return _replace(base, error=_reason(exc), verify_error=verify_error)
    return _with_cert(base, protocol, der, verify_error)


def _plain(base: TlsReport, timeout: float) -> TlsReport:
    """With ``security: none``: only whether STARTTLS is on offer (for the hint)."""
    try:
        with smtplib.SMTP(base.host, base.port, timeout=timeout, local_hostname=EHLO_NAME) as smtp:
            smtp.ehlo()
            return _replace(base, starttls_offered=smtp.has_extn("starttls"))
    except (OSError, smtplib.SMTPException) as exc:
        return _replace(base, error=_reason(exc))


def _handshake(
    host: str, port: int, security: str, timeout: float, context: ssl.SSLContext
) -> tuple[str, bytes | None]:
    """One connection: (protocol version, the peer's certificate in DER)."""
    smtp: smtplib.SMTP
    if security == "ssl":
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context, local_hostname=EHLO_NAME)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout, local_hostname=EHLO_NAME)
    with smtp:
        if security == "starttls":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise _NoStartTls
            smtp.starttls(context=context)
        sock = smtp.sock
        if not isinstance(sock, ssl.SSLSocket):
            raise ssl.SSLError("no TLS session after the handshake")
        return sock.version() or "", sock.getpeercert(binary_form=True)


def _unverified() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _with_cert(base: TlsReport, protocol: str, der: bytes | None, verify_error: str) -> TlsReport:
    if der is None:
        return _replace(base, protocol=protocol, verify_error=verify_error or "no certificate")
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        return _replace(
            base, protocol=protocol, verify_error=verify_error or f"unreadable certificate: {exc}"
        )
    return _replace(
        base,
        protocol=protocol,
        verify_error=verify_error,
        not_after=cert.not_valid_after_utc,
        names=_names(cert),
        starttls_offered=True if base.security == "starttls" else None,
    )


def _names(cert: x509.Certificate) -> tuple[str, ...]:
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return tuple(names)
    names += san.get_values_for_type(x509.DNSName)
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return tuple(dict.fromkeys(names))


def _replace(report: TlsReport, **changes: object) -> TlsReport:
    return replace(report, **changes)  # type: ignore[arg-type]


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
