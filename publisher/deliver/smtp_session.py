"""One message's SMTP exchange, written once as a generator and driven two ways.

``exchange`` yields what it needs: bytes to write, ``READ`` for the server's
next reply, ``GATE`` before the final dot (where the pool holds a message
until the previous acceptance on the connection is recorded). The pool drives
it over a non-blocking socket, many connections in one thread; the blocking
``SmtpTransport.send`` drives it with plain reads. So MAIL/RCPT/DATA, dot
stuffing and the meaning of every reply live in one place.

Replies are parsed by ``ReplyReader`` (RFC 5321 4.2: ``250-`` continues,
``250 `` ends), giving smtplib's (code, text) shape.
"""

from __future__ import annotations

from collections.abc import Generator

from publisher.deliver.envelope import Deferred, Envelope, FatalDeliveryError, Rejected, reply_text

READ = object()  # yield READ: send me the next reply as (code, text)
GATE = object()  # yield GATE: return when this message may be accepted (raise Deferred to stop)
CLOSE = object()  # yield CLOSE: close the connection once this exchange ends

Step = bytes | list[bytes] | object
Exchange = Generator[Step, "tuple[int, bytes] | None", str]
DOT = b".\r\n"


def exchange(env: Envelope, *, pipelining: bool, utf8: bool, where: str) -> Exchange:
    """MAIL, RCPT, DATA, body, final dot; returns the 250 reply text or raises Rejected/Deferred.

    ``Deferred(connection=True)`` means the connection is no longer usable.
    """
    if any(c in env.sender + env.recipient for c in "\r\n"):
        raise Rejected(553, "553 address contains a line break")
    # Addresses were validated when stored (and the sender at start): no per-message quoteaddr.
    extra = " SMTPUTF8" if utf8 and not env.recipient.isascii() else ""
    encoding = "utf-8" if extra else "ascii"
    mail_cmd = f"MAIL FROM:<{env.sender}>{extra}\r\n".encode(encoding)
    rcpt_cmd = f"RCPT TO:<{env.recipient}>\r\n".encode(encoding)
    if pipelining:  # RFC 2920: one write, then the three replies
        yield [mail_cmd, rcpt_cmd, b"DATA\r\n"]
        mail = yield READ
        rcpt = yield READ
        data = yield READ
        assert mail is not None and rcpt is not None and data is not None
        if mail[0] != 250 or rcpt[0] not in (250, 251):
            if data[0] == 354:  # a server that took DATA with no recipient: end that empty message
                yield DOT
                yield READ
            if mail[0] != 250:
                yield from _refused(mail, "MAIL FROM", where, fatal_5xx=True)
            yield from _refused(rcpt, "RCPT TO", where)
    else:
        yield mail_cmd
        mail = yield READ
        assert mail is not None
        if mail[0] != 250:
            yield from _refused(mail, "MAIL FROM", where, fatal_5xx=True)
        yield rcpt_cmd
        rcpt = yield READ
        assert rcpt is not None
        if rcpt[0] not in (250, 251):
            yield from _refused(rcpt, "RCPT TO", where)
        yield b"DATA\r\n"
        data = yield READ
        assert data is not None
    if data[0] != 354:
        yield from _refused(data, "DATA", where)
    body = env.data if env.smtp_ready else smtp_body(env.data)
    yield GATE
    yield [body, DOT]
    final = yield READ
    assert final is not None
    if final[0] != 250:
        yield from _refused(final, "end of DATA", where)
    return reply_text(*final)


def _refused(reply: tuple[int, bytes], stage: str, where: str, *, fatal_5xx: bool = False) -> Exchange:
    """Raise what a refusal means, after an RSET that keeps the connection usable."""
    code, msg = reply
    text = reply_text(code, msg)
    if code == 421 or code < 0:  # the server is closing the connection
        raise Deferred(text, connection=True)
    yield b"RSET\r\n"
    rset = yield READ
    if rset is None or rset[0] != 250:
        yield CLOSE
    if 400 <= code < 500:
        raise Deferred(text)
    if fatal_5xx:
        raise FatalDeliveryError(
            f"{where} refused the sender at {stage}: {text}",
            hint="check email.from: the server must accept it as an envelope sender",
        )
    raise Rejected(code, text)


def smtp_body(data: bytes) -> bytes:
    """The message as DATA wants it: CRLF line ends, leading dots doubled, ending in CRLF.

    Both checks are C-speed scans; a message that needs neither (a prepared
    message never does) is passed through without a copy.
    """
    if data.count(b"\n") != data.count(b"\r\n"):
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if data.startswith(b".") or b"\n." in data:
        data = (b"." if data.startswith(b".") else b"") + data.replace(b"\n.", b"\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


class ReplyReader:
    """Complete SMTP replies out of a byte stream, as (code, text) with lines joined by \\n."""

    MAX_LINE = 8192

    def __init__(self) -> None:
        self._buf = b""
        self._lines: list[bytes] = []
        self.replies: list[tuple[int, bytes]] = []

    def feed(self, chunk: bytes) -> None:
        buf = self._buf + chunk if self._buf else chunk
        start = 0
        while True:
            end = buf.find(b"\r\n", start)
            if end < 0:
                break
            line = buf[start:end]
            start = end + 2
            self._lines.append(line[4:])
            if line[3:4] != b"-":
                try:
                    code = int(line[:3])
                except ValueError:
                    code = -1
                self.replies.append((code, b"\n".join(self._lines)))
                self._lines = []
        self._buf = buf[start:]
        if len(self._buf) > self.MAX_LINE:
            raise Deferred("the server sent a reply line that never ends", connection=True)
