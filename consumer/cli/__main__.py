"""`python -m packflow.runtime.cli`: the same as the `packflow` command."""

from . import main

main()
