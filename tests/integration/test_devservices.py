"""The development services' ports: drawn where no client connection and no other run beside this one
is likely to take them before the service listens."""

from __future__ import annotations

import socket

from dlaas_hub.dev import devservices


def test_ports_are_free_distinct_and_outside_the_ephemeral_range():
    ephemeral = devservices.ephemeral_ports_start()
    ports = [devservices.free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)  # never the same port twice, even before a service takes it
    assert all(devservices.PORT_RANGE_START <= port < ephemeral for port in ports)
    for port in ports[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # free


def test_a_port_something_listens_on_is_not_handed_out(monkeypatch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    taken = listener.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        spare = s.getsockname()[1]
    draws = iter([taken, taken, spare])
    monkeypatch.setattr(devservices, "PORT_RANGE_START", 1024)
    monkeypatch.setattr(devservices, "ephemeral_ports_start", lambda: 65536)
    monkeypatch.setattr(devservices.random, "randrange", lambda start, end: next(draws))
    try:
        assert devservices.free_port() == spare
    finally:
        listener.close()


def test_the_ephemeral_range_is_read_from_the_kernel_or_linuxs_default(tmp_path):
    ranges = tmp_path / "ip_local_port_range"
    ranges.write_text("40000\t60999\n")
    assert devservices.ephemeral_ports_start(str(ranges)) == 40000
    assert devservices.ephemeral_ports_start(str(tmp_path / "missing")) == 32768
