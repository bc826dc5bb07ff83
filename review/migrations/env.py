"""Alembic's environment for the review database: always run by review/schema.py on a
connection it opened (`config.attributes["connection"]`), never from an alembic.ini."""

from alembic import context

from prescore.review.tables import Base

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "the review database's migrations run through `prescore db upgrade`, on a connection"
    )
# render_as_batch: SQLite alters a table by copying it, which batch operations do for it
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
