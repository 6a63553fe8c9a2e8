"""`python -m publisher.cli`: the same as the `publisher` command."""

from publisher.cli import main

main()
