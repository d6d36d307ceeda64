"""The `hil` subcommands, one module each."""
