"""Bounces that are not RFC 3464 reports: plain-text formats of MTAs and providers.

Each reader recognises its format by the fixed sentences its software writes
(never by a guess at arbitrary prose), reads the failed recipients and their
diagnostics, and the header block of the returned copy when it is inline:

* QSBMF, qmail's format (cr.yp.to/proto/qsbmf.txt), which Yahoo's old
  bounces follow too: ``<addr>:`` paragraphs, then ``--- Below this line``;
* Exim without a report part: ``This message was created automatically by
  mail delivery software``, two-space-indented addresses, four-space details,
  ``X-Failed-Recipients``; its delay warning gives soft bounces;
* Exchange NDRs: ``Diagnostic information for administrators``, a bare
  address, then ``Remote Server returned '550 5.1.1 ...'`` or ``#550 ... ##``;
* AOL's screen-name notice (``mail to the following recipients could not be
  delivered`` from an aol.com address).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message

from publisher.inbound.addresses import address_of, bare
from publisher.inbound.dsn import MAX_BLOCKS, Finding, kind_of
from publisher.inbound.message import first_text, header, headers, one_line, parse_headers, status_in

MAX_LINES = 1500
_QSBMF_INTROS = (
    "hi. this is the qmail-send program",
    "hi. this is the",
    "hi. the mta program at",
    "this is the mail delivery agent at",
    "sorry, we were unable to deliver your message to the following address",
)
_ANGLE = re.compile(r"^<([^<>\s]+@[^<>\s]+)>:\s*(.*)$")
_EXIM_INTRO = "this message was created automatically by mail delivery software"
_EXIM_RCPT = re.compile(r"^ {2}(?! )(\S+@[^\s:]+)(?::\s*(.*))?")
_EXIM_COPY = re.compile(r"^-+ ?this is a copy of (?:the|your) message", re.IGNORECASE)
_EXCHANGE_INTRO = "diagnostic information for administrators"
_EXCHANGE_END = "original message headers"
_BARE = re.compile(r"^\s*<?([^\s<>@]+@[^\s<>@]+?)>?\s*$")
_RETURNED = re.compile(r"returned '(.*)'", re.IGNORECASE)
_AOL_INTRO = "mail to the following recipients could not be delivered"


@dataclass(frozen=True)
class TextBounce:
    findings: list[Finding]
    original: Message | None  # the returned copy's headers, when quoted inline


def _finding(address: str, detail_lines: list[str], default: str) -> Finding:
    detail = one_line(" ".join(detail_lines))
    status = status_in(detail) or default
    action = "delayed" if default.startswith("4") else "failed"
    return Finding(kind_of(action, status), address_of(address), status, detail)


def _copy(lines: list[str], start: int) -> Message | None:
    rest = lines[start:]
    while rest and not rest[0].strip():
        rest = rest[1:]
    if not rest:
        return None
    return parse_headers("\n".join(rest).encode("utf-8", "replace"))


def _qsbmf(lines: list[str], msg: Message) -> TextBounce | None:
    start = next((i for i, ln in enumerate(lines) if ln.lower().startswith(_QSBMF_INTROS)), None)
    if start is None:
        return None
    found: list[tuple[str, list[str]]] = []
    for i in range(start + 1, len(lines)):
        line = lines[i].strip()
        if line.startswith("-"):
            return TextBounce([_finding(a, d, "5.0.0") for a, d in found[:MAX_BLOCKS]], _copy(lines, i + 1))
        match = _ANGLE.match(line)
        if match:
            found.append((match.group(1), [match.group(2)]))
        elif found and line:
            found[-1][1].append(line)
    return TextBounce([_finding(a, d, "5.0.0") for a, d in found[:MAX_BLOCKS]], None)


def _exim(lines: list[str], msg: Message) -> TextBounce | None:
    start = next((i for i, ln in enumerate(lines) if ln.lower().startswith(_EXIM_INTRO)), None)
    if start is None:
        return None
    text = " ".join(lines[start : start + 8]).lower()
    default = "4.0.0" if "not yet been delivered" in text else "5.0.0"
    found: list[tuple[str, list[str]]] = []
    copy: Message | None = None
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if _EXIM_COPY.match(line):
            copy = _copy(lines, i + 1)
            break
        match = _EXIM_RCPT.match(line)
        if match:
            found.append((match.group(1), [match.group(2) or ""]))
        elif found and line.startswith("    "):
            found[-1][1].append(line.strip())
    if not found:  # Exim names them in a header too (and some forwarders keep only that)
        found = [(a, []) for a in bare(headers(msg, "X-Failed-Recipients"))]
    return TextBounce([_finding(a, d, default) for a, d in found[:MAX_BLOCKS]], copy)


def _exchange(lines: list[str], msg: Message) -> TextBounce | None:
    start = next((i for i, ln in enumerate(lines) if ln.strip().lower().startswith(_EXCHANGE_INTRO)), None)
    if start is None:
        return None
    found: list[tuple[str, list[str]]] = []
    copy: Message | None = None
    for i in range(start + 1, len(lines)):
        line = lines[i].strip()
        if line.lower().startswith(_EXCHANGE_END):
            copy = _copy(lines, i + 1)
            break
        match = _BARE.match(line)
        if match:
            found.append((match.group(1), []))
        elif found and line:
            returned = _RETURNED.search(line)
            found[-1][1].append(returned.group(1) if returned else line.strip("#").strip())
    return TextBounce([_finding(a, d, "5.0.0") for a, d in found[:MAX_BLOCKS]], copy)


def _aol(lines: list[str], msg: Message) -> TextBounce | None:
    if not header(msg, "From").lower().rstrip("> \t").endswith("@aol.com"):
        return None
    start = next((i for i, ln in enumerate(lines) if _AOL_INTRO in ln.lower()), None)
    if start is None:
        return None
    names: list[str] = []
    for line in lines[start + 1 :]:
        name = line.strip()
        if not name:
            continue
        if re.search(r"\s", name) or len(names) >= MAX_BLOCKS:
            break
        names.append(name if "@" in name else f"{name}@aol.com")
    reason = one_line(lines[start])
    return TextBounce([_finding(n, [reason], "5.0.0") for n in names], None)


_READERS: tuple[Callable[[list[str], Message], TextBounce | None], ...] = (_qsbmf, _exim, _exchange, _aol)


def read_text_bounce(msg: Message) -> TextBounce | None:
    """The findings of the first format that recognises the message's text, or None."""
    lines = first_text(msg).splitlines()[:MAX_LINES]
    if not lines:
        return None
    for reader in _READERS:
        bounce = reader(lines, msg)
        if bounce is not None and bounce.findings:
            return bounce
    return None
