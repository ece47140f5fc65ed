"""faultdrill subcommands, one module each (see graders/cli.py)."""
