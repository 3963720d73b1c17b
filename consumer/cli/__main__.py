"""`python -m consumer.cli`: the same as the `packflow` command."""

from consumer.cli import main

main()
