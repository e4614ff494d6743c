"""Fill the development Rucio server: accounts mapped to the development IAM's users, scopes, RSEs,
quotas and a few datasets. Runs in .venv-rucio (Rucio's own client), against the running server.

    .venv-rucio/bin/python dev-rucio/bootstrap.py SPEC.json

SPEC (written by dlaas_hub.dev.rucioserver): the server's URL, the root account's userpass
identity, the IAM's issuer, the users (account, sub, email), the RSEs (name, prefix as the
notebooks see it, local directory standing for it, whether users may write there) and the datasets.
Idempotent: what exists is kept, so a second demo start reuses the database.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from pathlib import Path
from urllib.parse import urlparse

from rucio.client import Client
from rucio.common.exception import DataIdentifierAlreadyExists, Duplicate, DuplicateRule, FileAlreadyExists

ALREADY_THERE = (DataIdentifierAlreadyExists, Duplicate, DuplicateRule, FileAlreadyExists)


def quietly(call, *args, **kwargs):
    """Run a Rucio call; an object that already exists is fine."""
    try:
        return call(*args, **kwargs)
    except ALREADY_THERE:
        return None


def adler32(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def add_rse(client: Client, rse: dict) -> None:
    # The scratch RSE is not deterministic: a replica's PFN is the user's own file path.
    quietly(client.add_rse, rse["name"], deterministic=not rse.get("scratch", False))
    quietly(client.add_protocol, rse["name"], {
        "scheme": "file", "hostname": "localhost", "port": 0, "prefix": rse["prefix"].rstrip("/") + "/",
        "impl": "rucio.rse.protocols.posix.Default",
        "domains": {"lan": {"read": 1, "write": 1, "delete": 1},
                    "wan": {"read": 1, "write": 1, "delete": 1, "third_party_copy_read": 1,
                            "third_party_copy_write": 1}},
    })
    if rse.get("root_url"):
        add_xrootd(client, rse)
    client.set_rse_limits(rse["name"], "MinFreeSpace", 0)
    client.set_local_account_limit("root", rse["name"], 10 * 1024 ** 4)  # the seeded datasets' rules
    if rse.get("scratch"):
        # Replicas there get a tombstone at once: Rucio removes them when no rule holds them any more.
        client.add_rse_attribute(rse["name"], "tombstone_delay", 0)


def add_xrootd(client: Client, rse: dict) -> None:
    """The storage's root:// door (XRootD standing in for EOS), read-only and after the file protocol,
    so that replica mode keeps the mounted path and downloads fall back to it. A demo restarted on
    another port moves it."""
    url = urlparse(rse["root_url"])
    existing = [p for p in client.get_rse(rse["name"])["protocols"] if p["scheme"] == "root"]
    for protocol in existing:
        if (protocol["hostname"], protocol["port"]) == (url.hostname, url.port):
            return
        client.delete_protocols(rse["name"], "root", hostname=protocol["hostname"], port=protocol["port"])
    client.add_protocol(rse["name"], {
        "scheme": "root", "hostname": url.hostname, "port": url.port, "prefix": "//" + rse["prefix"].strip("/") + "/",
        "impl": "rucio.rse.protocols.xrootd.Default",
        "domains": {"lan": {"read": 2, "write": 0, "delete": 0},
                    "wan": {"read": 2, "write": 0, "delete": 0, "third_party_copy_read": 0,
                            "third_party_copy_write": 0}},
    })


def add_user(client: Client, user: dict, issuer: str, rses: list[dict]) -> None:
    account = user["account"]
    quietly(client.add_account, account, "USER", user["email"])
    quietly(client.add_identity, account, f"SUB={user['sub']}, ISS={issuer}", "OIDC", user["email"], default=True)
    quietly(client.add_scope, account, f"user.{account}")
    for rse in rses:
        client.set_local_account_limit(account, rse["name"], rse.get("quota", 10 * 1024 ** 3))


def add_dataset(client: Client, dataset: dict, rses: dict[str, dict]) -> None:
    scope, name = dataset["scope"], dataset["name"]
    quietly(client.add_scope, "root", scope)
    quietly(client.add_dataset, scope, name)
    files = []
    for entry in dataset["files"]:
        data = entry["content"].encode()
        files.append({"scope": scope, "name": entry["name"], "bytes": len(data), "adler32": adler32(data),
                      "content": data})
    for rse_name in dataset["rses"]:
        rse = rses[rse_name]
        quietly(client.add_replicas, rse_name, [{k: f[k] for k in ("scope", "name", "bytes", "adler32")}
                                                for f in files])
        replicas = client.list_replicas([{"scope": scope, "name": f["name"]} for f in files], schemes=["file"],
                                        rse_expression=rse_name)
        contents = {f["name"]: f["content"] for f in files}
        for replica in replicas:
            for pfn in replica["pfns"]:
                path = urlparse(pfn).path
                local = Path(rse["local_dir"]) / os.path.relpath(path, rse["prefix"])
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(contents[replica["name"]])
    quietly(client.attach_dids, scope, name, [{"scope": scope, "name": f["name"]} for f in files])
    existing = {r["rse_expression"] for r in client.list_did_rules(scope, name)}
    for rse_name in dataset["rses"]:
        if rse_name not in existing:
            client.add_replication_rule([{"scope": scope, "name": name}], 1, rse_name)


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    client = Client()  # root, as the server's own rucio.cfg ([client]) says
    rses = {r["name"]: r for r in spec["rses"]}
    for rse in spec["rses"]:
        add_rse(client, rse)
    for user in spec["users"]:
        add_user(client, user, spec["issuer"], spec["rses"])
    for dataset in spec["datasets"]:
        add_dataset(client, dataset, rses)
    print(f"Rucio bootstrap: {len(spec['users'])} accounts, {len(rses)} RSEs, {len(spec['datasets'])} datasets")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
