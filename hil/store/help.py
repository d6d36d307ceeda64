"""What `--store` options say in `--help`: kept apart from hil.store.url, so that building the command
line loads no SQLAlchemy (`hil --help` stays quick). The variables' names only, never their values: a
URL in them may carry a password."""

STORE_HELP = (
    "the store: a sqlite file, sqlite:///PATH or postgresql://USER@HOST/DB (default: $HIL_STORE, else "
    "$HIL_RELEASE_STORE, else <cache>/releases.sqlite)"
)
