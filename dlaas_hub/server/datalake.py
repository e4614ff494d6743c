"""``datalake upload``: a scientist's files in ``$SCRATCH`` into the data lake, through Rucio.

Each file is registered, with its size and adler32, as a replica on the scratch RSE (the RSE over
the scratch mount, non-deterministic: its PFN is the file's own path), then a replication rule takes
it to the data lake (by default the hub's destination RSE). Registrations and rules go in batches:
a handful of Rucio requests per batch, never one per file. The scratch copy is Rucio's to remove
once the rule is satisfied (the scratch RSE's tombstone), or after two days with
``--delay-deletion`` (a two-day rule on the scratch RSE keeps it); this command never deletes a file.

Runs inside the user's server with the Rucio client and the ``rucio.cfg`` the hub wrote, whose
``[dlaas]`` section names the scratch RSE. Only the Rucio client is needed (the ``datalake`` extra).
"""

from __future__ import annotations

import argparse
import base64
import configparser
import json
import os
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

try:
    from rucio.client import Client
    from rucio.common import exception as rucio_errors
except ImportError:  # a hub environment: the command says what to install
    Client = rucio_errors = None
else:
    class NonInteractiveClient(Client):
        """Rucio's client, minus its answer to a refused token: an interactive sign-in (a URL to open and
        a code to type) that would leave a batch half-done. A refusal is reported instead."""

        def _BaseClient__get_token(self):
            raise rucio_errors.CannotAuthenticate("Rucio refused the request (HTTP 401)")

BATCH = 100
DELAY_SECONDS = 2 * 86400


class UploadError(Exception):
    """A refusal in words; nothing was lost, and the message says what was registered."""


@dataclass(frozen=True)
class Settings:
    scratch_rse: str
    scratch_root: str  # the scratch mount's root, as this server sees it
    scratch_pfn: str  # that root's PFN on the scratch RSE
    destination: str = ""
    webui_url: str = ""
    token_path: str = ""

    @classmethod
    def from_rucio_cfg(cls, path: str) -> "Settings":
        parser = configparser.ConfigParser(interpolation=None)
        if not path or not parser.read(path):
            raise UploadError("no rucio.cfg: $RUCIO_CONFIG is not set or not readable (is this a data-lake server?)")
        if not parser.has_section("dlaas") or not parser.get("dlaas", "scratch_rse", fallback=""):
            raise UploadError("this hub has no scratch RSE for uploads (rucio_scratch_rse is not set): ask its "
                              "administrators")
        section = parser["dlaas"]
        return cls(section["scratch_rse"], section["scratch_root"], section["scratch_pfn"],
                   section.get("destination", ""), section.get("webui_url", ""),
                   parser.get("client", "auth_token_file_path", fallback=""))


@dataclass(frozen=True)
class LocalFile:
    path: Path  # resolved, inside the scratch space
    name: str  # the DID name
    size: int
    adler32: str


def adler32(path: Path) -> str:
    value = 1
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            value = zlib.adler32(chunk, value)
    return f"{value & 0xFFFFFFFF:08x}"


def collect(paths: list[str], scratch: str, prefix: str = "") -> list[LocalFile]:
    """The files to upload: each path and each file under a folder, all inside ``scratch``.

    A path outside the scratch space, or a link that leads out of it, is refused: Rucio would be
    told of a replica on the scratch RSE that is not there.
    """
    root = Path(scratch).resolve()
    found: list[tuple[Path, str]] = []
    for given in paths:
        path = Path(given).absolute()
        resolved = path.resolve()
        if resolved != root and root not in resolved.parents:
            raise UploadError(f"{given} is not in your scratch space {root}"
                              + (" (it is a link leading out of it)" if path.is_symlink() else "")
                              + ": copy it there first")
        if resolved.is_dir():
            for directory, _, names in os.walk(resolved):
                for name in sorted(names):
                    entry = Path(directory) / name
                    target = entry.resolve()
                    if root not in target.parents:
                        raise UploadError(f"{entry} is a link leading out of your scratch space: nothing was "
                                          "uploaded")
                    found.append((target, str(entry.relative_to(resolved.parent)).replace(os.sep, ".")))
        elif resolved.is_file():
            found.append((resolved, resolved.name))
        else:
            raise UploadError(f"{given}: no such file")
    files, seen = [], {}
    for path, name in found:
        did = f"{prefix}{name}"
        if did in seen and seen[did] != path:
            raise UploadError(f"{seen[did]} and {path} would both be named {did!r}: rename one, or upload them "
                              "with different prefixes")
        if did not in seen:
            seen[did] = path
            files.append(LocalFile(path, did, path.stat().st_size, adler32(path)))
    return files


def token_problem(token_path: str, now: float | None = None) -> str | None:
    """Why the Rucio token file cannot work (missing, expired); None when it may."""
    try:
        token = Path(token_path).read_text().strip()
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (OSError, IndexError, ValueError):
        return f"there is no usable Rucio token in {token_path}: sign in to the hub again"
    if isinstance(claims.get("exp"), (int, float)) and claims["exp"] < (now or time.time()):
        return ("your Rucio token expired and has not been renewed yet: wait a minute, or check your tokens "
                "page on the hub (sign in again if it says so)")
    return None


def batches(items: list, size: int = BATCH):
    for start in range(0, len(items), size):
        yield items[start:start + size]


class Uploader:
    def __init__(self, client, settings: Settings, *, scope: str, rse_expression: str, lifetime_days: int,
                 delay_deletion: bool, out=sys.stdout):
        self.client, self.settings, self.scope = client, settings, scope
        self.rse_expression, self.out = rse_expression, out
        self.lifetime = lifetime_days * 86400 if lifetime_days else None
        self.delay_deletion = delay_deletion

    def pfn(self, file: LocalFile) -> str:
        relative = os.path.relpath(file.path, Path(self.settings.scratch_root).resolve())
        return f"{self.settings.scratch_pfn.rstrip('/')}/{quote(relative.replace(os.sep, '/'))}"

    def clashes(self, files: list[LocalFile]) -> list[str]:
        """Names already taken in the scope by a different file (another size or checksum)."""
        dids = [{"scope": self.scope, "name": f.name} for f in files]
        known = {m["name"]: m for m in self.client.get_metadata_bulk(dids, inherit=False)}
        return [f.name for f in files if f.name in known
                and (known[f.name].get("bytes") != f.size or known[f.name].get("adler32") != f.adler32)]

    def registered(self, files: list[LocalFile]) -> set[str]:
        """Names of these files that already have their replica on the scratch RSE (a run interrupted)."""
        dids = [{"scope": self.scope, "name": f.name} for f in files]
        return {r["name"] for r in self.client.list_replicas(dids, rse_expression=self.settings.scratch_rse,
                                                              all_states=True) if r.get("rses")}

    def upload(self, files: list[LocalFile]) -> list[tuple[LocalFile, str]]:
        done = []
        for batch in batches(files):
            clashes = self.clashes(batch)
            if clashes:
                raise UploadError(f"{len(clashes)} name(s) already taken in scope {self.scope} by other content: "
                                  f"{', '.join(clashes[:5])}{' ...' if len(clashes) > 5 else ''}. Choose another "
                                  f"prefix (-p); {len(done)} file(s) before them were uploaded")
            known = self.registered(batch)
            replicas = [{"scope": self.scope, "name": f.name, "bytes": f.size, "adler32": f.adler32,
                         "pfn": self.pfn(f)} for f in batch if f.name not in known]
            if replicas:
                self.client.add_replicas(rse=self.settings.scratch_rse, files=replicas)
            dids = [{"scope": self.scope, "name": f.name} for f in batch]
            try:
                rules = self.add_rules(dids, self.rse_expression, self.lifetime)
                if self.delay_deletion:
                    self.add_rules(dids, self.settings.scratch_rse, DELAY_SECONDS)
            except Exception as e:
                raise UploadError(
                    f"{describe(e)}. The {len(batch)} file(s) of this batch are registered on "
                    f"{self.settings.scratch_rse} without a rule to {self.rse_expression}; run the same command "
                    f"again to add it (files already registered are reused). {len(done)} file(s) before them "
                    "were uploaded") from None
            done += list(zip(batch, rules))
            for file, (rule, new) in zip(batch, rules):
                self.report(file, rule, new)
        return done

    def add_rules(self, dids: list[dict], rse_expression: str, lifetime: int | None) -> list[tuple[str, bool]]:
        """One rule per DID to ``rse_expression``: (rule id, whether it is new). A DID that has its rule
        from an earlier run keeps it; only then does this go one DID at a time."""
        try:
            return [(rule, True) for rule in self.client.add_replication_rule(dids, 1, rse_expression,
                                                                                 lifetime=lifetime)]
        except Exception as e:
            # Rucio refuses the whole request when one DID already has the rule (UNIQUE constraint).
            if type(e).__name__ != "DuplicateRule":
                raise
        rules = []
        for did in dids:
            try:
                rules.append((self.client.add_replication_rule([did], 1, rse_expression, lifetime=lifetime)[0],
                              True))
            except Exception as e:
                if type(e).__name__ != "DuplicateRule":
                    raise
                rules.append((self.existing_rule(did, rse_expression), False))
        return rules

    def existing_rule(self, did: dict, rse_expression: str) -> str:
        """The DID's rule to ``rse_expression``: the account's own (Rucio names the account in lower case
        where the client may spell it as the provider does), else the one Rucio counted as a duplicate."""
        account = str(getattr(self.client, "account", "") or "").lower()
        rules = [r for r in self.client.list_did_rules(did["scope"], did["name"])
                 if r.get("rse_expression") == rse_expression]
        for rule in sorted(rules, key=lambda r: str(r.get("account", "")).lower() != account):
            return rule["id"]
        raise UploadError(f"Rucio says {did['scope']}:{did['name']} has a rule to {rse_expression}, but lists none")

    def report(self, file: LocalFile, rule: str, new: bool = True) -> None:
        line = f"{self.scope}:{file.name}  rule {rule}" + ("" if new else "  (already there)")
        if self.settings.webui_url:
            base = self.settings.webui_url.rstrip("/")
            line += f"  {base}/did?scope={quote(self.scope)}&name={quote(file.name)}  {base}/rule?rule_id={rule}"
        print(line, file=self.out)


def describe(error: Exception) -> str:
    """A Rucio error in words: Rucio answers a permission refusal with HTTP 401, so say which it is."""
    name = type(error).__name__
    detail = str(error).split("Details:", 1)[-1].strip().splitlines()[0] if str(error) else name
    if name in ("AccessDenied", "CannotAuthenticate"):
        # Rucio answers a missing permission with HTTP 401, like a refused token.
        return (f"Rucio refused ({detail}): your account may lack the permission (for example to add replicas on "
                "that RSE), or your token was refused; if `rucio whoami` answers, it is a permission")
    if name == "DuplicateRule":
        return f"these files already have a rule to that destination ({detail})"
    if name == "InsufficientAccountLimit":
        return f"your Rucio quota is too small for these files ({detail})"
    if name in ("ScopeAccessDenied", "ScopeNotFound"):
        return f"scope problem: {detail} (your own scope is user.<account>)"
    if name == "RSEExpressionNotFound" or name == "InvalidRSEExpression":
        return f"no RSE matches {detail}"
    return f"Rucio failed: {name}: {detail}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="datalake", description="Move your files into the data lake with Rucio.")
    commands = parser.add_subparsers(dest="command", required=True)
    upload = commands.add_parser("upload", help="Upload files or folders of your scratch space to Rucio",
                                 description="Register files of $SCRATCH in Rucio and replicate them to the data "
                                             "lake. The scratch copy is removed by Rucio, never by this command.")
    upload.add_argument("-s", "--scope", required=True, help="Rucio scope of the files (yours: user.<account>)")
    upload.add_argument("-p", "--prefix", default="", help="prefix of the files' names in Rucio")
    upload.add_argument("-t", "--lifetime", type=int, default=0, metavar="DAYS",
                        help="lifetime of the replication rule in days (0: no expiry)")
    upload.add_argument("--rse", help="RSE expression of the destination (default: the hub's data-lake RSE)")
    upload.add_argument("--delay-deletion", action="store_true",
                        help="keep the scratch copy for 2 days instead of letting Rucio remove it once replicated")
    upload.add_argument("paths", nargs="+", metavar="PATH", help="files or folders under $SCRATCH")
    return parser


def main(argv=None, *, client=None, environ=os.environ) -> int:
    args = build_parser().parse_args(argv)
    try:
        if Client is None and client is None:
            raise UploadError("the Rucio client is not installed here: pip install 'dlaas-hub[datalake]'")
        if args.lifetime < 0:
            raise UploadError("-t/--lifetime is a number of days, 0 for none")
        settings = Settings.from_rucio_cfg(environ.get("RUCIO_CONFIG", ""))
        scratch = environ.get("SCRATCH") or settings.scratch_root
        rse = args.rse or settings.destination
        if not rse:
            raise UploadError("give the destination with --rse: the hub names no data-lake RSE")
        files = collect(args.paths, scratch, args.prefix)
        if not files:
            raise UploadError("no files to upload")
        problem = token_problem(settings.token_path) if settings.token_path else None
        if problem:
            raise UploadError(problem)
        client = client or NonInteractiveClient()
        done = Uploader(client, settings, scope=args.scope, rse_expression=rse, lifetime_days=args.lifetime,
                        delay_deletion=args.delay_deletion).upload(files)
    except UploadError as e:
        print(f"datalake upload: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - Rucio's errors, in words, never a traceback
        if rucio_errors is not None and isinstance(e, rucio_errors.RucioException):
            print(f"datalake upload: {describe(e)}; nothing of the failing batch was registered", file=sys.stderr)
            return 1
        raise
    earlier = sum(1 for _, (_, new) in done if not new)
    print(f"{len(files)} file(s) registered on {settings.scratch_rse} and replicating to {rse}"
          + (f" ({earlier} of them already were, by an earlier run)" if earlier else "")
          + (f" for {args.lifetime} day(s)" if args.lifetime else "")
          + ("; the scratch copies stay 2 days" if args.delay_deletion else
             "; Rucio removes the scratch copies once replicated"), file=sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
