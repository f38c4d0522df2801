# -*- coding: utf-8 -*-
"""The gate of Traefik's restarts (roles/traefik/files/onebox-traefik-gate) on
real loopback sockets: its filter drops a new connection's SYN and nothing
else, lets the probes' SYN from PROBE_PORTS through, and goes away when
detached; what it reads of the dynamic file and the ACME storage.
"""

from __future__ import absolute_import, division, print_function

import importlib.machinery
import importlib.util
import json
import os
import random
import socket

import pytest
from conftest import REPO_ROOT as ROOT

GATE = os.path.join(ROOT, "roles", "traefik", "files", "onebox-traefik-gate")


@pytest.fixture(scope="module")
def gate():
    loader = importlib.machinery.SourceFileLoader("onebox_traefik_gate", GATE)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture
def listener():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock
    sock.close()


def connects(address, source_port=0, timeout=0.6):
    """Does a TCP handshake with *address* complete within *timeout* (a dropped SYN is sent again after 1 s)?"""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.settimeout(timeout)
    try:
        if source_port:
            sock.bind(("127.0.0.1", source_port))
        sock.connect(address)
        return True
    except socket.timeout:
        return False
    finally:
        sock.close()


def free_probe_port(gate):
    for port in random.sample(range(gate.PROBE_PORTS[0], gate.PROBE_PORTS[1] + 1), 64):
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            probe.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            probe.close()
    pytest.skip("no free port in %s" % (gate.PROBE_PORTS,))


def test_closed_gate_drops_new_connections_but_not_probes_or_established_ones(gate, listener):
    address = listener.getsockname()
    established = socket.create_connection(address, timeout=2)
    accepted = listener.accept()[0]
    assert connects(address)
    listener.accept()[0].close()

    gate.close({"web": listener}, drain=1)
    try:
        assert not connects(address)                                   # its SYN dropped: it waits
        assert connects(address, source_port=free_probe_port(gate))    # the gate's own probe
        listener.accept()[0].close()
        established.sendall(b"ping")                                  # established connections go on
        assert accepted.recv(4) == b"ping"
        accepted.sendall(b"pong")
        assert established.recv(4) == b"pong"
    finally:
        listener.setsockopt(socket.SOL_SOCKET, gate.SO_DETACH_FILTER, 0)
        established.close()
        accepted.close()
    assert connects(address)


def test_close_waits_for_the_old_traefik_to_accept_what_is_queued(gate, listener):
    address = listener.getsockname()
    queued = socket.create_connection(address, timeout=2)
    try:
        assert gate.accept_queue(listener) == 1
        gate.close({"web": listener}, drain=0.5)    # nobody accepts: it gives up after the drain
        assert gate.accept_queue(listener) == 1
        listener.accept()[0].close()
        assert gate.accept_queue(listener) == 0
    finally:
        listener.setsockopt(socket.SOL_SOCKET, gate.SO_DETACH_FILTER, 0)
        queued.close()


def test_what_the_gate_reads(gate, tmp_path):
    dynamic = tmp_path / "onebox.yml"
    dynamic.write_text("# Managed by onebox.deploy\n---\n" + json.dumps(
        {"http": {"routers": {"onebox-blog": {}, "onebox-blog-redirect": {}}, "services": {}}}))
    assert gate.file_routers(str(dynamic)) == {"onebox-blog@file", "onebox-blog-redirect@file"}
    assert gate.file_routers(str(tmp_path / "missing.yml")) == set()
    storage = tmp_path / "acme.json"
    storage.write_text(json.dumps({"pebble": {"Account": {"PrivateKey": "secret"}, "Certificates": [
        {"domain": {"main": "blog.test"}, "certificate": "x", "key": "secret"},
        {"domain": {"main": "shop.test", "sans": ["www.shop.test"]}, "certificate": "x", "key": "secret"}]}}))
    assert gate.stored_domains([str(storage), str(tmp_path / "none.json")]) == {
        "blog.test", "shop.test", "www.shop.test"}
