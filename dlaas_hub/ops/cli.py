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
    demo.add_argument("--rucio-port", type=int, default=8280, help="port of the Rucio server (default: 8280)")
    demo.add_argument("--xrootd-port", type=int, default=1094,
                      help="port of the XRootD server standing in for EOS (root://; https:// on the next "
                           "port; default: 1094)")
    demo.add_argument("--state-dir", default=".demo", help="where the demo keeps its database and secrets")

    agent = commands.add_parser("token-agent", help="keep a server's credential files fresh (runs beside the server)")
    agent.add_argument("--dir", required=True, help="the server's credentials directory (created with mode 0700)")
    agent.add_argument("--once", action="store_true", help="fetch and write once, then exit (1 on failure)")
    agent.add_argument("--margin", type=float, default=300.0, help="renew this many seconds before expiry")
    agent.add_argument("--min-interval", type=float, default=5.0, help="shortest pause between two rounds")
    agent.add_argument("--make-dir", action="append", metavar="PATH",
                       help="create this directory (mode 0700) once the tokens are written, e.g. the user's "
                            "scratch space (repeatable)")

    check = commands.add_parser(
        "check-config", help="report missing or contradictory settings of a deploy before it runs",
        description="Check a jupyterhub_config.py, or Zero-to-JupyterHub values files (merged in order, as "
                    "helm -f does). Exits 1 when any error is found.")
    check.add_argument("files", nargs="+", metavar="FILE",
                       help="jupyterhub_config.py, or values.yaml [secrets.yaml ...]")
    check.add_argument("--profiles", metavar="DIR",
                       help="the profiles folder the hub will read (default: the configured profiles_dir)")
    check.add_argument("--online", action="store_true",
                       help="also ask the identity provider (its discovery document): the issuer it names, and "
                            "whether it offers the grants the hub uses, token exchange among them")

    profiles = commands.add_parser("profiles", help="check the experiments' profiles")
    profile_commands = profiles.add_subparsers(dest="profiles_command", required=True)
    validate = profile_commands.add_parser("validate", help="report every error, with file and key")
    validate.add_argument("directory", nargs="?", default="profiles")
    return parser


def main(argv=None) -> int:
    # Each command imports only what it runs: the token agent in a pod's sidecar starts without
    # loading JupyterHub, the demo's services or the profile schema.
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from ..dev import demo

        return demo.main(args)
    if args.command == "token-agent":
        from ..server import agent

        return agent.main(args)
    if args.command == "check-config":
        from . import checkconfig

        return checkconfig.main(args)
    if args.command == "profiles":
        from ..profiles import cli as profiles_cli

        return profiles_cli.main(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
