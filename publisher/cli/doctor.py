"""`publisher doctor`: check SPF, DKIM, DMARC, MX and the relay's TLS, and say what to change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.text import Text

from publisher.cli.common import ConfigOption, console, reports_errors, settings
from publisher.deliver.dns import DEFAULT_TIMEOUT, Resolver, parse_nameserver, printable
from publisher.deliver.tls_probe import probe
from publisher.ops.doctor import Finding, Level, diagnose

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}  # by Level value


def register(app: typer.Typer) -> None:
    app.command()(doctor)


def _nameserver(value: str | None) -> tuple[str, int] | None:
    if value is None:
        return None
    try:
        return parse_nameserver(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--nameserver") from None


@reports_errors
def doctor(
    nameserver: Annotated[
        str | None,
        typer.Option(
            "--nameserver",
            metavar="IP[:PORT]",
            help="Ask this DNS server (e.g. the domain's authoritative one) instead of the system's.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", min=0.1, help="Seconds to wait for each DNS answer and for the relay (default 5)."
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Check that receivers will trust your mail: SPF, DKIM, DMARC, MX and the relay's TLS.

    Prints one line per check (ok, warn or fail) with what to change, e.g. the
    exact DNS record to publish. Exits 1 when any check fails, else 0.
    """
    cfg = settings(config)
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    resolver = Resolver(_nameserver(nameserver), timeout)
    smtp = cfg.email.smtp
    tls = probe(smtp.host, smtp.port, smtp.security, timeout) if cfg.email.transport == "smtp" else None
    findings = diagnose(cfg, resolver, tls, now=datetime.now(UTC))
    for finding in findings:
        console.print(_line(finding), soft_wrap=True, highlight=False)
    if any(f.level is Level.FAIL for f in findings):
        raise typer.Exit(1)


def _line(finding: Finding) -> Text:
    """``fail  dkim   message; fix: …`` as Text, so DNS data is never read as Rich markup."""
    line = Text.assemble((f"{finding.level.value:<5}", _STYLE[finding.level.value]), f" {finding.check:<6}")
    line.append(printable(finding.message, 2000))
    if finding.fix:
        line.append(" — fix: ", style="dim")
        line.append(printable(finding.fix, 2000))
    return line
