"""The store's schema migrations (Alembic): env.py runs them on the connection hil/store/db.py passes."""
