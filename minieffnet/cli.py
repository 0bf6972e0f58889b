"""The ``minieffnet`` command line."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minieffnet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check-ops", help="gradient-check every op in float64 and print a table")
    args = parser.parse_args(argv)
    if args.command == "check-ops":
        from .opcheck import print_op_table
        return print_op_table()
    return 2


if __name__ == "__main__":
    sys.exit(main())
