"""`python -m mlplane_sdk ...`: the `mlplane` command (the launcher starts its children so)."""

from mlplane_sdk.cli import main

main()
