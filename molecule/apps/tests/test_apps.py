"""Scenario apps: real app servers from Debian's packages under the collection's defaults.

Four sites (molecule.yml): Debian's gunicorn (sync workers) and uvicorn, a Go app
built with Debian's Go and go-systemd, and Node.js, with every default of the
collection. Each is restarted 10 times and deployed (gunicorn, Go and Node also
with the overlap strategy) while wrk loads it, and drains its keep-alive
connections on a restart; gunicorn's master is killed under load. Every number
ends up in one table, printed by the last test.
"""

import json
import re
import subprocess
import time

import pytest
from conftest import CONTAINER, MAX_EXPOSURE, assert_past_default_start_limit, crash_main, exposure, journal_events, \
    print_table, public_url, start_paced_load, stop_paced_load

SERVERS = ["gunicorn", "uvicorn", "go", "node"]
# What each server passes to listen() on the socket it inherits, as docs/units.md says:
# gunicorn and uvicorn --backlog (default 2048), Node 511; Go calls no listen(), the
# socket keeps its Backlog= (the site's backlog, default 4096).
BACKLOG = {"gunicorn": 2048, "uvicorn": 2048, "go": 4096, "node": 511}
# 10 restarts in pairs: the second of a pair RESTART_APART seconds after the first,
# while the first is still starting (before gunicorn forks a worker); each pair waits
# for /readyz before the next. So the burst is past systemd's default start limit
# (5 starts in 10 s) whatever an app's start-up takes (gunicorn's was 2.0-2.4 s on a
# loaded host: a /readyz wait after every restart left 5 starts in 10 s), and the
# site serves between pairs.
RESTARTS, RESTART_APART = 10, 0.2
OVERLAP_WARMUP = "3"  # seconds: the new instance of an overlap deploy warms up this long
RESULTS = []  # rows of the summary table


def server_of(name):
    """gunicorn-app -> gunicorn"""
    return name.split("-")[0]


def port_of(address):
    return int(str(address).rsplit(":", 1)[-1])


@pytest.fixture(scope="module")
def by_server(sites):
    return {server_of(s["name"]): s for s in sites}


@pytest.fixture(scope="module", autouse=True)
def state(host, sites, playbook):
    """The site entries as last deployed: molecule.yml's, converged again first if an earlier run left others."""
    found = host.check_output("for s in %s; do readlink /srv/onebox/$s/current; done; ls /etc/systemd/system"
                              % " ".join(s["name"] for s in sites)).split()
    if any(f.endswith("@.service") for f in found) or [f for f in found if f.startswith("/")] != \
            ["/srv/onebox/%s/releases/%s" % (s["name"], s["version"]) for s in sites]:
        rc, out = playbook({})
        assert rc == 0, out[-3000:]
    return {s["name"]: dict(s) for s in sites}


@pytest.fixture(autouse=True)
def journal_on_failure(request):
    """A failed test prints the journal of the app units (conftest's report names other sites)."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:
        out = subprocess.run(["podman", "exec", CONTAINER, "sh", "-c",
                              "journalctl --no-pager -n 120 -u 'gunicorn-app*' -u 'uvicorn-app*' -u 'go-app*' "
                              "-u 'node-app*'; systemctl --no-pager --all list-units '*-app*'"],
                             capture_output=True, text=True, check=False)
        print("\n----- journal of the app units\n" + out.stdout + out.stderr)


def service_unit(host, site):
    """The running service unit of a site: NAME.service, or the active instance NAME@PORT.service."""
    if site.get("strategy") != "overlap":
        return site["name"] + ".service"
    active = host.check_output("systemctl list-units --no-legend --plain --state=active '%s@*.service'" % site["name"])
    units = [line.split()[0] for line in active.splitlines()]
    assert len(units) == 1, units
    return units[0]


def main_pid(host, unit):
    return int(host.check_output("systemctl show -p MainPID --value %s" % unit))


def served(host, site):
    return json.loads(host.check_output("curl -fsS --max-time 10 %s" % public_url(site)))


def privileged(cmd):
    """podman exec --privileged: root without CAP_SYS_PTRACE cannot read another user's /proc/PID/fd."""
    proc = subprocess.run(["podman", "exec", "--privileged", CONTAINER, "sh", "-c", cmd],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def assert_main_pid_holds_the_socket(host, site):
    """The unit's main process holds the very listening socket systemd holds (same socket inode)."""
    unit = service_unit(host, site)
    pid = main_pid(host, unit)
    inode = host.check_output("awk '$4 == \"0A\" && $2 ~ /:%04X$/ {print $10}' /proc/net/tcp" % port_of(site["listen"]))
    assert inode.isdigit(), (site["name"], inode)
    fds = privileged("readlink /proc/%d/fd/*; echo ---; readlink /proc/1/fd/*" % pid)
    mine, systemd = fds.split("---")
    assert "socket:[%s]" % inode in mine.split(), (unit, pid, inode, mine)
    assert "socket:[%s]" % inode in systemd.split(), (inode, "systemd holds it too")
    return pid


def probe_of(out):
    """(sent, failed) of the deploy playbook's built-in probe."""
    match = re.search(r"probe: (\d+) requests sent, (\d+) failed", out)
    assert match, out[-3000:]
    return int(match.group(1)), int(match.group(2))


def deploy(host, playbook, state, names, version):
    """onebox.deploy.deploy of the named sites to a new version under paced wrk load: (rc, output, wrk rows)."""
    new = {n: dict(state[n], version=version) for n in names}
    loaded = [new[n] for n in names]
    start_paced_load(host, loaded)
    rc, out = playbook({"onebox_sites": [new.get(n, s) for n, s in state.items()], "onebox_deploy_sites": names},
                       playbook="deploy.yml")
    rows = stop_paced_load(host, loaded, "deploy of %s to %s (wrk, 8 paced connections)" % (" ".join(names), version))
    if rc == 0:
        state.update(new)
    return rc, out, rows


def test_each_app_serves_its_release_and_health(host, sites):
    for site in sites:
        body = served(host, site)
        assert body == dict(body, site=site["name"], version=site["version"], server=server_of(site["name"])), body
        for path in ("/livez", "/readyz"):
            assert host.check_output("curl -fsS --max-time 5 http://%s%s" % (site["health_listen"], path)) == "ok"
            # The public socket answers the health paths as well.
            assert host.check_output("curl -fsS --max-time 5 %s%s" % (public_url(site), path[1:])) == "ok"


def test_the_main_pid_holds_the_socket_from_systemd(host, sites):
    for site in sites:
        assert_main_pid_holds_the_socket(host, site)


def test_each_server_sets_its_own_listen_backlog(host, sites):
    """ss -ltn shows a listening socket's backlog as Send-Q: each server's listen() replaced the socket's Backlog=."""
    rows = []
    for site in sites:
        line = host.check_output("ss -ltnH 'sport = :%d'" % port_of(site["listen"]))
        rows.append({"server": server_of(site["name"]), "listen": site["listen"], "backlog": int(line.split()[2]),
                     "expected": BACKLOG[server_of(site["name"])]})
    print_table("listen backlog (Send-Q of the listening socket; the socket unit says Backlog=4096)", rows,
                list(rows[0]))
    assert all(r["backlog"] == r["expected"] for r in rows), rows


def test_each_family_runs_sandboxed_with_exposure_at_most_2(host, sites):
    rows = []
    for site in sites:
        unit = service_unit(host, site)
        level, failed = exposure(host, unit)
        user = host.check_output("ps -o user:32= -p %d" % main_pid(host, unit))
        rows.append({"server": server_of(site["name"]), "unit": unit, "exposure": level, "user": user,
                     "open_checks": " ".join(failed)})
        assert "service_directives" not in site, site  # the defaults, no per-site work-around
    print_table("systemd-analyze security (target <= %.1f)" % MAX_EXPOSURE, rows, list(rows[0]))
    RESULTS.extend({"server": r["server"], "strategy": "restart", "test": "exposure", "note": r["exposure"]}
                   for r in rows)
    assert all(r["exposure"] <= MAX_EXPOSURE and r["user"] == r["unit"][:-len(".service")] for r in rows), rows


# Runs on the host: systemctl restart of the unit in pairs (above); reports when each
# restart began and, for the second of each pair, how long until /readyz answered 200.
RESTARTS_PY = r"""
import json, subprocess, sys, time, urllib.request
unit, readiness, count, apart = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])


def ready(deadline):
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(readiness, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except Exception:
            pass
        time.sleep(0.05)
    return False


def show(prop, name):
    return subprocess.run(["systemctl", "show", "-p", prop, "--value", name],
                          capture_output=True, text=True).stdout.strip()


report = {"began_s": [], "took_s": [], "errors": [], "socket_states": set()}
socket = unit.split(".")[0] + ".socket"
t0 = time.monotonic()
last = t0
for i in range(count):
    if i % 2:  # the second of a pair: while the first is still warming up
        time.sleep(max(0.0, last + apart - time.monotonic()))
    start = last = time.monotonic()
    proc = subprocess.run(["systemctl", "restart", unit], capture_output=True, text=True)
    if proc.returncode:
        report["errors"].append("restart %d: rc=%d %s" % (i + 1, proc.returncode, proc.stderr.strip()))
        break
    report["socket_states"].add(show("ActiveState", socket))
    report["began_s"].append(round(start - t0, 2))
    if i % 2 == 0 and i < count - 1:
        continue
    if not ready(start + 30):
        report["errors"].append("restart %d: not ready within 30 s" % (i + 1))
        break
    report["took_s"].append(round(time.monotonic() - start, 2))
report["socket_states"] = sorted(report["socket_states"])
report["nrestarts"] = int(show("NRestarts", unit))
json.dump(report, sys.stdout)
"""


@pytest.mark.parametrize("server", SERVERS)
def test_ten_restarts_under_load_drop_nothing(host, by_server, state, server):
    """10 restarts in pairs, the second 0.2 s into the first's start-up (past systemd's
    default start limit of 5 in 10 s), while wrk loads the site."""
    site = state[by_server[server]["name"]]
    unit = service_unit(host, site)
    host.check_output("cat > /usr/local/bin/onebox-restarts.py <<'ONEBOX_EOF'\n%s\nONEBOX_EOF" % RESTARTS_PY)
    before = int(host.check_output("systemctl show -p NRestarts --value %s" % unit))
    since = time.time()
    start_paced_load(host, [site])
    report = json.loads(host.check_output("python3 /usr/local/bin/onebox-restarts.py %s http://%s/readyz %d %s" % (
        unit, site["health_listen"], RESTARTS, RESTART_APART)))
    rows = stop_paced_load(host, [site], "%d restarts of %s in pairs %.1f s apart (wrk, 8 paced connections)"
                           % (RESTARTS, unit, RESTART_APART))
    print("restarts began at %s s, each pair ready %s s after its second" % (report["began_s"], report["took_s"]))
    RESULTS.append(dict(rows[0], server=server, strategy="restart", test="%d restarts" % RESTARTS))
    assert report["errors"] == [] and len(report["began_s"]) == RESTARTS, report
    assert_past_default_start_limit(host, report["began_s"], unit)
    assert report["socket_states"] == ["active"], report
    assert report["nrestarts"] == before, report  # systemd restarted nothing on its own
    assert rows[0]["failed"] == 0 and rows[0]["requests"] > 1000, rows
    assert_main_pid_holds_the_socket(host, site)
    if server == "gunicorn":
        # No worker got a SIGTERM before its handler was set: systemd signals the master
        # only (KillMode=mixed), and /readyz waits for every worker (recipe). Such a
        # worker dies of the signal, or misses it and serves on until the master's
        # SIGKILL at graceful_timeout (8 s).
        log = host.check_output("journalctl --no-pager -o cat --since @%d -u %s" % (int(since), unit))
        assert "was terminated due to signal" not in log, log[-3000:]
        assert max(report["took_s"]) < 8, report


# Runs on the host: two keep-alive connections to the site, then a restart. During
# the drain one sends a request (it must be answered, with Connection: close, and
# closed after it), the other stays idle (it must be closed cleanly, only after the
# idle grace).
KEEPALIVE_PY = r"""
import json, socket, subprocess, sys, time, urllib.error, urllib.request
unit, port, health = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def request(sock):
    sock.sendall(b"GET / HTTP/1.1\r\nHost: onebox\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers.get("connection", "keep-alive").lower(), json.loads(body)


def closed(sock, timeout):
    sock.settimeout(timeout)
    try:
        return "eof" if sock.recv(1) == b"" else "data"
    except socket.timeout:
        return "open"
    except ConnectionResetError:
        return "reset"


def status(path):
    try:
        with urllib.request.urlopen("http://%s%s" % (health, path), timeout=1) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except Exception as exc:
        return type(exc).__name__


busy = socket.create_connection(("127.0.0.1", port), timeout=5)
idle = socket.create_connection(("127.0.0.1", port), timeout=5)
code, connection, body = request(busy)
report = {"keep_alive": connection == "keep-alive"}
if report["keep_alive"]:
    request(idle)
    subprocess.run(["systemctl", "restart", "--no-block", unit], check=True)
    t0 = time.monotonic()
    while status("/readyz") != 503 and time.monotonic() - t0 < 5:
        time.sleep(0.005)
    drain = time.monotonic()
    report["livez_while_draining"] = status("/livez")
    code, connection, during = request(busy)
    report["request_while_draining"] = [code, connection, during["pid"] == body["pid"]]
    report["after_that_response"] = closed(busy, 2)
    report["idle"] = closed(idle, 5)
    report["idle_closed_after_s"] = round(time.monotonic() - drain, 2)
json.dump(report, sys.stdout)
"""


@pytest.mark.parametrize("server", SERVERS)
def test_keepalive_connections_drain_cleanly(host, by_server, state, server):
    """On SIGTERM a request on a keep-alive connection is answered with Connection: close by the old
    process; an idle keep-alive connection is closed cleanly (no reset) only after the idle grace."""
    site = state[by_server[server]["name"]]
    host.check_output("cat > /usr/local/bin/onebox-keepalive.py <<'ONEBOX_EOF'\n%s\nONEBOX_EOF" % KEEPALIVE_PY)
    report = json.loads(host.check_output("python3 /usr/local/bin/onebox-keepalive.py %s %d %s" % (
        service_unit(host, site), port_of(site["listen"]), site["health_listen"])))
    host.check_output("until curl -fsS --max-time 2 http://%s/readyz; do sleep 0.1; done" % site["health_listen"])
    print("\n%s: %s" % (server, report))
    if server == "gunicorn":
        # Sync workers answer every request with Connection: close: no idle keep-alive connections.
        assert report == {"keep_alive": False}, report
        return
    assert report["keep_alive"] and report["livez_while_draining"] == 200, report
    assert report["request_while_draining"] == [200, "close", True], report
    assert report["after_that_response"] == "eof", report
    assert report["idle"] == "eof" and 0.3 <= report["idle_closed_after_s"] < 3, report


def test_a_crashed_gunicorn_master_is_back_within_restart_sec_plus_warmup(host, by_server, state):
    """kill -9 of gunicorn's master under load, 3 times: orphaned workers stop at once, a new master serves soon."""
    site = state[by_server["gunicorn"]["name"]]
    unit = service_unit(host, site)
    restart_sec, warmup = 1.0, float(site["env"]["APP_WARMUP"])  # restart_sec: the role's default
    assert host.check_output("systemctl show -p RestartUSec --value %s" % unit) == "1s"
    bound = restart_sec + warmup + 3
    reports = []
    start_paced_load(host, [site])
    for _ in range(3):
        reports.append(crash_main(host, unit, public_url(site)))
        host.check_output("until curl -fsS --max-time 2 http://%s/readyz; do sleep 0.1; done" % site["health_listen"])
    rows = stop_paced_load(host, [site], "kill -9 of the gunicorn master, 3 times (wrk, 8 paced connections)")
    for r in reports:
        print("crash: %(workers)d workers gone after %(workers_gone_s)s s; a new process answered after "
              "%(back_s)s s (bound %(bound).1f s); %(old_answers)d answers from the old workers meanwhile"
              % dict(r, bound=bound))
    RESULTS.append(dict(rows[0], server="gunicorn", strategy="restart", test="kill -9 master x3",
                        note="back after %s s" % " / ".join(str(r.get("back_s")) for r in reports)))
    for r in reports:
        assert r["restarts"] == 1 and r["new_main_differs"] and r["workers"] == 2, r
        assert r["workers_gone_s"] < 1.5, r  # at once, not after TimeoutStopSec (15 s)
        assert r["back_s"] < bound, r
    assert_main_pid_holds_the_socket(host, site)


def test_deploy_of_a_new_release_under_load(host, sites, state, playbook):
    """onebox.deploy.deploy of all four to 2.0.0 (strategy restart), one after another while wrk loads each:
    0 failed from wrk and from the playbook's built-in probe; the new release serves from the main pid."""
    names = [s["name"] for s in sites]
    rc, out, rows = deploy(host, playbook, state, names, "2.0.0")
    assert rc == 0, out[-3000:]
    sent, failed = probe_of(out)
    print("probe: %d requests sent, %d failed" % (sent, failed))
    RESULTS.extend(dict(r, server=server_of(r["site"]), strategy="restart", test="deploy 2.0.0") for r in rows)
    RESULTS.append({"server": "(all four)", "strategy": "restart", "test": "deploy 2.0.0", "probe_sent": sent,
                    "probe_failed": failed})
    assert failed == 0 and sent > 100, (sent, failed)
    assert all(r["failed"] == 0 and r["requests"] > 500 for r in rows), rows
    for name in names:
        assert served(host, state[name])["version"] == "2.0.0"
        assert_main_pid_holds_the_socket(host, state[name])


def test_switch_to_overlap(host, by_server, state, playbook):
    """gunicorn, Go and Node to strategy overlap: instances named after the health port and the next one."""
    for server in ("gunicorn", "go", "node"):
        state[by_server[server]["name"]]["strategy"] = "overlap"
    rc, out = playbook({"onebox_sites": list(state.values())})
    assert rc == 0, out[-3000:]
    for server in ("gunicorn", "go", "node"):
        site = state[by_server[server]["name"]]
        first = port_of(site["health_listen"])
        assert service_unit(host, site) == "%s@%d.service" % (site["name"], first)
        assert host.file("/etc/systemd/system/%s@.service" % site["name"]).exists
        assert served(host, site)["version"] == "2.0.0"
        assert_main_pid_holds_the_socket(host, site)


# Runs on the host during an overlap deploy: every 50 ms a fresh request to each
# target (label=URL), one JSON line per answer, until the stop file exists.
SAMPLER_PY = r"""
import json, os, sys, time, urllib.error, urllib.request
out, stop, targets = sys.argv[1], sys.argv[2], [t.split("=", 1) for t in sys.argv[3:]]
with open(out, "w") as handle:
    while not os.path.exists(stop):
        for label, url in targets:
            began = time.time()
            body = ""
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    status, body = resp.status, resp.read().decode()
            except urllib.error.HTTPError as exc:
                status = exc.code
            except Exception as exc:
                status = type(exc).__name__
            handle.write(json.dumps({"t": began, "target": label, "status": status, "body": body,
                                     "ms": round((time.time() - began) * 1000, 1)}) + "\n")
            handle.flush()
        time.sleep(0.05)
"""


def instance_ports(host, site):
    """(running instance's health port, the other instance's) of an overlap site."""
    old = int(service_unit(host, site).split("@")[1].split(".")[0])
    first = port_of(site["health_listen"])
    return old, first + 1 if old == first else first


def test_overlap_deploy_under_load(host, by_server, state, playbook):
    """Overlap deploy of gunicorn, Go and Node to 3.0.0 under load. The new Go and Node releases warm
    up 3 s, and meanwhile their old instance answers on its health port and the public port
    (NonBlocking=true: the start of the new instance must not make the shared socket blocking
    under the old one, whose accept() would then stall its whole event loop)."""
    names = [by_server[server]["name"] for server in ("gunicorn", "go", "node")]
    sampled = [by_server[server]["name"] for server in ("go", "node")]
    before = {}
    host.check_output("rm -f /tmp/sampler.stop; cat > /usr/local/bin/onebox-sampler.py <<'ONEBOX_EOF'\n%s\n"
                      "ONEBOX_EOF" % SAMPLER_PY)
    for name in names:
        site = state[name]
        old, new = instance_ports(host, site)
        unit = service_unit(host, site)
        before[name] = {"old": old, "new": new, "old_unit": unit, "new_unit": "%s@%d.service" % (name, new),
                        "old_pid": main_pid(host, unit)}
        if name in sampled:
            host.check_output("nohup python3 /usr/local/bin/onebox-sampler.py /tmp/sampler-%s.jsonl /tmp/sampler.stop "
                              "old_livez=http://127.0.0.1:%d/livez old_readyz=http://127.0.0.1:%d/readyz public=%s "
                              "new_readyz=http://127.0.0.1:%d/readyz >/tmp/sampler-%s.log 2>&1 &"
                              % (name, old, old, public_url(site), new, name))
    since = float(host.check_output("date +%s.%N"))
    try:
        # Only the sampled sites get the long warm-up; gunicorn keeps its 0.8 s.
        for name in sampled:
            state[name]["env"] = dict(state[name]["env"], APP_WARMUP=OVERLAP_WARMUP)
        rc, out, rows = deploy(host, playbook, state, names, "3.0.0")
    finally:
        host.run("touch /tmp/sampler.stop")
    time.sleep(0.5)
    # What the samplers saw comes first: it explains a failed deploy as well.
    failed_deploy = "" if rc == 0 else "(the deploy failed too: %s)" % out[-1500:]
    notes = {name: "" for name in names}
    for name in sampled:
        b = before[name]
        samples = [json.loads(line) for line in host.file("/tmp/sampler-%s.jsonl" % name).content_string.splitlines()]
        events = journal_events(host, since, [b["old_unit"], b["new_unit"]])
        started = [t for t, u, e in events if u == b["new_unit"] and e == "Started"]
        stopping = [t for t, u, e in events if u == b["old_unit"] and e == "Stopping"]
        assert started and stopping, (name, events, failed_deploy)
        # The new instance warms up until its /readyz last answered 503; requests done
        # by then were answered by the old instance, as they must be.
        warm_until = max((s["t"] for s in samples if s["target"] == "new_readyz" and s["status"] == 503), default=0)
        warming = [s for s in samples if started[0] <= s["t"] and s["t"] + s["ms"] / 1000 <= warm_until
                   and s["target"] != "new_readyz"]
        bad = [s for s in warming if s["status"] != 200 or
               (s["target"] == "public" and json.loads(s["body"])["pid"] != b["old_pid"])]
        public = [s for s in warming if s["target"] == "public"]
        notes[name] = "old answered %d of %d during the %.1f s warm-up (max %.0f ms)" % (
            len(warming) - len(bad), len(warming), warm_until - started[0], max((s["ms"] for s in warming), default=0))
        print("%s: %s" % (name, notes[name]))
        assert warm_until - started[0] > float(OVERLAP_WARMUP) - 0.5, (name, started, warm_until, failed_deploy)
        assert len(public) >= 10 and not bad, (name, bad[:10], failed_deploy)
        # The old instance was stopped only after the new one was ready; the public
        # port answered every sample, and the old health port every one until then.
        ready_at = min((s["t"] for s in samples if s["target"] == "new_readyz" and s["status"] == 200), default=None)
        assert ready_at and ready_at <= stopping[0], (name, ready_at, stopping, failed_deploy)
        failed_samples = [s for s in samples if s["status"] != 200 and (
            s["target"] == "public" or s["target"].startswith("old") and s["t"] + s["ms"] / 1000 < stopping[0])]
        assert not failed_samples, (name, failed_samples[:10], failed_deploy)
    assert rc == 0, out[-3000:]
    sent, failed = probe_of(out)
    print("probe: %d requests sent, %d failed" % (sent, failed))
    RESULTS.extend(dict(r, server=server_of(r["site"]), strategy="overlap", test="deploy 3.0.0", note=notes[r["site"]])
                   for r in rows)
    RESULTS.append({"server": "(these three)", "strategy": "overlap", "test": "deploy 3.0.0", "probe_sent": sent,
                    "probe_failed": failed})
    assert failed == 0 and sent > 100, (sent, failed)
    assert all(r["failed"] == 0 and r["requests"] > 500 for r in rows), rows
    for name in names:
        assert service_unit(host, state[name]) == before[name]["new_unit"]
        body = served(host, state[name])
        assert body["version"] == "3.0.0" and body["pid"] != before[name]["old_pid"], body
        assert_main_pid_holds_the_socket(host, state[name])


def test_zz_summary():
    """One table: requests and failures per server and strategy, crash recovery, exposure."""
    print_table("apps: requests and failures per server and strategy (wrk, 8 paced connections; probe: the deploy "
                "playbook's own)", RESULTS,
                ["server", "strategy", "test", "requests", "failed", "probe_sent", "probe_failed", "p99_ms", "max_ms",
                 "note"])
