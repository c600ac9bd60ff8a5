"""``python -m revprof``."""

from revprof.cli.app import main

main()
