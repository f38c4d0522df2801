"""Traefik scenario: three socket-activated sites behind a real Traefik 3.7."""

import json
import os
import re
import time

import pytest
from conftest import (MAX_EXPOSURE, PROJECT, exposure, hold_machine_for_load, print_table, process_status,
                      site_service_units)

API = "http://127.0.0.1:8080"
ENTRY = "http://127.0.0.1:80/"
DYNAMIC = "/etc/traefik/dynamic/onebox.yml"


def hosts_of(site):
    return [site["domain"]] if site.get("domain") else list(site["domains"])


def readiness_url(site):
    health = str(site.get("health_listen", site["listen"]))
    host, _, port = health.rpartition(":")
    return "http://%s:%s/readyz" % (host or "127.0.0.1", port)


def services(host):
    return {s["name"]: s for s in json.loads(host.check_output("curl -fsS --max-time 5 %s/api/http/services" % API))
            if s["name"].startswith("onebox-")}


def server_states(host):
    return {name: sorted(s.get("serverStatus", {}).values()) for name, s in services(host).items()}


def wait_states(host, want, timeout=15):
    deadline = time.monotonic() + timeout
    states = server_states(host)
    while time.monotonic() < deadline:
        states = server_states(host)
        if all(states.get(name) == value for name, value in want.items()):
            return states
        time.sleep(0.2)
    return states


def site_behind(host, hostname, timeout=15):
    """The site name Traefik routes `hostname` to, waiting for a reload (the file provider throttles 2 s)."""
    deadline = time.monotonic() + timeout
    while True:
        res = host.run("curl -fsS --max-time 5 -H 'Host: %s' %s" % (hostname, ENTRY))
        if res.rc == 0 or time.monotonic() > deadline:
            return json.loads(res.stdout)["site"] if res.rc == 0 else None
        time.sleep(0.3)


def install_harness(host):
    for name in ("restart_under_load.py", "traefik_load.py"):
        with open(os.path.join(PROJECT, "tests", "harness", name)) as handle:
            host.check_output("cat > /usr/local/bin/%s <<'ONEBOX_EOF'\n%s\nONEBOX_EOF" % (name, handle.read()))


def load_rows(report):
    rows = []
    for name, site in report["sites"].items():
        rows.append({"site": name, "restarts": site["restarts"], "requests": site["requests"],
                     "failed": site["failed"], "connect_err": site["connect_errors"],
                     "read_err": site["read_errors"], "timeouts": site["timeouts"],
                     "non_2xx": site["non_2xx_3xx"], "p50_ms": site["p50_ms"], "p99_ms": site["p99_ms"],
                     "max_ms": site["max_ms"]})
    return rows


def test_traefik_runs_hardened_with_api_on_loopback(host):
    svc = host.service("traefik.service")
    assert svc.is_running and svc.is_enabled
    props = dict(line.split("=", 1) for line in host.check_output(
        "systemctl show -p User -p NoNewPrivileges -p ProtectSystem -p Type traefik.service").splitlines())
    assert props == {"Type": "notify", "User": "traefik", "NoNewPrivileges": "yes", "ProtectSystem": "strict"}, props
    listening = host.check_output("ss -ltnH | awk '{print $4}'").split()
    assert [a for a in listening if a.endswith(":8080")] == ["127.0.0.1:8080"]
    assert host.check_output("curl -fsS --max-time 5 %s/ping" % API) == "OK"
    dynamic = host.file(DYNAMIC)
    assert dynamic.exists and dynamic.mode == 0o644
    assert dynamic.content_string.startswith("#")
    # The live file passes the checker that validated it before it went live.
    host.check_output("/usr/bin/python3 /var/lib/onebox-traefik/onebox-traefik-check --entrypoint web "
                      "--forbid-path /readyz %s" % DYNAMIC)
    # No Traefik error for any field of the files (unknown fields are logged as errors).
    assert "field not found" not in host.check_output("journalctl --no-pager -u traefik -o cat")


def test_traefik_unit_exposure_is_at_most_2(host):
    """systemd-analyze security of traefik.service (and of the site services behind it)."""
    rows = []
    for unit in ["traefik.service"] + site_service_units(host):
        level, failed = exposure(host, unit)
        proc = process_status(host, unit)
        rows.append(dict(unit=unit, exposure=level, user=proc["user"], NoNewPrivs=proc["NoNewPrivs"],
                         seccomp=proc["Seccomp"], CapEff=proc["CapEff"], open_checks=" ".join(failed)))
    print_table("systemd-analyze security (target <= %.1f)" % MAX_EXPOSURE, rows, list(rows[0]))
    for row in rows:
        assert row["exposure"] <= MAX_EXPOSURE, row
        assert row["user"] != "root" and row["NoNewPrivs"] == "1" and row["seccomp"] == "2", row
    # Entry point :80 is a systemd socket that Traefik inherits: it needs no capability at all.
    assert int(rows[0]["CapEff"], 16) == 0, rows[0]
    props = dict(line.split("=", 1) for line in host.check_output(
        "systemctl show -p CapabilityBoundingSet -p AmbientCapabilities -p RestrictAddressFamilies "
        "-p ProtectProc -p MemoryDenyWriteExecute traefik.service").splitlines())
    assert sorted(props.pop("RestrictAddressFamilies").split()) == ["AF_INET", "AF_INET6", "AF_UNIX"]
    assert props == {"CapabilityBoundingSet": "", "AmbientCapabilities": "",
                     "ProtectProc": "invisible", "MemoryDenyWriteExecute": "yes"}, props


def test_requests_are_routed_by_host_header(host, sites):
    for site in sites:
        for name in hosts_of(site):
            body = json.loads(host.check_output("curl -fsS --max-time 5 -H 'Host: %s' %s" % (name, ENTRY)))
            assert body["site"] == site["name"], name
    code = host.check_output("curl -s -o /dev/null -w '%%{http_code}' -H 'Host: nope.test' %s" % ENTRY)
    assert code == "404"


def test_api_shows_every_server_up_with_livez_checks(host, sites):
    svc = services(host)
    assert sorted(svc) == sorted("onebox-%s@file" % s["name"] for s in sites)
    states = wait_states(host, {"onebox-%s@file" % s["name"]: ["UP"] for s in sites})
    for site in sites:
        name = "onebox-%s@file" % site["name"]
        assert states[name] == ["UP"], states
        check = svc[name]["loadBalancer"]["healthCheck"]
        assert check["path"] == "/livez"
        if site.get("health_listen"):
            assert check["port"] == int(site["health_listen"].rsplit(":", 1)[1])
        else:
            assert "port" not in check
    middlewares = json.loads(host.check_output("curl -fsS %s/api/http/middlewares" % API))
    retry = [m for m in middlewares if m["name"] == "onebox-retry@file"][0]["retry"]
    assert retry["status"] == ["502", "503"] and retry["attempts"] == 4


def test_restarts_under_load_through_traefik_drop_nothing(host, sites):
    """Paced wrk through Traefik to all three sites while each is restarted 5 times."""
    install_harness(host)
    args = " ".join("--site %s,%s,%s" % (s["name"], hosts_of(s)[0], readiness_url(s)) for s in sites)
    hold_machine_for_load()
    pid = host.check_output("systemctl show -p MainPID --value traefik.service")
    report = json.loads(host.check_output(
        "python3 /usr/local/bin/traefik_load.py --restarts 5 --connections 4 %s" % args))
    print_table("restarts through Traefik (wrk, 4 paced connections per site)", load_rows(report),
                list(load_rows(report)[0]))
    for name, site in report["sites"].items():
        assert site["errors"] == [], (name, site["errors"])
        assert site["restarts"] == 5, name
        assert site["requests"] > 500, name
    assert report["total"]["failed"] == 0, report["total"]
    assert host.check_output("systemctl show -p MainPID --value traefik.service") == pid


def _parse_wrk():
    import sys
    sys.path.insert(0, os.path.join(PROJECT, "tests", "harness"))
    from restart_under_load import parse_wrk
    return parse_wrk


def test_deploy_playbook_through_traefik_drops_nothing(host, sites, playbook):
    """onebox.deploy.deploy ships a new release of every site while wrk loads them through Traefik."""
    hold_machine_for_load()
    parse_wrk = _parse_wrk()
    host.check_output("printf 'function delay()\\n  return 5\\nend\\n' > /tmp/pace.lua")
    for s in sites:
        host.check_output("nohup wrk -t1 -c4 -d600s --timeout 10s --latency -s /tmp/pace.lua -H 'Host: %s' %s "
                          "> /tmp/wrk-%s.txt 2>&1 &" % (hosts_of(s)[0], ENTRY, s["name"]))
    time.sleep(1)
    pid = host.check_output("systemctl show -p MainPID --value traefik.service")
    rc, out = playbook({"onebox_sites": [dict(s, version="2.0.0") for s in sites]}, playbook="deploy.yml")
    time.sleep(1)
    host.run("pkill -INT -x wrk")
    deadline = time.monotonic() + 20
    while host.run("pgrep -x wrk").rc == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert rc == 0, out[-3000:]
    rows = []
    for s in sites:
        res = parse_wrk(host.check_output("cat /tmp/wrk-%s.txt" % s["name"]))
        rows.append(dict(site=s["name"], **{k: res[k] for k in ("requests", "failed", "connect_errors",
                                                                 "read_errors", "timeouts", "non_2xx_3xx",
                                                                 "p99_ms", "max_ms")}))
    print_table("rolling deploy (onebox.deploy.deploy) through Traefik", rows, list(rows[0]))
    for s in sites:
        body = json.loads(host.check_output("curl -fsS --max-time 5 -H 'Host: %s' %s" % (hosts_of(s)[0], ENTRY)))
        assert body["version"] == "2.0.0"
    for row in rows:
        assert row["requests"] > 300, row
        assert row["failed"] == 0, row
    # Releases changed, routes did not: the dynamic file and Traefik stayed as they were.
    assert host.check_output("systemctl show -p MainPID --value traefik.service") == pid


def test_a_killed_site_is_down_and_fails_fast_others_unaffected(host, sites):
    """blog is killed and crash-loops: Traefik marks it DOWN, answers 503 at once, shop and wiki lose nothing."""
    install_harness(host)
    others = [s for s in sites if s["name"] != "blog"]
    args = " ".join("--site %s,%s,%s" % (s["name"], hosts_of(s)[0], readiness_url(s)) for s in others)
    hold_machine_for_load()
    host.check_output("rm -f /tmp/others.json; nohup sh -c 'python3 /usr/local/bin/traefik_load.py --restarts 0 "
                      "--settle 6 %s > /tmp/others.json' >/dev/null 2>&1 &" % args)
    dropin = "/run/systemd/system/blog.service.d"
    host.check_output("mkdir -p %s && printf '[Service]\\nEnvironment=APP_CRASH_ON_START=1\\n' > %s/crash.conf "
                      "&& systemctl daemon-reload" % (dropin, dropin))
    try:
        host.check_output("systemctl kill -s KILL blog.service")
        states = wait_states(host, {"onebox-blog@file": ["DOWN"]}, timeout=5)
        assert states["onebox-blog@file"] == ["DOWN"], states
        timings = []
        for _ in range(5):
            out = host.check_output("curl -s -o /dev/null -w '%%{http_code} %%{time_total}' --max-time 5 "
                                    "-H 'Host: blog.test' %s" % ENTRY)
            code, took = out.split()
            timings.append((code, float(took)))
        print("\nkilled site through Traefik: %s" % timings)
        assert all(code == "503" and took < 1.0 for code, took in timings), timings
        assert states["onebox-shop@file"] == ["UP"] and states["onebox-wiki@file"] == ["UP"], states
    finally:
        host.check_output("rm -rf %s && systemctl daemon-reload" % dropin)
        host.run("systemctl reset-failed blog.service")
        host.check_output("systemctl restart blog.service")
    deadline = time.monotonic() + 30
    while host.run("test -s /tmp/others.json").rc != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    report = json.loads(host.check_output("cat /tmp/others.json"))
    print_table("shop and wiki through Traefik while blog is down", load_rows(report), list(load_rows(report)[0]))
    assert report["total"]["failed"] == 0, report["total"]
    assert report["total"]["requests"] > 500
    assert wait_states(host, {"onebox-blog@file": ["UP"]})["onebox-blog@file"] == ["UP"]


def test_a_route_change_reloads_without_restarting_traefik(host, sites, playbook):
    pid = host.check_output("systemctl show -p MainPID --value traefik.service")
    # The releases the deploy test left on the host: no site restarts, only the route changes.
    current = [dict(s, version="2.0.0") for s in sites]
    changed = [dict(s, domain="news.test") if s["name"] == "blog" else s for s in current]
    rc, out = playbook({"onebox_sites": changed})
    assert rc == 0, out[-3000:]
    assert site_behind(host, "news.test") == "blog"
    assert host.check_output("systemctl show -p MainPID --value traefik.service") == pid
    rc, out = playbook({"onebox_sites": current})
    assert rc == 0, out[-3000:]
    assert site_behind(host, "blog.test") == "blog"
    assert host.check_output("systemctl show -p MainPID --value traefik.service") == pid


def socket_state(host, unit):
    return dict(line.split("=", 1) for line in host.check_output(
        "systemctl show -p Listen -p ActiveState -p ActiveEnterTimestampMonotonic %s" % unit).splitlines())


def test_a_changed_address_is_the_one_change_that_rebinds(host, sites, playbook):
    """web moves from :80 to :8081 and back: its socket is restarted on the new address (Traefik stops
    meanwhile), the API's socket stays as it was; the port left behind is closed."""
    current = [dict(s, version="2.0.0") for s in sites]
    before = dict((unit, socket_state(host, unit)) for unit in ("traefik-web.socket", "traefik-traefik.socket"))
    pid = host.check_output("systemctl show -p MainPID --value traefik.service")
    for port in (8081, 80):
        rc, out = playbook({"onebox_sites": current, "onebox_traefik_entrypoints": {"web": {"address": ":%d" % port}}})
        assert rc == 0, out[-3000:]
        web = socket_state(host, "traefik-web.socket")
        assert web["ActiveState"] == "active" and web["Listen"].split()[0] in ("[::]:%d" % port, "0.0.0.0:%d" % port)
        assert web["ActiveEnterTimestampMonotonic"] != before["traefik-web.socket"]["ActiveEnterTimestampMonotonic"]
        assert socket_state(host, "traefik-traefik.socket") == before["traefik-traefik.socket"]
        new_pid = host.check_output("systemctl show -p MainPID --value traefik.service")
        assert new_pid != pid
        pid = new_pid
        deadline = time.monotonic() + 15
        while host.run("curl -fsS -o /dev/null --max-time 5 -H 'Host: blog.test' http://127.0.0.1:%d/" % port).rc:
            assert time.monotonic() < deadline, "Traefik does not serve blog on :%d" % port
            time.sleep(0.3)
        other = 80 if port == 8081 else 8081
        assert host.run("curl -sS -o /dev/null --max-time 5 http://127.0.0.1:%d/" % other).rc == 7  # refused
        before["traefik-web.socket"] = web


BAD_INPUTS = [
    ("same domain", {"onebox_sites": lambda s: [dict(x, domain="blog.test") if x["name"] == "wiki" else x for x in s]},
     ["site wiki: field 'domain': blog.test is also used by site blog"]),
    ("unknown entry point", {"onebox_traefik_site_options": lambda s: {"shop": {"entrypoints": ["websecure"]}}},
     ["site shop: field 'entrypoints'", "unknown entry point 'websecure'"]),
    ("unreachable health", {"onebox_sites": lambda s: [dict(x, health_listen="[::1]:19001") if x["name"] == "blog"
                                                       else x for x in s]},
     ["site blog: field 'health_listen'", "not reachable by Traefik"]),
]


@pytest.mark.parametrize("case,extra,expected", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_fails_before_the_host_changes(host, sites, playbook, snapshot, case, extra, expected):
    before = snapshot(host) + host.check_output("ls -l --time-style=+%%s.%%N /etc/traefik/dynamic; cat %s" % DYNAMIC)
    rc, out = playbook({key: make(sites) for key, make in extra.items()})
    after = snapshot(host) + host.check_output("ls -l --time-style=+%%s.%%N /etc/traefik/dynamic; cat %s" % DYNAMIC)
    assert rc != 0
    for text in expected:
        assert text in out, (text, out[-2000:])
    assert before == after


def http_answer(host, hostname):
    """(status, headers as a dict of lower-case names, body) of GET / through Traefik's port 80."""
    out = host.check_output("curl -sS -i --max-time 5 -H 'Host: %s' %s" % (hostname, ENTRY))
    head, _sep, body = out.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    headers = dict((k.strip().lower(), v.strip()) for k, _s, v in (line.partition(":") for line in lines[1:]))
    return int(lines[0].split()[1]), headers, body, out


def wait_status(host, hostname, status, timeout=15):
    """The answer for `hostname` once its status is `status` (the file provider reloads after a throttle)."""
    deadline = time.monotonic() + timeout
    answer = http_answer(host, hostname)
    while answer[0] != status and time.monotonic() < deadline:
        time.sleep(0.3)
        answer = http_answer(host, hostname)
    return answer


def test_maintenance_mode_answers_503_with_a_page_and_ends_once_the_site_is_ready(host, sites, playbook, snapshot):
    """blog into maintenance for one run (-e onebox_maintenance_sites=blog): Traefik answers 503 with the page
    and Retry-After for it while shop serves and blog's unit runs on; an unknown name fails before the host
    changes; --check ends nothing; ending it while blog is not ready fails naming blog and keeps the page;
    once blog is ready it is routed again."""
    current = [dict(s, version="2.0.0") for s in sites]
    began = time.monotonic()
    rc, out = playbook({"onebox_sites": current}, args=["-e", "onebox_maintenance_sites=blog"])
    assert rc == 0, out[-3000:]
    status, headers, body, raw = wait_status(host, "blog.test", 503)
    print("\nmaintenance answer through Traefik:\n" + raw)
    assert status == 503, raw
    assert headers["retry-after"] == "300" and headers["cache-control"] == "no-store", headers
    assert headers["content-type"] == "text/html; charset=utf-8" and "<h1>Down for maintenance</h1>" in body
    for name in ("shop.test", "wiki.test"):
        assert json.loads(host.check_output("curl -fsS --max-time 5 -H 'Host: %s' %s" % (name, ENTRY)))["site"] \
            == name.split(".")[0]
    # The site itself runs on, ready (a migration can run meanwhile).
    assert host.service("blog.service").is_running
    assert host.run("curl -fsS -o /dev/null --max-time 5 %s" % readiness_url(sites[0])).rc == 0
    # The responder: socket-activated, on loopback, as a dynamic user without capabilities.
    assert host.service("onebox-maintenance.socket").is_running
    assert host.check_output("systemctl show -p DynamicUser --value onebox-maintenance.service") == "yes"
    assert host.check_output("systemctl show -p Listen --value onebox-maintenance.socket") == "127.0.0.1:8099 (Stream)"
    user = host.check_output("ps -o user= -p $(systemctl show -p MainPID --value onebox-maintenance.service)")
    assert user != "root"
    print("maintenance on: %.1f s" % (time.monotonic() - began))

    def state():
        return snapshot(host) + host.check_output("cat %s; systemctl is-active onebox-maintenance.socket" % DYNAMIC)

    # An unknown site fails before anything changes, naming the field and the name.
    before = state()
    rc, out = playbook({"onebox_sites": current}, args=["-e", "onebox_maintenance_sites=blog,nope"])
    assert rc != 0
    assert "onebox_maintenance_sites names unknown sites: nope (known: blog, shop, wiki)" in out, out[-2000:]
    assert state() == before

    # --check of the run that ends it: nothing changes, and it says which site would leave maintenance.
    rc, out = playbook({"onebox_sites": current}, args=["--check", "--tags", "onebox_traefik"])
    assert rc == 0, out[-3000:]
    assert "check mode: blog would leave maintenance" in out, out[-3000:]
    assert re.search(r"TASK \[onebox\.deploy\.traefik : Write and check the dynamic file on [^\]]+\] \**\n"
                     r"changed: ", out), out[-3000:]
    assert state() == before

    # A run that leaves out the tasks that write the dynamic file (--skip-tags) cannot end it: refused before
    # anything changes, naming blog and the field, instead of ending green with blog still in maintenance.
    rc, out = playbook({"onebox_sites": current}, args=["--skip-tags", "onebox_traefik"])
    assert rc != 0
    assert "site blog: field 'maintenance': this run ends its maintenance, but writes no Traefik dynamic file on " \
           "onebox-traefik, where Traefik routes blog to the maintenance page now" in " ".join(out.split()), out[-3000:]
    assert state() == before
    # The same run with blog in maintenance, as Traefik routes it, goes ahead.
    rc, out = playbook({"onebox_sites": current}, args=["--skip-tags", "onebox_traefik", "-e",
                                                        "onebox_maintenance_sites=blog"])
    assert rc == 0, out[-3000:]
    assert http_answer(host, "blog.test")[0] == 503

    # Not ready (its service stopped): the run fails naming blog, and Traefik keeps the page for it.
    began = time.monotonic()
    host.check_output("systemctl stop blog.service")
    try:
        rc, out = playbook({"onebox_sites": current, "onebox_traefik_rejoin_timeout": 2},
                           args=["--tags", "onebox_traefik"])
        assert rc != 0
        assert "site blog: field 'maintenance': its maintenance ends in this run, but http://127.0.0.1:19001/readyz " \
               "did not answer 200 within 2 s" in out.replace("\n", " "), out[-3000:]
        assert host.check_output("cat %s" % DYNAMIC) in before
        assert http_answer(host, "blog.test")[0] == 503
    finally:
        host.check_output("systemctl start blog.service")
    print("not ready: %.1f s" % (time.monotonic() - began))

    # Ready: routed to blog again, and the run ends only once Traefik does.
    began = time.monotonic()
    rc, out = playbook({"onebox_sites": current})
    assert rc == 0, out[-3000:]
    assert http_answer(host, "blog.test")[0] == 200
    assert json.loads(host.check_output("curl -fsS --max-time 5 -H 'Host: blog.test' %s" % ENTRY))["site"] == "blog"
    assert host.service("onebox-maintenance.socket").is_running
    print("maintenance off: %.1f s" % (time.monotonic() - began))
