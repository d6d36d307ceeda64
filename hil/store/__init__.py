"""The embedded store: one sqlite file that holds releases, decisions and runs, with its schema version."""
