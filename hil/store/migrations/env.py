"""Alembic's environment: run the migrations on the connection hil opened (config.attributes["connection"]),
inside the transaction it began, so a store migrates whole or not at all."""

from __future__ import annotations

from alembic import context

from hil.store.schema import metadata

context.configure(connection=context.config.attributes["connection"], target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
