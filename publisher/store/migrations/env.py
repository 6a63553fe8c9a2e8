"""Alembic environment, run programmatically by ``publisher.store.engine``.

There is no alembic.ini: the caller passes an open connection in
``config.attributes["connection"]`` and the migration runs inside its
transaction (so a failed upgrade leaves nothing half-done on PostgreSQL).
"""

from __future__ import annotations

from alembic import context

from publisher.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable by running alembic by hand
    raise RuntimeError("run migrations through publisher.store.upgrade(url) or `publisher db upgrade`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
