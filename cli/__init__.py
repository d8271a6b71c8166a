"""The ``kittiwake`` command's subcommands that run without the app (one module each)."""
