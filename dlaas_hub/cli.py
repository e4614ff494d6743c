"""The ``dlaas-hub`` command."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlaas-hub", description="Data Lake as a Service on JupyterHub.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the local demo: development IAM and JupyterHub on 127.0.0.1")
    demo.add_argument("--hub-port", type=int, default=8000, help="port of the hub (default: 8000)")
    demo.add_argument("--iam-port", type=int, default=8180, help="port of the development IAM (default: 8180)")
    demo.add_argument("--state-dir", default=".demo", help="where the demo keeps its database and secrets")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from . import demo

        return demo.main(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
