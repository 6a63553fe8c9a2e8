"""Hostile input through the subscriber CSV: formula cells on export, the web form's rules on import,
and a bounded error report (issue 12, items 2 and 9)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from publisher.cli import app
from publisher.models import Frequency
from publisher.store import Store, open_store
from publisher.store.csvcells import FORMULA_START, escape_cell, unescape_cell
from publisher.store.csvio import KEPT, import_csv
from publisher.store.schema import subscribers as subscribers_table
from tests.fixtures_store import NOW, subscriber

HEADER = "email,name,status,frequency,topics,timezone\n"
FORMULA_NAMES = [
    '=HYPERLINK("http://evil.example","x")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "'=already quoted",
    "''=two quotes",
    "'Tis the season",
]
ENCODED_WORD = "=?utf-8?q?x=0D=0AContent-Type:text/html?="


def _import(store: Store, text: str, chunk: int = 2000):
    return store.subscribers.import_csv(
        io.StringIO(text, newline=""), now=NOW, source_name="list.csv", chunk=chunk
    )


def _export(store: Store) -> str:
    out = io.StringIO(newline="")
    store.subscribers.export_csv(out)
    return out.getvalue()


def _row(**cells: str) -> str:
    """One CSV line in HEADER's column order, quoted as a spreadsheet would write it."""
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerow(
        [cells.get(c, "") for c in ("email", "name", "status", "frequency", "topics", "timezone")]
    )
    return out.getvalue()


# -- export: formula cells ------------------------------------------------------------------------


def test_export_quotes_formula_cells_and_import_gives_back_the_original(store: Store) -> None:
    for i, name in enumerate(FORMULA_NAMES):  # as typed into the sign-up form
        store.subscribers.add(f"n{i}@example.org", name=name, now=NOW)
    for c in "=+-":
        store.subscribers.add(f"{c}lead@example.org", name="Lead", now=NOW)
    before = [(s.email, s.name) for s in store.subscribers.list()]

    exported = _export(store)
    cells = [cell for line in csv.reader(io.StringIO(exported, newline="")) for cell in line]
    assert '\'=HYPERLINK("http://evil.example","x")' in cells
    assert {"'+1+cmd|' /C calc'!A0", "'-2+3", "'@SUM(A1:A9)", "''=already quoted", "'''=two quotes"} <= set(
        cells
    )
    assert "'Tis the season" in cells  # not a formula: left alone
    assert {"'=lead@example.org", "'+lead@example.org", "'-lead@example.org"} <= set(cells)
    assert not [c for c in cells if c[:1] in FORMULA_START]

    report = _import(store, exported)
    assert not report.problems and report.unchanged == len(before)
    assert [(s.email, s.name) for s in store.subscribers.list()] == before


def test_a_hand_written_quote_is_read_as_a_spreadsheet_reads_it(store: Store) -> None:
    _import(
        store, HEADER + _row(email="a@example.org", name="'=1+1") + _row(email="b@example.org", name="'Tis")
    )
    assert subscriber(store, "a@example.org").name == "=1+1"
    assert subscriber(store, "b@example.org").name == "'Tis"


def test_export_quotes_cells_starting_with_tab_or_cr(store: Store) -> None:
    """Rows written before names were checked may hold a tab or CR; a spreadsheet runs those cells too."""
    legacy = [("tab@example.org", "\t=1+1"), ("cr@example.org", "\r=1+1"), ("mid@example.org", "a\rb")]
    with store.write() as conn:
        conn.execute(
            subscribers_table.insert(),
            [
                {"email": e, "name": n, "status": "confirmed", "frequency": "instant", "topics": "",
                 "timezone": "UTC", "created_at": NOW, "updated_at": NOW}
                for e, n in legacy
            ],
        )  # fmt: skip
    rows = list(csv.reader(io.StringIO(_export(store), newline="")))
    assert len(rows) == 4  # a CR inside a cell does not end the row
    assert {row[0]: row[1] for row in rows} == {
        "email": "name",
        "tab@example.org": "'\t=1+1",
        "cr@example.org": "'\r=1+1",
        "mid@example.org": "a\rb",
    }
    report = _import(store, _export(store))  # the import names the row rather than cleaning the name
    assert report.refused == 3 and all(p.message.startswith("name: ") for p in report.problems)


@given(st.text(alphabet=st.sampled_from("=+-@\t\r'a ,\"\n"), max_size=8) | st.text(max_size=8))
def test_unescape_inverts_escape_for_every_value(value: str) -> None:
    escaped = escape_cell(value)
    assert unescape_cell(escaped) == value
    assert escaped[:1] not in FORMULA_START


# -- import: the web form's rules, by row and column ----------------------------------------------

HOSTILE = [
    ("name", {"name": ENCODED_WORD}, "=?"),
    ("name", {"name": "Bob\r\nBcc: all@example.org"}, "line breaks"),
    ("name", {"name": "Nul\x00Byte"}, "control"),
    ("name", {"name": "invoice\u202etxt.exe"}, "text-direction"),
    ("name", {"name": "\u2066hidden\u2069"}, "text-direction"),
    ("name", {"name": "A" * 10_240}, "over 200"),
    ("timezone", {"timezone": "posixrules"}, "time zone"),
    ("timezone", {"timezone": "right/UTC"}, "time zone"),
    ("timezone", {"timezone": "Factory"}, "time zone"),
    ("email", {"email": "victim@example.org\r\nBcc: all@example.org"}, "line break"),
    ("status", {"status": "confirmed\r\n"}, "line break"),
    ("topics", {"topics": "science\r\ncities"}, "line break"),
    ("timezone", {"timezone": "UTC\x00"}, "NUL"),
]


@pytest.mark.parametrize(("column", "cells", "said"), HOSTILE, ids=lambda v: repr(v)[:30])
def test_hostile_cell_refuses_the_row_naming_row_and_column(
    store: Store, column: str, cells: dict[str, str], said: str
) -> None:
    store.subscribers.add("victim@example.org", name="Vic", now=NOW)
    good = {
        "email": "victim@example.org",
        "name": "Victor",
        "frequency": "weekly",
        "timezone": "Europe/Paris",
    }
    text = HEADER + _row(**(good | cells)) + _row(**(good | {"email": "new@example.org"} | cells))
    report = _import(store, text)

    assert [p.line for p in report.problems] == [2, 3] and report.refused == 2
    assert str(report.problems[0]).startswith(f"list.csv:2: {column}: ")
    assert said in report.problems[0].message
    victim = subscriber(store, "victim@example.org")  # nothing of the bad row was written
    assert (victim.name, victim.frequency, victim.timezone) == ("Vic", Frequency.INSTANT, "UTC")
    assert store.subscribers.get("new@example.org") is None


def test_import_counts_every_problem_but_keeps_only_the_first(store: Store) -> None:
    text = HEADER + "".join(_row(email=f"r{i}@example.org", timezone="Mars/Base") for i in range(KEPT * 3))
    sink = io.StringIO()
    report = import_csv(store, io.StringIO(text), now=NOW, source_name="list.csv", errors=sink)
    assert report.refused == KEPT * 3 and len(report.problems) == KEPT
    assert [p.line for p in report.problems] == list(range(2, KEPT + 2))
    lines = sink.getvalue().splitlines()
    assert len(lines) == KEPT * 3 and lines[-1].startswith(f"list.csv:{KEPT * 3 + 1}: timezone: ")


def test_duplicates_across_chunks_are_merged_once_with_their_first_row(store: Store) -> None:
    text = HEADER + "".join(
        _row(email=e, name=n)
        for e, n in [
            ("a@example.org", "A1"),
            ("b@example.org", "B"),
            ("c@example.org", "C"),
            ("A@example.org", "A2"),
        ]
    )
    report = _import(store, text + "a@example.org,,,weekly,,\n", chunk=2)
    assert report.merged == 2 and report.added == 3 and report.imported + report.merged == report.rows
    assert [(n.line, n.message) for n in report.notices] == [
        (5, "a@example.org already appeared on row 2: merged"),
        (6, "a@example.org already appeared on row 2: merged"),
    ]
    a = subscriber(store, "a@example.org")
    assert (a.name, a.frequency) == ("A2", Frequency.WEEKLY)


# -- the command: a summary on screen, every error in --errors FILE -------------------------------


@pytest.fixture
def cli(project: Path, make_settings, db_url: str):
    make_settings(database={"url": db_url})
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, [*args, "--config", str(project / "config.yaml")])

    run.db_url = db_url  # type: ignore[attr-defined]
    return run


def test_cli_summary_caps_at_50_and_errors_file_holds_every_error(cli, tmp_path: Path) -> None:
    src = tmp_path / "list.csv"
    bad = [_row(email=f"r{i}@example.org", name=f"=?utf-8?q?{i}?=") for i in range(120)]
    src.write_text(HEADER + _row(email="ok@example.org", name="Ok") + "".join(bad), newline="")
    errors = tmp_path / "errors.txt"

    r = cli("subscribers", "import", str(src), "--errors", str(errors))
    assert r.exit_code == 3, r.output
    shown = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(shown) == 51 and shown[0].startswith(f"error: {src}:3: name: ")
    assert shown[-1] == f"error: … and 70 more (see {errors})"
    assert "imported 1 of 121 row(s)" in r.stdout and "120 refused" in r.stdout
    every = errors.read_text().splitlines()
    assert [line.split(":")[1] for line in every] == [str(n) for n in range(3, 123)]
    assert all(": name: the name may not contain '=?'" in line for line in every)

    r = cli("subscribers", "import", str(src))
    assert r.exit_code == 3 and "… and 70 more (list them all with --errors FILE)" in r.stderr


def test_cli_exits_1_when_every_row_is_refused(cli, tmp_path: Path) -> None:
    src = tmp_path / "list.csv"
    src.write_text(HEADER + _row(email="a@example.org", timezone="posixrules"), newline="")
    r = cli("subscribers", "import", str(src))
    assert r.exit_code == 1 and f"{src}:2: timezone: unknown time zone 'posixrules'" in r.stderr
    with open_store(cli.db_url) as store:
        assert store.subscribers.count() == 0


def test_cli_export_then_import_keeps_formula_names(cli, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text(HEADER + _row(email="eve@example.org", name=FORMULA_NAMES[0]), newline="")
    assert cli("subscribers", "import", str(src)).exit_code == 0
    out = tmp_path / "out.csv"
    assert cli("subscribers", "export", str(out)).exit_code == 0
    assert '"\'=HYPERLINK(""http://evil.example"",""x"")"' in out.read_text()
    r = cli("subscribers", "import", str(out))
    assert r.exit_code == 0 and "1 unchanged" in r.stdout, r.output
    with open_store(cli.db_url) as store:
        assert subscriber(store, "eve@example.org").name == FORMULA_NAMES[0]
