"""Rucio's download mode presents the EOS token to EOS, and the Rucio token only to Rucio.

rucio-clients (41) hands the token it holds for Rucio (``DownloadClient.auth_token``, the Rucio
audience) to every storage protocol it opens: XRootD gets it as ``BEARER_TOKEN``, WebDAV as its
``Authorization`` header, gfal as its bearer token. A storage that checks the audience, as EOS does,
refuses it, so the Rucio JupyterLab extension's download mode ("Make Available") could never fetch a
file from the data lake with audience-restricted tokens. Widening the Rucio token's audience would
give every storage a token that Rucio accepts.

Instead, while the extension downloads, a storage protocol opened for the EOS instance's host (the
host of ``EOS_MGM_URL``) carries the server's EOS token, read from its file at that moment, so the
renewed one is used; every other protocol keeps what Rucio gave it. The Rucio calls themselves
(replica lookup, traces) keep the Rucio token. Loaded by :mod:`dlaas_hub.server.rucio_extension`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

from .files import EOS_TOKEN_ENV

#: The EOS instance, as its users know it (``root://eoshost.example.org``).
EOS_URL_ENV = "EOS_MGM_URL"


def eos_host(environ: Mapping[str, str]) -> str | None:
    """The EOS instance's host name from ``EOS_MGM_URL``, or None when unset or not a URL."""
    try:
        host = urlsplit(environ.get(EOS_URL_ENV, "")).hostname
    except ValueError:
        return None
    return host or None


def read_token(path: str | None) -> str | None:
    """The bare token in ``path``; None when there is no such file (a server without EOS)."""
    if not path:
        return None
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


def present_storage_token(protocol, host: str, token: str) -> None:
    """Give ``protocol`` (a Rucio RSE protocol) ``token`` when it opens ``host``."""
    hostname = (getattr(protocol, "attributes", None) or {}).get("hostname")
    if isinstance(hostname, str) and hostname.lower() == host.lower():
        protocol.auth_token = token


@contextlib.contextmanager
def eos_token_for_eos(environ: Mapping[str, str] = os.environ) -> Iterator[None]:
    """Within this block, Rucio storage protocols opened for the EOS host carry the EOS token."""
    host, token = eos_host(environ), read_token(environ.get(EOS_TOKEN_ENV))
    if not host or not token:
        yield
        return
    from rucio.rse import rsemanager

    original = rsemanager.create_protocol

    def create_protocol(*args, **kwargs):
        protocol = original(*args, **kwargs)
        present_storage_token(protocol, host, token)
        return protocol

    rsemanager.create_protocol = create_protocol
    try:
        yield
    finally:
        rsemanager.create_protocol = original


def install(downloader) -> bool:
    """Wrap the extension's ``RucioFileDownloader.download`` (run in its download process) once."""
    download = downloader.download
    if getattr(download, "dlaas_eos_token", False):
        return False

    def download_with_eos_token(dest_path, did):
        with eos_token_for_eos():
            return download(dest_path, did)

    download_with_eos_token.dlaas_eos_token = True
    downloader.download = staticmethod(download_with_eos_token)
    return True
