"""`python -m hil`: the same command tree as the `hil` console script."""

from hil.commands.main import main

if __name__ == "__main__":
    raise SystemExit(main())
