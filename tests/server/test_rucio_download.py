"""Which storage gets the EOS token in Rucio's download mode (the real download: tests/integration/
test_rucio_download.py)."""

import os
from types import SimpleNamespace

import pytest

from dlaas_hub.server import rucio_download


@pytest.mark.parametrize("url, host", [
    ("root://eospublic.cern.ch", "eospublic.cern.ch"),
    ("root://localhost:1094", "localhost"),
    ("https://EOS.example.org:8443/eos", "eos.example.org"),
    ("", None), ("eoshost-without-scheme", None), ("root://[::1", None),
])
def test_the_eos_host_comes_from_eos_mgm_url(url, host):
    assert rucio_download.eos_host({"EOS_MGM_URL": url}) == host


def test_no_eos_mgm_url_no_host():
    assert rucio_download.eos_host({}) is None


def protocol(hostname, token="rucio-audience"):
    return SimpleNamespace(attributes={"scheme": "root", "hostname": hostname, "port": 1094}, auth_token=token)


def test_only_the_eos_host_gets_the_eos_token():
    eos, other = protocol("EOS.example.org"), protocol("dcache.example.org")
    for p in (eos, other):
        rucio_download.present_storage_token(p, "eos.example.org", "eos-audience")
    assert eos.auth_token == "eos-audience"
    assert other.auth_token == "rucio-audience"  # what Rucio gave it, unchanged


def test_the_token_is_read_from_its_file_each_time(tmp_path):
    path = tmp_path / "eos-bearer-token"
    path.write_text("first\n")
    assert rucio_download.read_token(str(path)) == "first"
    path.write_text("renewed\n")
    assert rucio_download.read_token(str(path)) == "renewed"
    assert rucio_download.read_token(str(tmp_path / "missing")) is None
    assert rucio_download.read_token(None) is None


def test_without_eos_the_download_runs_as_rucio_has_it(monkeypatch):
    monkeypatch.delenv("EOS_MGM_URL", raising=False)
    with rucio_download.eos_token_for_eos({}):  # no host, no token: rucio is not even imported
        pass


def test_install_wraps_the_download_once(tmp_path, monkeypatch):
    calls = []

    class Downloader:
        @staticmethod
        def download(dest_path, did):
            calls.append((dest_path, did))
            return ["done"]

    monkeypatch.delenv("EOS_MGM_URL", raising=False)
    assert rucio_download.install(Downloader) is True
    assert rucio_download.install(Downloader) is False
    assert Downloader.download(str(tmp_path), "scope:name") == ["done"]
    assert calls == [(str(tmp_path), "scope:name")]
    assert os.listdir(tmp_path) == []
