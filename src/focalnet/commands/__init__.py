"""One module per ``focalnet`` subcommand: ``configure(parser)`` and ``run(args) -> int``."""
