"""One SMTP connection, reused for many messages (``transport: smtp``).

smtplib opens the connection (TLS, EHLO, AUTH: blocking, and rare); each
message is then ``smtp_session.exchange``, driven here with blocking reads
(``send``, for single messages) or by the pool over the non-blocking socket
(``connect`` + ``exchange``, for a whole send). Every reply or error becomes
one of the three outcomes of ``envelope``: accepted, rejected (5xx), or
deferred (4xx, dropped connection, timeout).
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
from publisher.deliver.smtp_session import CLOSE, GATE, READ, Exchange, exchange

HOST_KEYS = (
    "email.smtp.host and email.smtp.port in config.yaml "
    "(or PUBLISHER_EMAIL__SMTP__HOST and PUBLISHER_EMAIL__SMTP__PORT, which override them)"
)
SECURITY_KEYS = "email.smtp.security against the port (ssl: usually 465; starttls: 587; none: 25)"


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
    password_env: str | None = None  # where the password came from, named in a refused login's hint

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
        return cls(
            smtp.host,
            smtp.port,
            smtp.security,
            smtp.username,
            password,
            smtp.timeout,
            password_env=smtp.password_env,
        )

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
            # Commands are small writes: without NODELAY, Nagle's algorithm can hold
            # one back for the server's delayed ACK (~40 ms).
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
                hint=(
                    f"check email.smtp.username and the password in "
                    f"${p.password_env or 'PUBLISHER_SMTP_PASSWORD'} (email.smtp.password_env names it)"
                ),
            ) from None
        except ssl.SSLError as exc:
            raise FatalDeliveryError(
                f"TLS with {p.where} failed: {exc}", hint=f"check {SECURITY_KEYS} ({p.security} now)"
            ) from None
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise Deferred(
                    f"{p.where}: {reply_text(exc.smtp_code, exc.smtp_error)}", connection=True
                ) from None
            raise FatalDeliveryError(
                f"{p.where} refused us: {reply_text(exc.smtp_code, exc.smtp_error)}"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise Deferred(
                f"cannot connect to {p.where}: {describe_error(exc)}; {connect_hint(p, exc)}", connection=True
            ) from None
        self._smtp = smtp
        self._utf8 = smtp.has_extn("smtputf8")
        self._pipelining = self.params.pipelining and smtp.has_extn("pipelining")

    @property
    def where(self) -> str:
        return self.params.where

    @property
    def timeout(self) -> float:
        return self.params.timeout

    def connect(self) -> socket.socket:
        """Open (blocking, with TLS and AUTH as configured) and hand over the socket, non-blocking.

        The pool drives ``exchange`` over it; nothing may use smtplib on this
        connection afterwards but ``close``.
        """
        self.open()
        assert self._smtp is not None and self._smtp.sock is not None
        self._smtp.sock.setblocking(False)
        return self._smtp.sock

    def exchange(self, env: Envelope) -> Exchange:
        """The steps of sending ``env`` on this connection (see ``smtp_session``)."""
        return exchange(env, pipelining=self._pipelining, utf8=self._utf8, where=self.params.where)

    def send(self, env: Envelope, gate: Callable[[], None] | None = None) -> str:
        """Hand one message over and wait for the answer: the 250 reply, or Rejected / Deferred.

        ``gate`` is called after DATA's 354 and before the body and final dot
        that ask the server to accept the message.
        """
        self.open()
        smtp = self._smtp
        assert smtp is not None
        steps = self.exchange(env)
        value: tuple[int, bytes] | None = None
        close_after = False
        try:
            while True:
                step = steps.send(value)
                value = None
                if step is READ:
                    value = smtp.getreply()
                elif step is GATE:
                    if gate is not None:
                        gate()
                elif step is CLOSE:
                    close_after = True
                else:
                    smtp.send(b"".join(step) if isinstance(step, list) else step)  # type: ignore[arg-type]
        except StopIteration as done:
            return str(done.value)
        except Deferred as exc:
            if exc.connection:
                self.drop()
            raise
        except (Rejected, FatalDeliveryError):
            raise
        except (OSError, smtplib.SMTPException, UnicodeError) as exc:
            self.drop()
            raise Deferred(
                f"connection to {self.params.where} lost: {describe_error(exc)}", connection=True
            ) from None
        except BaseException:
            self.drop()  # e.g. the gate stopped us mid-DATA: the session cannot be reused
            raise
        finally:
            steps.close()
            if close_after:
                self.drop()

    def drop(self) -> None:
        """Close without QUIT: after an error the server may not be listening any more."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

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


def connect_hint(p: SmtpParams, exc: BaseException) -> str:
    """The settings to check when the server cannot be reached at all.

    Carried in the reason itself: the pool turns a connection that keeps failing
    into "giving up after retries: <reason>", which is all the editor sees.
    """
    hint = f"check {HOST_KEYS}"
    if isinstance(exc, socket.timeout | TimeoutError | smtplib.SMTPServerDisconnected):
        hint += f", and {SECURITY_KEYS} ({p.security} now)"
    return hint


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
