"""`python -m mlplane_contracts export [--check] [--out DIR]`: publish or check the schemas."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mlplane_contracts.export import DEFAULT_DIRECTORY, stale, write


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (1 when `--check` finds stale files)."""
    parser = argparse.ArgumentParser(prog="python -m mlplane_contracts")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write the JSON Schemas and the AsyncAPI document")
    export.add_argument("--out", type=Path, default=DEFAULT_DIRECTORY, help="output directory")
    export.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if committed files are stale"
    )
    arguments = parser.parse_args(argv)
    if arguments.check:
        problems = stale(arguments.out)
        for problem in problems:
            print(f"stale: {arguments.out / problem}", file=sys.stderr)
        if problems:
            print("run: python -m mlplane_contracts export", file=sys.stderr)
            return 1
        print(f"schemas in {arguments.out} are up to date")
        return 0
    for path in write(arguments.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
