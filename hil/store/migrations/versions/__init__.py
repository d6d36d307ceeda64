"""One Alembic revision per schema version: revision "N" is the store's schema version N."""
