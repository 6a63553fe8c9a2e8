"""One SMTP connection, reused for many messages (``transport: smtp``).

smtplib in threads, one connection per thread: measured against aiosmtplib on
this machine (4 connections to a local sink) it moves about twice the
messages per second. Every smtplib reply or exception is translated into the
three outcomes of ``envelope``: accepted, rejected (5xx), or deferred (4xx,
dropped connection, timeout), so the pool never sees smtplib's exceptions.
"""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from publisher.config import Settings
from publisher.deliver.envelope import Deferred, Envelope, FatalDeliveryError, Rejected, reply_text


@dataclass(frozen=True)
class SmtpParams:
    host: str
    port: int
    security: str = "none"  # none | starttls | ssl
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    ssl_context: ssl.SSLContext | None = None  # default: the system's trusted CAs
    local_hostname: str | None = None
    pipelining: bool = True  # used when the server offers it

    @classmethod
    def from_settings(cls, settings: Settings, environ: dict[str, str] | None = None) -> SmtpParams:
        """Connection settings from config; the password comes from the variable ``password_env`` names."""
        env = os.environ if environ is None else environ
        smtp = settings.email.smtp
        password = None
        if smtp.username:
            if not smtp.password_env or not env.get(smtp.password_env):
                raise FatalDeliveryError(
                    f"email.smtp.username is set but no password: the environment variable "
                    f"{smtp.password_env or '(email.smtp.password_env)'} is empty",
                    hint=f"export {smtp.password_env or 'PUBLISHER_SMTP_PASSWORD'}=... before sending",
                )
            password = env[smtp.password_env]
        return cls(smtp.host, smtp.port, smtp.security, smtp.username, password, smtp.timeout)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


class SmtpTransport:
    """A lazily opened connection; ``send`` reconnects when the last one was lost."""

    def __init__(self, params: SmtpParams) -> None:
        self.params = params
        self._smtp: smtplib.SMTP | None = None
        self._utf8 = False
        self._pipelining = False

    def open(self) -> None:
        if self._smtp is not None:
            return
        p = self.params
        # Loading the system CAs costs ~80 ms: only when TLS is actually used.
        context = p.ssl_context or (ssl.create_default_context() if p.security != "none" else None)
        try:
            if p.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    p.host, p.port, timeout=p.timeout, context=context, local_hostname=p.local_hostname
                )
            else:
                smtp = smtplib.SMTP(p.host, p.port, timeout=p.timeout, local_hostname=p.local_hostname)
            # The final dot goes out as its own small write (see _data): without
            # NODELAY, Nagle's algorithm holds it for the server's delayed ACK (~40 ms).
            if smtp.sock is not None:
                smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            smtp.ehlo()
            if p.security == "starttls":
                if not smtp.has_extn("starttls"):
                    smtp.close()
                    raise FatalDeliveryError(
                        f"{p.where} does not offer STARTTLS",
                        hint="set email.smtp.security to none or ssl, or use the provider's submission port",
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
            if p.username:
                smtp.login(p.username, p.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise FatalDeliveryError(
                f"{p.where} refused the login for {p.username}: {reply_text(exc.smtp_code, exc.smtp_error)}",
                hint="check email.smtp.username and the password variable",
            ) from None
        except ssl.SSLError as exc:
            raise FatalDeliveryError(f"TLS with {p.where} failed: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise Deferred(
                    f"{p.where}: {reply_text(exc.smtp_code, exc.smtp_error)}", connection=True
                ) from None
            raise FatalDeliveryError(
                f"{p.where} refused us: {reply_text(exc.smtp_code, exc.smtp_error)}"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise Deferred(f"cannot connect to {p.where}: {_describe(exc)}", connection=True) from None
        self._smtp = smtp
        self._utf8 = smtp.has_extn("smtputf8")
        self._pipelining = self.params.pipelining and smtp.has_extn("pipelining")

    def send(self, env: Envelope, gate: Callable[[], None] | None = None) -> str:
        """Hand one message over; the server's 250 reply, or Rejected / Deferred.

        ``gate`` is called after the message body is on the wire and before the
        final dot that asks the server to accept it (see ``pool``).
        """
        self.open()
        smtp = self._smtp
        assert smtp is not None
        try:
            options = ["SMTPUTF8"] if self._utf8 and not env.recipient.isascii() else []
            if self._pipelining:
                self._envelope_pipelined(smtp, env, options)
            else:
                code, msg = smtp.mail(env.sender, options)
                if code != 250:
                    self._after_refusal(code, msg, "MAIL FROM", fatal_5xx=True)
                code, msg = smtp.rcpt(env.recipient)
                if code not in (250, 251):
                    self._after_refusal(code, msg, "RCPT TO")
                smtp.putcmd("data")
            code, msg = self._data(smtp, _crlf(env.data), gate)
            if code != 250:
                self._after_refusal(code, msg, "end of DATA")
            return reply_text(code, msg)
        except (Rejected, Deferred, FatalDeliveryError):
            raise
        except smtplib.SMTPDataError as exc:  # DATA itself was refused (no 354)
            self._after_refusal(exc.smtp_code, exc.smtp_error, "DATA")
            raise AssertionError("unreachable") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise Rejected(553, f"553 {exc}") from None
        except (OSError, smtplib.SMTPException, UnicodeError) as exc:
            self.close()
            raise Deferred(
                f"connection to {self.params.where} lost: {_describe(exc)}", connection=True
            ) from None

    def _envelope_pipelined(self, smtp: smtplib.SMTP, env: Envelope, options: list[str]) -> None:
        """MAIL, RCPT and DATA in one write (RFC 2920), then their first two replies.

        Two round trips fewer per message: on a busy list that is most of the
        client's work besides the body itself.
        """
        extra = (" " + " ".join(options)) if options else ""
        # Addresses were validated when stored (and the sender at start), so no
        # per-message smtplib.quoteaddr: its email.utils parse costs ~30 us each.
        if "\r" in env.sender + env.recipient or "\n" in env.sender + env.recipient:
            raise Rejected(553, "553 address contains a line break")
        commands = f"MAIL FROM:<{env.sender}>{extra}\r\nRCPT TO:<{env.recipient}>\r\nDATA\r\n"
        smtp.send(commands.encode("utf-8" if options else "ascii"))
        mail = smtp.getreply()
        rcpt = smtp.getreply()
        if mail[0] == 250 and rcpt[0] in (250, 251):
            return
        data = smtp.getreply()
        if data[0] == 354:  # a server that took DATA with no recipient: end that empty message
            smtp.send(b".\r\n")
            smtp.getreply()
        if mail[0] != 250:
            self._after_refusal(mail[0], mail[1], "MAIL FROM", fatal_5xx=True)
        self._after_refusal(rcpt[0], rcpt[1], "RCPT TO")

    def _data(self, smtp: smtplib.SMTP, data: bytes, gate: Callable[[], None] | None) -> tuple[int, bytes]:
        """smtplib's DATA (the command already sent), split so ``gate`` runs before the final dot."""
        code, repl = smtp.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, repl)
        # Dot-stuffing only when a line starts with a dot: skips a regex pass over most messages.
        stuff = data.startswith(b".") or b"\n." in data
        body = smtplib._quote_periods(data) if stuff else data  # type: ignore[attr-defined]
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        smtp.send(body)
        if gate is not None:
            try:
                gate()
            except BaseException:
                self.close()  # mid-DATA: the session cannot be reused
                raise
        smtp.send(b".\r\n")
        return smtp.getreply()

    def _after_refusal(self, code: int, msg: bytes, stage: str, *, fatal_5xx: bool = False) -> None:
        text = reply_text(code, msg)
        if code == 421 or code < 0:  # the server is closing the connection
            self.close()
            raise Deferred(text, connection=True)
        try:
            assert self._smtp is not None
            self._smtp.rset()  # the connection stays usable for the next message
        except (OSError, smtplib.SMTPException):
            self.close()
        if 400 <= code < 500:
            raise Deferred(text)
        if fatal_5xx:
            raise FatalDeliveryError(
                f"{self.params.where} refused the sender at {stage}: {text}",
                hint="check email.from: the server must accept it as an envelope sender",
            )
        raise Rejected(code, text)

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if smtp.sock is not None:
                smtp.sock.settimeout(2.0)
                smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            smtp.close()


def _crlf(data: bytes) -> bytes:
    """smtplib sends bytes as they are: make every line end in CRLF, as SMTP requires."""
    if data.count(b"\n") == data.count(b"\r\n"):
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
