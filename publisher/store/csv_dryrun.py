"""A CSV import that writes nothing: the console's report before the editor confirms.

It runs ``csvio.import_csv`` itself, the CLI's import, on a ``Database`` whose
write transactions always roll back. So the report is the one the real import
would give: every refused row with its row number and column, and also what
only the database can tell (added or updated, suppressed addresses left out,
"import does not resubscribe"), with no second copy of the rules to drift.
The cost is the import's own reads and writes, undone; a 100,000-row file is
well under the ten seconds the import takes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import TextIO

from sqlalchemy import Connection

from publisher.store.csvio import ImportReport, Suppression, import_csv
from publisher.store.database import Database


class _RolledBack(Database):
    """The same engine; every write transaction is rolled back instead of committed."""

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn = conn.execution_options(publisher_write=True)
            tx = conn.begin()
            try:
                yield conn
            finally:
                tx.rollback()


def check_csv(
    store: Database,
    source: TextIO,
    *,
    now: datetime,
    source_name: str = "CSV",
    errors: TextIO | None = None,
    suppression: Suppression | None = None,
) -> ImportReport:
    """What importing ``source`` would do, row by row; nothing is written."""
    return import_csv(
        _RolledBack(store.engine),
        source,
        now=now,
        source_name=source_name,
        errors=errors,
        suppression=suppression,
    )
