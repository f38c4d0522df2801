"""Several hosts behind one Traefik: a host-by-host roll with 0 failed requests.

onebox-mh1 and onebox-mh2 run the sites, onebox-mhlb runs Traefik; wrk runs
on the Traefik host against its entry point (Host header per site), so every
count is what a client of Traefik sees. A sampler polls Traefik's API during
each roll, so the servers leaving and rejoining its rotation are observed,
not assumed.
"""

import json
import os
import re
import subprocess
import tempfile
import threading
import time

import pytest
import testinfra
import yaml
from conftest import PROJECT, paced_load_results, print_table, scenario_vars, start_paced_load

SITE_HOSTS = ["onebox-mh1", "onebox-mh2"]
LB = "onebox-mhlb"
API = "http://127.0.0.1:8080"
RESULTS = []


# How the scenario reaches each host (molecule.yml's host vars), with its address from address().
SSH = {"ansible_connection": "ssh", "ansible_user": "deploy", "ansible_python_interpreter": "/usr/bin/python3",
       "ansible_ssh_private_key_file": os.path.join(PROJECT, ".cache", "ssh", "id_ed25519"),
       "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"}


def address(name):
    data = json.loads(subprocess.run(["podman", "inspect", name], capture_output=True, text=True,
                                     check=True).stdout)
    return data[0]["NetworkSettings"]["Networks"]["onebox-multihost"]["IPAddress"]


@pytest.fixture(scope="module")
def lb():
    return testinfra.get_host("podman://" + LB)


@pytest.fixture(scope="module")
def hosts():
    return dict((name, testinfra.get_host("podman://" + name)) for name in SITE_HOSTS)


@pytest.fixture(scope="module")
def sites():
    return scenario_vars()["onebox_sites"]


def run(playbook, extra=None, host_vars=None, args=()):
    """Run a playbook of the collection against the three containers, over SSH
    as the sudo user `deploy` like the scenario's own steps; (rc, output, seconds)."""
    shared = dict(scenario_vars(), **(extra or {}))
    shared.pop("onebox_traefik_backend_address")
    shared.update(SSH)
    inventory = {"all": {"vars": shared, "children": {
        "onebox": {"hosts": dict((h, dict({"ansible_host": address(h), "onebox_traefik_backend_address": address(h)},
                                          **((host_vars or {}).get(h) or {}))) for h in SITE_HOSTS)},
        "onebox_traefik": {"hosts": {LB: {"ansible_host": address(LB)}}}}}}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        yaml.safe_dump(inventory, handle)
        path = handle.name
    began = time.monotonic()
    try:
        proc = subprocess.run(["ansible-playbook", "-i", path, os.path.join(PROJECT, "playbooks", playbook)]
                              + list(args), cwd=PROJECT, capture_output=True, text=True, check=False,
                              env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_PIPELINING="true"))
    finally:
        os.unlink(path)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - began


def served(lb, domain, tries=12):
    """Bodies of a few requests through Traefik for *domain*: which host answered which release."""
    out = lb.check_output("for i in $(seq %d); do curl -fsS --max-time 5 -H 'Host: %s' http://127.0.0.1/; echo; "
                          "done" % (tries, domain))
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# Runs on the Traefik host until its stdin closes: every 0.1 s, the servers of each
# onebox service in Traefik's API; with a readiness URL, also every 0.05 s until that
# URL first answers 200. One JSON line per sample, with the time of CLOCK_MONOTONIC,
# which the container shares with the controller.
SAMPLER_PY = r"""
import json, os, sys, threading, time, urllib.request
api, ready_url = sys.argv[1], (sys.argv[2:] or [None])[0]
lock = threading.Lock()


def emit(record):
    with lock:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


def services():
    while True:
        try:
            with urllib.request.urlopen(api + "/api/http/services", timeout=2) as resp:
                found = json.loads(resp.read())
        except Exception:
            found = []
        now = dict((s["name"], sorted(x["url"] for x in (s.get("loadBalancer") or {}).get("servers") or []))
                   for s in found if str(s.get("name", "")).startswith("onebox-"))
        emit({"t": time.monotonic(), "services": now})
        time.sleep(0.1)


def readiness():
    while True:
        try:
            with urllib.request.urlopen(ready_url, timeout=1) as resp:
                if resp.status == 200:
                    emit({"t": time.monotonic(), "ready": True})
                    return
        except Exception:
            pass
        time.sleep(0.05)


for target in [services] + ([readiness] if ready_url else []):
    threading.Thread(target=target, daemon=True).start()
sys.stdin.read()
os._exit(0)
"""


class Sampler(object):
    """Polls Traefik's API for the servers of each onebox service, every 0.1 s, and with
    *ready_url* that URL until it answers 200 (ready_at: when it first did), from a process
    on the Traefik host (SAMPLER_PY): one podman exec for the whole sampling instead of
    one for each sample, which kept half a core busy."""

    def __init__(self, lb, ready_url=None):
        self.argv = ["podman", "exec", "-i", LB, "python3", "-c", SAMPLER_PY, API] + ([ready_url] if ready_url else [])
        self.samples = []
        self.ready_at = []
        self.proc = None
        self.reader = threading.Thread(target=self.read, daemon=True)

    def read(self):
        for line in self.proc.stdout:
            record = json.loads(line)
            if record.get("ready"):
                self.ready_at.append(record["t"])
            else:
                self.samples.append((record["t"], record["services"]))

    def __enter__(self):
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.reader.start()
        deadline = time.monotonic() + 30
        while not self.samples:
            assert self.proc.poll() is None and time.monotonic() < deadline, "the sampler did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.proc.stdin.close()
        self.proc.wait(10)
        self.reader.join(10)

    def phases(self, service):
        """The distinct server lists of *service*, in the order they were seen."""
        out = []
        for _t, now in self.samples:
            servers = tuple(now.get(service) or ())
            if not out or out[-1] != servers:
                out.append(servers)
        return out


def start_load(lb, sites):
    """Paced wrk through Traefik, one per site (its domain in the Host header)."""
    start_paced_load(lb, sites, target=lambda site: "-H 'Host: %s' http://127.0.0.1:80/" % site["domain"])


def stop_load(lb, sites, title):
    results = paced_load_results(lb, sites)
    rows = []
    for site in sites:
        res = results[site["name"]]
        rows.append(dict(case=title, site=site["name"], requests=res["requests"], failed=res["failed"],
                         non_2xx=res["non_2xx_3xx"], max_ms=round(res["max_ms"] or 0, 1)))
    RESULTS.extend(rows)
    return rows


def roll_times(out):
    """Seconds each host's roll took, from the rolling module's own duration (in host order)."""
    return [float(x) for x in re.findall(r"roll took ([0-9.]+) s", out)]


def urls(host_names, port):
    return tuple(sorted("http://%s:%d" % (address(h), port) for h in host_names))


def test_traefik_serves_each_site_from_both_hosts(lb, sites):
    services = json.loads(lb.check_output("curl -fsS --max-time 5 %s/api/http/services" % API))
    by_name = dict((s["name"], s) for s in services)
    for site in sites:
        service = by_name["onebox-%s@file" % site["name"]]
        port = int(site["listen"])
        assert tuple(sorted(x["url"] for x in service["loadBalancer"]["servers"])) == urls(SITE_HOSTS, port)
        # Two servers: the health check follows readiness (a draining host leaves rotation).
        assert service["loadBalancer"]["healthCheck"]["path"] == "/readyz"
        assert set(service.get("serverStatus", {}).values()) == {"UP"}, service
        answered = set(body["host"] for body in served(lb, site["domain"]))
        assert answered == set(SITE_HOSTS), answered


def test_host_by_host_deploy_drops_nothing_through_traefik(lb, hosts, sites):
    new = [dict(s, version="2.0.0") for s in sites]
    start_load(lb, sites)
    with Sampler(lb) as sampler:
        rc, out, took = run("deploy.yml", {"onebox_sites": new})
    rows = stop_load(lb, sites, "host-by-host deploy to 2.0.0")
    assert rc == 0, out[-3000:]
    print_table("through Traefik, during the host-by-host deploy (took %.1f s; rolls %s s)" % (
        took, roll_times(out)), rows, list(rows[0]))
    for row in rows:
        assert row["failed"] == 0 and row["requests"] > 1000, row
    # Traefik's API: mh1 left the rotation and came back, then mh2; never both out.
    for site in sites:
        port = int(site["listen"])
        phases = sampler.phases("onebox-%s@file" % site["name"])
        both, only2, only1 = urls(SITE_HOSTS, port), urls(["onebox-mh2"], port), urls(["onebox-mh1"], port)
        assert [p for p in phases if p] == [both, only2, both, only1, both], phases
    for site in sites:
        assert set((b["host"], b["version"]) for b in served(lb, site["domain"])) == {
            ("onebox-mh1", "2.0.0"), ("onebox-mh2", "2.0.0")}
    assert "onebox-mh1: blog 2.0.0, shop 2.0.0" in out and "onebox-mh2: blog 2.0.0, shop 2.0.0" in out


def test_a_broken_release_on_host_two_stops_the_roll_there(lb, hosts, sites):
    """mh2's new release never turns ready: mh2 is rolled back, mh1 keeps the new release, 0 failed via Traefik."""
    new = [dict(s, version="3.0.0") for s in sites]
    broken = [dict(s, command=s["command"] + " --never-ready", ready_timeout=4) if s["name"] == "blog" else s
              for s in new]
    start_load(lb, sites)
    rc, out, took = run("deploy.yml", {"onebox_sites": new}, host_vars={"onebox-mh2": {"onebox_sites": broken}})
    rows = stop_load(lb, sites, "broken release on mh2")
    assert rc != 0, out[-3000:]
    assert "deploy on onebox-mh2 failed: rolled back blog.service to 2.0.0" in out, out[-3000:]
    for row in rows:
        assert row["failed"] == 0, row
    blog = next(s for s in sites if s["name"] == "blog")
    versions = set((b["host"], b["version"]) for b in served(lb, blog["domain"]))
    assert versions == {("onebox-mh1", "3.0.0"), ("onebox-mh2", "2.0.0")}, versions
    # The summary names which host serves which release.
    assert "onebox-mh1: blog 3.0.0, shop 3.0.0" in out, out[-2000:]
    assert "onebox-mh2: blog 2.0.0" in out, out[-2000:]
    # mh2's servers are back in rotation after its rollback.
    service = json.loads(lb.check_output("curl -fsS --max-time 5 %s/api/http/services/onebox-blog@file" % API))
    assert tuple(sorted(x["url"] for x in service["loadBalancer"]["servers"])) == urls(SITE_HOSTS, 8001)


def test_rollback_hosts_returns_host_one_too(lb, hosts, sites):
    """With onebox_rollback_hosts, the failure on mh2 also returns mh1 to the release it served before.
    The run is limited to the inventory's hosts (--limit): the verdict still fails it (localhost, where the
    report once ran, is outside such a limit)."""
    new = [dict(s, version="4.0.0") for s in sites]
    broken = [dict(s, command=s["command"] + " --never-ready", ready_timeout=4) if s["name"] == "blog" else s
              for s in new]
    start_load(lb, sites)
    rc, out, _took = run("deploy.yml", {"onebox_sites": new, "onebox_rollback_hosts": True},
                         host_vars={"onebox-mh2": {"onebox_sites": broken}},
                         args=["--limit", "onebox_traefik:onebox"])
    rows = stop_load(lb, sites, "broken release on mh2, onebox_rollback_hosts")
    assert rc != 0, out[-3000:]
    for row in rows:
        assert row["failed"] == 0, row
    # mh1 is back on 3.0.0; mh2 never left 2.0.0 (its roll stopped at blog before 3.0.0 reached shop).
    for site in sites:
        versions = set((b["host"], b["version"]) for b in served(lb, site["domain"]))
        assert versions == {("onebox-mh1", "3.0.0"), ("onebox-mh2", "2.0.0")}, (site["name"], versions)
    assert "rolled back: blog -> 3.0.0, shop -> 3.0.0." in out, out[-3000:]
    assert "deploy on onebox-mh2 failed" in out and "localhost" not in out.split("PLAY RECAP")[-1], out[-2000:]


def test_a_second_deploy_against_the_group_fails_at_once_naming_the_holder(lb, hosts, sites):
    """A second deploy while the first holds the lock fails without queueing, and names the holder.

    The first deploy holds its lock in a before_roll hook until the test releases it, so the
    second run meets a held lock however slow either playbook is on a loaded machine."""
    release = "/run/onebox-test-release-hold"
    for host in hosts.values():
        host.run("rm -f %s" % release)
    hook = os.path.join(tempfile.mkdtemp(prefix="onebox-hook-"), "hold.yml")
    with open(hook, "w") as handle:
        handle.write("- name: Hold the lock until the test releases it\n"
                     "  ansible.builtin.wait_for:\n"
                     "    path: %s\n"
                     "    timeout: 300\n" % release)
    results = {}

    def deploy_with_hook():
        results["first"] = run("deploy.yml", {"onebox_sites": [dict(s, version="5.0.0") for s in sites],
                                              "onebox_hooks": {"before_roll": [hook]},
                                              "onebox_deploy_owner": "alice@ci"})

    thread = threading.Thread(target=deploy_with_hook)
    thread.start()
    lock = hosts["onebox-mh1"].file("/run/lock/onebox-deploy.lock")
    deadline = time.monotonic() + 180
    while not (lock.exists and "alice@ci" in lock.content_string) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lock.exists, "the first deploy never took the lock of onebox-mh1"
    try:
        rc, out, _took = run("deploy.yml", {"onebox_sites": sites, "onebox_deploy_owner": "bob@ci"})
        # The second run ended while the first still held the lock: it did not queue behind it.
        first_still_holding = thread.is_alive() and "alice@ci" in lock.content_string
    finally:
        for host in hosts.values():
            host.run("touch %s" % release)
        thread.join(300)
        for host in hosts.values():
            host.run("rm -f %s" % release)
    assert rc != 0, out[-2000:]
    assert first_still_holding, out[-2000:]
    assert "is held by alice@ci" in out, out[-2000:]
    assert re.search(r"\bwaited: 0\.0\b", out), out[-2000:]
    assert results["first"][0] == 0, results["first"][1][-3000:]


ROTATE = """\
- name: Take onebox-mh2 out of Traefik's rotation or put it back (onebox_roll_phase)
  hosts: onebox-mh2
  gather_facts: false
  become: true
  tasks:
    - name: Validate the sites
      ansible.builtin.import_role:
        name: onebox.deploy.site
        tasks_from: validate
        rolespec_validate: false
      vars:
        _onebox_check_artifacts: false
    - name: Rotate
      ansible.builtin.include_role:
        name: onebox.deploy.traefik
        tasks_from: rotate
        rolespec_validate: false
"""


def test_a_host_rejoins_the_rotation_only_once_its_sites_answer_readiness(lb, hosts, sites):
    """mh2 leaves the rotation; its blog stops and comes back 4 s later. The rotation's after phase puts mh2
    back only once blog answers /readyz at the address Traefik dials (Traefik counts a new server healthy
    before its first check, traefik#4544): it reappears in Traefik's API after blog's first 200, not before."""
    playbook = os.path.join(tempfile.mkdtemp(prefix="onebox-rotate-"), "rotate.yml")
    with open(playbook, "w") as handle:
        handle.write(ROTATE)
    rc, out, _took = run(playbook, {"onebox_roll_phase": "before"})
    assert rc == 0, out[-3000:]
    mh2 = urls(["onebox-mh2"], 8001)[0]
    mh2_ready = "http://%s:19001/readyz" % address("onebox-mh2")
    hosts["onebox-mh2"].check_output("systemctl stop blog.socket blog.service && "
                                     "(nohup sh -c 'sleep 4; systemctl start blog.service' >/dev/null 2>&1 &)")
    with Sampler(lb, ready_url=mh2_ready) as sampler:
        began = time.monotonic()
        rc, out, took = run(playbook, {"onebox_roll_phase": "after"})
    ready_at = sampler.ready_at
    assert rc == 0, out[-3000:]
    back = [t for t, now in sampler.samples if mh2 in (now.get("onebox-blog@file") or [])]
    assert ready_at and back, (ready_at, sampler.phases("onebox-blog@file"))
    print("\nmh2's blog ready %.2f s after the after phase began; mh2 back in Traefik's rotation after %.2f s "
          "(the phase took %.1f s)" % (ready_at[0] - began, back[0] - began, took))
    assert back[0] >= ready_at[0], (back[0] - began, ready_at[0] - began)
    assert sorted(x["url"] for x in json.loads(lb.check_output(
        "curl -fsS --max-time 5 %s/api/http/services/onebox-blog@file" % API))["loadBalancer"]["servers"]) == \
        list(urls(SITE_HOSTS, 8001))


def status_through_traefik(lb, domain):
    """(status, Retry-After) of GET / for *domain* through Traefik's port 80."""
    out = lb.check_output("curl -sS -i --max-time 5 -H 'Host: %s' http://127.0.0.1/" % domain)
    head = out.replace("\r\n", "\n").partition("\n\n")[0].splitlines()
    headers = dict((k.strip().lower(), v.strip()) for k, _s, v in (line.partition(":") for line in head[1:]))
    return int(head[0].split()[1]), headers.get("retry-after")


def test_maintenance_on_several_hosts_ends_once_every_host_is_ready_and_needs_traefik_in_the_run(lb, hosts, sites):
    """blog into maintenance for one run: Traefik answers 503 with Retry-After for it, while shop is served by
    both hosts and blog's units run on. A run limited to mh1 leaves Traefik's host out, so it cannot end it:
    refused before mh1 changes, naming blog and the field. Ending it waits for blog's readiness on each host:
    with mh2's blog stopped, the run fails naming mh2's URL and the page stays; then blog is served again."""
    current = {"onebox_sites": [dict(s, version="5.0.0") for s in sites]}
    blog = next(s for s in sites if s["name"] == "blog")
    shop = next(s for s in sites if s["name"] == "shop")
    rc, out, took = run("site.yml", current, args=["-e", "onebox_maintenance_sites=blog"])
    assert rc == 0, out[-3000:]
    assert status_through_traefik(lb, blog["domain"]) == (503, "300")
    assert set(b["host"] for b in served(lb, shop["domain"])) == set(SITE_HOSTS)
    for host in hosts.values():
        assert host.service("blog.service").is_running
    print("\nmaintenance on over two hosts: %.1f s" % took)

    # Traefik's host left out by --limit: the run would end blog's maintenance and cannot.
    rc, out, took = run("site.yml", current, args=["--limit", "onebox-mh1"])
    assert rc != 0
    assert "site blog: field 'maintenance': this run ends its maintenance, but writes no Traefik dynamic file on " \
           "onebox-mhlb, where Traefik routes blog to the maintenance page now" in " ".join(out.split()), out[-3000:]
    assert "TASK [onebox.deploy.traefik : Fail when this run would change maintenance mode where it writes no " \
           "dynamic file]" in out
    assert re.search(r"onebox-mh1 +: ok=\d+ +changed=0 ", out), out[-2000:]
    assert status_through_traefik(lb, blog["domain"])[0] == 503
    print("refused with Traefik's host left out: %.1f s" % took)

    # mh2's blog not ready: the run fails naming mh2's readiness URL, and Traefik keeps the page.
    hosts["onebox-mh2"].check_output("systemctl stop blog.socket blog.service")
    try:
        rc, out, took = run("site.yml", dict(current, onebox_traefik_rejoin_timeout=2), args=["--tags", "onebox_traefik"])
        assert rc != 0
        assert "site blog: field 'maintenance': its maintenance ends in this run, but http://%s:19001/readyz did not " \
               "answer 200 within 2 s" % address("onebox-mh2") in " ".join(out.split()), out[-3000:]
        assert status_through_traefik(lb, blog["domain"])[0] == 503
    finally:
        hosts["onebox-mh2"].check_output("systemctl start blog.socket blog.service")
    print("refused while mh2's blog was not ready: %.1f s" % took)

    rc, out, took = run("site.yml", current)
    assert rc == 0, out[-3000:]
    assert status_through_traefik(lb, blog["domain"])[0] == 200
    assert set(b["host"] for b in served(lb, blog["domain"])) == set(SITE_HOSTS)
    print("maintenance off over two hosts: %.1f s" % took)


def test_zz_summary():
    print_table("requests through Traefik during multi-host deploys", RESULTS,
                ["case", "site", "requests", "failed", "non_2xx", "max_ms"])
