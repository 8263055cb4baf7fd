"""``python -m stacktoken.testing demo | serve``."""

from __future__ import annotations

import argparse
import sys

from stacktoken.testing._demo import run_demo
from stacktoken.testing._serve import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stacktoken.testing",
        description="A Formance sandbox on 127.0.0.1 (membership IdP, stack auth, ledger stub).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run stacktoken's whole story against a sandbox")
    served = commands.add_parser("serve", help="run a sandbox until Ctrl-C or SIGTERM")
    served.add_argument(
        "--for", dest="seconds", type=float, default=3600.0, help="stop after this (s; 3600)"
    )
    served.add_argument("--workdir", help="where its fctl profile and caches go (default: temp)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo()
    return serve(seconds=args.seconds, workdir=args.workdir)


if __name__ == "__main__":
    sys.exit(main())
