"""The `invdesign` command line. Each subcommand module parses arguments and calls the Python
API."""
