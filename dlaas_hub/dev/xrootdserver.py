"""The development storage server standing in for EOS: Debian's XRootD with the SciTokens plugin.

EOS is built on XRootD and, like it here, verifies WLCG/SciTokens JWTs. This server exports the data
lake's EOS namespace (``/eos/eulake_1``) read-only over ``root://`` (TLS, token protocol ``ztn`` only)
and ``https://`` (XrdHttp), and grants it to tokens of the development IAM for the EOS audience:
the SciTokens plugin checks signature, ``exp`` and ``aud``; the grant goes by issuer (authdb ``o``
rule), never by user name, because ``ztn`` names the session after ``sub`` before any check.

Choices made here (issue 26):
- scitokens-cpp 0.7 refuses an ``http://`` issuer when it fetches keys, so the server gets the
  development IAM's keys in its own key cache (``$XDG_CACHE_HOME/scitokens``), nothing system-wide.
- ``ztn`` needs TLS: a CA and a host certificate are made for each start; clients trust the CA
  through ``X509_CERT_DIR`` (root://) and ``SSL_CERT_FILE``-style bundles (https).
- xrootd refuses to run as root: as root it runs as the ``xrootd`` user (``-R``), which owns the
  server's folder, made outside any private folder so that it can be reached.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .devservices import ServiceError, stop

#: The namespace EOS serves to the notebooks, and the audience of its tokens in the demo.
EOS_PATH = "/eos/eulake_1"
EOS_AUDIENCE = "eos-eulake"
#: The Debian packages this needs (``apt-get install`` them); the notebooks' environment takes the
#: XRootD client from PyPI's ``xrootd`` wheel.
PACKAGES = ("xrootd-server", "xrootd-scitokens-plugins", "xrootd-client")
RUN_AS = "xrootd"
SCITOKENS_LIB = "libXrdAccSciTokens.so"


def xrootd_bin() -> str:
    path = shutil.which("xrootd")
    if not path:
        raise ServiceError(f"xrootd is not installed: `apt-get install {' '.join(PACKAGES)}` (Debian 12) gives "
                           "the storage server standing in for EOS")
    found = [d for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")
             if Path(d, SCITOKENS_LIB.replace(".so", "-5.so")).exists()]
    if not found:
        raise ServiceError("XRootD's SciTokens plugin is not installed: `apt-get install xrootd-scitokens-plugins`")
    return path


@dataclass
class TLSFiles:
    ca: Path
    cert_dir: Path  # the CA under its hashed name, for X509_CERT_DIR
    host_cert: Path
    host_key: Path


def make_tls(folder: Path) -> TLSFiles:
    """A CA valid for this start only, and a certificate for localhost and 127.0.0.1 that it signs."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dlaas-hub development CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = TLSFiles(ca=folder / "ca.pem", cert_dir=folder / "certificates", host_cert=folder / "host.pem",
                     host_key=folder / "hostkey.pem")
    files.cert_dir.mkdir()
    pem = ca.public_bytes(serialization.Encoding.PEM)
    files.ca.write_bytes(pem)
    (files.cert_dir / f"{_subject_hash(files.ca)}.0").write_bytes(pem)
    files.host_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(files.host_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return files


def _subject_hash(cert: Path) -> str:
    # OpenSSL's hashed name (X509_NAME_hash), which the XRootD client looks up in X509_CERT_DIR.
    out = subprocess.run(["openssl", "x509", "-noout", "-subject_hash", "-in", str(cert)],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def seed_key_cache(cache_home: Path, issuer: str, jwks: dict) -> None:
    """Give scitokens-cpp the issuer's keys, as its own cache holds them after a fetch, valid a month."""
    folder = cache_home / "scitokens"
    folder.mkdir(parents=True, exist_ok=True)
    later = int(time.time()) + 30 * 86400
    with sqlite3.connect(folder / "scitokens_cpp.sqllite") as db:  # the library's own spelling
        db.execute("CREATE TABLE IF NOT EXISTS keycache (issuer text UNIQUE PRIMARY KEY NOT NULL,keys text NOT NULL)")
        db.execute("INSERT OR REPLACE INTO keycache VALUES (?, ?)",
                   (issuer, json.dumps({"jwks": jwks, "expires": later, "next_update": later})))
    db.close()


def config_text(*, base: Path, tls: TLSFiles, root_port: int, https_port: int) -> str:
    return f"""# The development storage server standing in for EOS (dlaas_hub.dev.xrootdserver).
all.export {EOS_PATH}
oss.localroot {base / "data"}
all.adminpath {base / "run"}
all.pidpath {base / "run"}
xrd.port {root_port}
xrd.allow host localhost
# Tokens only, over TLS: ztn refuses a plain link, and without the security library nothing is checked.
xrd.tls {tls.host_cert} {tls.host_key}
xrd.tlsca certfile {tls.ca}
xrootd.tls capable all
xrootd.seclib libXrdSec.so
sec.protocol ztn
sec.protbind * only ztn
ofs.authorize 1
ofs.authlib ++ {SCITOKENS_LIB} config={base / "scitokens.cfg"}
acc.authdb {base / "authdb"}
acc.audit deny grant
xrd.protocol XrdHttp:{https_port} libXrdHttp.so
http.header2cgi Authorization authz
http.cadir {tls.cert_dir}
"""


def scitokens_text(issuer: str, audience: str) -> str:
    # The audience is checked first; a token that passes but whose scopes grant nothing here (an
    # IAM token's storage scopes need wlcg.ver) is passed on to the authdb, which grants by issuer.
    return f"""[Global]
audience = {audience}
onmissing = passthrough

[Issuer development IAM]
issuer = {issuer}
base_path = {EOS_PATH}
map_subject = false
default_user = {RUN_AS}
"""


@dataclass
class XRootDServer:
    root_url: str
    https_url: str
    base: Path
    tls: TLSFiles
    proc: subprocess.Popen

    @property
    def data_dir(self) -> Path:
        """The local folder whose content the server serves as ``/eos/eulake_1``."""
        return self.base / "data" / EOS_PATH.lstrip("/")

    @property
    def log_path(self) -> Path:
        return self.base / "xrootd.log"

    def client_env(self) -> dict:
        """What a client needs to trust this server, and to give up quickly when it is gone."""
        return {"X509_CERT_DIR": str(self.tls.cert_dir), "XRD_CONNECTIONRETRY": "1",
                "XRD_CONNECTIONWINDOW": "5", "XRD_REQUESTTIMEOUT": "30"}

    def stop(self) -> None:
        stop(self.proc)
        shutil.rmtree(self.base, ignore_errors=True)


def _owned_by_server(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(RUN_AS)
        for folder, dirs, files in os.walk(path):
            for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
                os.lchown(name, entry.pw_uid, entry.pw_gid)


def _wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ServiceError(f"xrootd exited with code {proc.returncode}:\n{tail}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise ServiceError(f"xrootd did not listen on port {port} within {timeout} s")


def start_xrootd(*, root_port: int, https_port: int, issuer: str, audience: str = EOS_AUDIENCE,
                 jwks: dict | None = None) -> XRootDServer:
    """Start the server, trusting ``issuer`` (its keys fetched from its JWKS unless given) for ``audience``."""
    binary = xrootd_bin()
    if jwks is None:
        metadata = httpx.get(issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=10).json()
        jwks = httpx.get(metadata["jwks_uri"], timeout=10).json()
    # Outside every private folder: as root, the server runs as another user that must reach it.
    base = Path(tempfile.mkdtemp(prefix="dlaas-xrootd-"))
    try:
        for name in ("data", "run", "cache"):
            (base / name).mkdir()
        (base / "data" / EOS_PATH.lstrip("/")).mkdir(parents=True)
        tls = make_tls(base)
        seed_key_cache(base / "cache", issuer, jwks)
        (base / "scitokens.cfg").write_text(scitokens_text(issuer, audience))
        # Read and list the namespace, for tokens of this issuer that passed the audience check.
        (base / "authdb").write_text(f"o {issuer} {EOS_PATH} lr\n")
        (base / "xrootd.cfg").write_text(config_text(base=base, tls=tls, root_port=root_port, https_port=https_port))
        _owned_by_server(base)
        base.chmod(0o755)
        cmd = [binary, "-c", str(base / "xrootd.cfg"), "-l", str(base / "xrootd.log")]
        if os.geteuid() == 0:
            cmd[1:1] = ["-R", RUN_AS]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "XDG_CACHE_HOME": str(base / "cache"),
               "HOME": str(base)}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    server = XRootDServer(f"root://localhost:{root_port}", f"https://localhost:{https_port}", base, tls, proc)
    try:
        _wait_listening(root_port, proc, base / "xrootd.log")
        _wait_listening(https_port, proc, base / "xrootd.log")
    except BaseException:
        server.stop()
        raise
    return server
