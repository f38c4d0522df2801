"""Shared fixtures of the Molecule testinfra suites.

Tests talk to the scenario's container straight through `podman exec`
(testinfra's podman backend), and every failing test prints the journal of the
site units (and Traefik's journal and API where it runs) so a red run explains
itself.
"""

import difflib
import fcntl
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest
import testinfra
import yaml

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "default")
CONTAINER = "onebox-" + SCENARIO
PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY",
                         os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))


def _molecule_configs():
    for path in (os.path.join(PROJECT, ".config", "molecule", "config.yml"),
                 os.path.join(PROJECT, "molecule", SCENARIO, "molecule.yml")):
        with open(path) as handle:
            yield yaml.safe_load(handle)


def _expand(value):
    """Molecule's ${MOLECULE_PROJECT_DIRECTORY} and ${MOLECULE_SCENARIO_NAME} in a string."""
    if not isinstance(value, str):
        return value
    return value.replace("${MOLECULE_PROJECT_DIRECTORY}", PROJECT).replace("${MOLECULE_SCENARIO_NAME}", SCENARIO)


def scenario_vars():
    """The group vars (all, then onebox) of the running scenario, from molecule.yml and the base config."""
    merged = {}
    for group in ("all", "onebox"):
        for data in _molecule_configs():
            merged.update(data.get("provisioner", {}).get("inventory", {})
                          .get("group_vars", {}).get(group, {}))
    merged["onebox_artifact_base"] = PROJECT
    return merged


def scenario_containers():
    """The containers of the running scenario (its platforms, else the base config's one)."""
    names = []
    for data in _molecule_configs():
        if data.get("platforms"):
            names = [_expand(p["name"]) for p in data["platforms"]]
    return names or [CONTAINER]


def connection_vars():
    """How the scenario's playbooks reach the container: its host_vars (SSH as
    a sudo user) or else the base config's Podman connection."""
    out = {"ansible_connection": "containers.podman.podman", "ansible_python_interpreter": "/usr/bin/python3"}
    for data in _molecule_configs():
        host_vars = dict((_expand(k), v) for k, v in data.get("provisioner", {}).get("inventory", {})
                         .get("host_vars", {}).items()).get(CONTAINER, {})
        out.update((k, _expand(v)) for k, v in host_vars.items())
    if "{{" in str(out.get("ansible_host", "")):
        # The scenario's address lookup (podman inspect of inventory_hostname), resolved once here:
        # as a template, Ansible ran it for every task of a run (40 times in a deploy of 3 sites),
        # and under another inventory name (alias_vars) it would name no container.
        out["ansible_host"] = container_address()
    return out


@pytest.fixture(scope="session")
def host():
    return testinfra.get_host("podman://" + CONTAINER)


@pytest.fixture(scope="session")
def onebox_vars():
    return scenario_vars()


@pytest.fixture(scope="session")
def sites(onebox_vars):
    return onebox_vars["onebox_sites"]


def container_address():
    """The container's address on the scenario's network (its only one)."""
    info = json.loads(subprocess.check_output(["podman", "inspect", CONTAINER]))[0]
    return next(iter(info["NetworkSettings"]["Networks"].values()))["IPAddress"]


def alias_vars(host_vars):
    """Inventory variables of another name for the container: its connection and
    address (connection_vars; over Podman, the container's name), and *host_vars*."""
    conn = connection_vars()
    if conn["ansible_connection"] != "ssh":
        conn["ansible_host"] = CONTAINER
    return dict(conn, **host_vars)


def run_playbook(extra_vars, playbook="site.yml", args=(), drop=(), unset_env=(), aliases=None):
    """Run one of the collection's playbooks against the container, connected
    the way the scenario connects (SSH and sudo, or Podman); return (rc, output).
    *drop* names scenario variables to leave out of the inventory, *unset_env*
    environment variables to leave out of the run's environment. With
    *aliases* ({name: host_vars}), the inventory holds, instead of the
    container's own name, one host per alias, each the container itself."""
    group_vars = dict((k, v) for k, v in dict(scenario_vars(), **extra_vars).items() if k not in drop)
    hosts = {CONTAINER: connection_vars()}
    if aliases is not None:
        hosts = dict((name, alias_vars(host_vars)) for name, host_vars in aliases.items())
    inventory = {"onebox": {"hosts": hosts, "vars": group_vars}}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        yaml.safe_dump(inventory, handle)
        path = handle.name
    env = dict((k, v) for k, v in dict(os.environ, ANSIBLE_PIPELINING="true").items() if k not in unset_env)
    try:
        proc = subprocess.run(
            ["ansible-playbook", "-i", path, os.path.join(PROJECT, "playbooks", playbook)] + list(args),
            cwd=PROJECT, capture_output=True, text=True, check=False, env=env)
    finally:
        os.unlink(path)
    return proc.returncode, proc.stdout + proc.stderr


def failures_by_host(out):
    """{host: its `fatal: [host]: FAILED! => ...` entry, as printed and with its message decoded}.

    The result is printed as JSON on one line or, with Molecule's `callback_result_format: yaml`,
    as YAML on the indented lines under it, where a long message is folded and a quote doubled;
    the decoded message is added so that a check reads it as the module wrote it."""
    blocks, current = {}, None
    for line in out.splitlines():
        match = re.match(r"fatal: \[([^\]]+)\]: FAILED! =>(.*)$", line)
        if match:
            current = match.group(1)
            blocks[current] = [match.group(2)]
        elif current and line.startswith(" "):
            blocks[current].append(line)
        else:
            current = None
    entries = {}
    for name, lines in blocks.items():
        printed = "\n".join(lines)
        try:
            result = yaml.safe_load(textwrap.dedent("\n".join(line for line in lines if line.strip())))
        except yaml.YAMLError:
            result = None
        message = result.get("msg", "") if isinstance(result, dict) else ""
        entries[name] = "%s\n%s" % (printed, message)
    return entries


def assert_each_alias_failed(out, cases, prefix):
    """A run over one inventory alias per case (PREFIX-00, PREFIX-01, ...) failed on every alias and on
    no other host, each naming every text its case expects; *cases* are (name, ..., expected texts)."""
    failed = failures_by_host(out)
    for n, case in enumerate(cases):
        entry = failed.get("%s-%02d" % (prefix, n))
        assert entry, (case[0], out[-3000:])
        for text in case[-1]:
            assert text in entry, (case[0], text, entry)
    assert sorted(failed) == ["%s-%02d" % (prefix, n) for n in range(len(cases))], out[-3000:]


@pytest.fixture(scope="session")
def playbook():
    return run_playbook


def host_snapshot(host_):
    """Everything a deploy may touch, as text: files, units, users, unit states
    (molecule/shared/snapshot.sh, also used by the fresh-host check step)."""
    with open(os.path.join(PROJECT, "molecule", "shared", "snapshot.sh")) as handle:
        return host_.check_output(handle.read())


@pytest.fixture(scope="session")
def snapshot():
    return host_snapshot


def pytest_assertrepr_compare(op, left, right):
    """Two long texts that differ, such as host snapshots (`assert snapshot(host) == before`): the lines
    that differ, all of them, where pytest's own diff shows the first lines and hides the rest without -vv."""
    if op != "==" or not isinstance(left, str) or not isinstance(right, str) or left.count("\n") < 20:
        return None
    diff = list(difflib.unified_diff(right.splitlines(), left.splitlines(), "right", "left", lineterm="", n=0))
    return ["two texts of %d and %d lines differ in these lines (- right, + left):" % (
        left.count("\n") + 1, right.count("\n") + 1)] + diff[2:400]


# Measurements under load share the machine's load lock: `make molecule` runs
# scenarios side by side, and their loads (wrk, 5 ms between an answer and the
# next request) may overlap, but the heaviest (the restarts of default and
# trixie: 2 ms, on every site) holds it alone. Two such loads at once, or one
# beside others, on 2 cores measure each other, not the deploy.
LOAD_LOCK = os.environ.get("ONEBOX_LOAD_LOCK", os.path.join(tempfile.gettempdir(), "onebox-molecule-load.lock"))
_LOAD = {"handle": None}


def hold_machine_for_load(alone=False):
    """Take the load lock, shared (a load at 5 ms) or alone (the heaviest), waiting as long as
    another scenario's measurement needs it, unless this process holds it; released by
    release_machine_for_load, or at the end of the test."""
    if _LOAD["handle"] is not None:
        return
    handle = open(LOAD_LOCK, "a")
    began = time.monotonic()
    fcntl.flock(handle, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
    _LOAD["handle"] = handle
    if time.monotonic() - began > 1:
        print("load lock: waited %.1f s for another scenario's measurement under load" % (time.monotonic() - began))


def release_machine_for_load():
    handle, _LOAD["handle"] = _LOAD["handle"], None
    if handle is not None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


@pytest.fixture(autouse=True)
def _load_lock_ends_with_the_test():
    """A test that failed between starting and stopping its load frees the machine."""
    yield
    release_machine_for_load()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for container in scenario_containers():
        proc = subprocess.run(
            ["podman", "exec", container, "sh", "-c",
             # Every unit this collection wrote (site units and their instances), then Traefik's side.
             "units=$(grep -l 'Managed by onebox.deploy' /etc/systemd/system/*.s* 2>/dev/null "
             "| xargs -rn1 basename | sed 's/@\\.service$/@*/'); "
             "journalctl --no-pager -n 80 $(for u in $units crash*; do printf -- '-u %s ' \"$u\"; done); "
             "systemctl --no-pager status $units | head -60; "
             "if systemctl -q is-active traefik; then journalctl --no-pager -n 60 -u traefik; "
             "curl -sS --max-time 3 http://127.0.0.1:8080/api/http/services; fi"],
            capture_output=True, text=True, check=False)
        report.sections.append(("journalctl -u <sites> on %s" % container, proc.stdout + proc.stderr))


def print_table(title, rows, columns):
    widths = [max(len(str(c)), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    print("\n" + title)
    print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(w) for c, w in zip(columns, widths)))


# The exposure target of every unit the roles write (docs/units.md#sandboxing).
MAX_EXPOSURE = 2.0


def site_service_units(host_):
    """Every site service unit on the host: NAME.service, or the active instances of a template NAME@.service."""
    files = host_.check_output("grep -l '^# Managed by onebox.deploy: site ' /etc/systemd/system/*.service "
                               "2>/dev/null || true").split()
    units = []
    for path in files:
        name = os.path.basename(path)
        if name.endswith("@.service"):
            active = host_.check_output("systemctl list-units --no-legend --plain --state=active '%s*.service'"
                                        % name[:-len(".service")])
            units.extend(line.split()[0] for line in active.splitlines())
        else:
            units.append(name)
    return sorted(units)


def exposure(host_, unit):
    """``systemd-analyze security UNIT``: (overall exposure, names of the checks that add exposure)."""
    out = host_.run("systemd-analyze security --no-pager %s" % unit).stdout
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert match, out
    # A check that adds exposure ends with its share, e.g. "PrivateNetwork= ... 0.5".
    failed = [m.group(1) for m in re.finditer(r"^\S+ (\S+) .* (\d+\.\d+)$", out, re.M)]
    return float(match.group(1)), failed


def process_status(host_, unit):
    """User, no_new_privs, seccomp mode and effective capabilities of a unit's main process."""
    pid = host_.check_output("systemctl show -p MainPID --value %s" % unit)
    status = dict(line.split(":", 1) for line in host_.check_output("cat /proc/%s/status" % pid).splitlines()
                  if ":" in line)
    user = host_.check_output("ps -o user= -p %s" % pid)
    return {"user": user, "NoNewPrivs": status["NoNewPrivs"].strip(), "Seccomp": status["Seccomp"].strip(),
            "CapEff": status["CapEff"].strip()}


def public_url(site):
    listen = str(site["listen"])
    host, _, port = listen.rpartition(":")
    return "http://%s:%s/" % (host or "127.0.0.1", port)


TIMESPAN = {"us": 1e-6, "ms": 1e-3, "s": 1, "min": 60, "h": 3600}


def timespan_s(text):
    """systemd's timespan as `systemctl show` prints it ("10s", "1min 30s", "500ms") in seconds."""
    parts = re.findall(r"([\d.]+)(us|ms|s|min|h)\b", text)
    assert parts and "".join(n + u for n, u in parts) == text.replace(" ", ""), text
    return sum(float(n) * TIMESPAN[u] for n, u in parts)


def default_start_limit(host_):
    """``(DefaultStartLimitBurst, DefaultStartLimitIntervalSec in seconds)`` of the host's systemd."""
    props = dict(line.split("=", 1) for line in host_.check_output(
        "systemctl show -p DefaultStartLimitBurst -p DefaultStartLimitIntervalUSec").splitlines())
    return int(props["DefaultStartLimitBurst"]), timespan_s(props["DefaultStartLimitIntervalUSec"])


def assert_past_default_start_limit(host_, began_s, unit):
    """The restarts began at `began_s` (seconds): more of them fell into one
    DefaultStartLimitIntervalSec= window than systemd's DefaultStartLimitBurst=
    allows, so a unit with the defaults would have hit start-limit-hit; ours ran on."""
    burst, seconds = default_start_limit(host_)
    most = max(sum(1 for b in began_s if a <= b < a + seconds) for a in began_s)
    print("%s: %d starts within %g s (systemd's default start limit: %d)" % (unit, most, seconds, burst))
    assert most > burst, (unit, began_s, burst, seconds)
    assert host_.check_output("systemctl show -p StartLimitIntervalUSec --value %s" % unit) == "0", unit


def journal_events(host, since, units):
    """(time, unit, event) for systemd's Stopping/Started lines of the units since `since`."""
    out = host.check_output("journalctl --no-pager -o short-unix --since @%d %s" % (
        int(since), " ".join("-u %s" % u for u in units)))
    events = []
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 4 or not parts[2].startswith("systemd["):
            continue
        for event in ("Stopping", "Started"):
            for unit in units:
                if parts[3].startswith("%s %s" % (event, unit)):
                    events.append((float(parts[0]), unit, event))
    return events


def _wrk_log(site, timeout=None):
    return "/tmp/wrk-%s.txt" % site["name"] if timeout is None else "/tmp/wrk-%s-%ss.txt" % (site["name"], timeout)


def start_paced_load(host, sites, target=public_url, timeouts=None):
    """Start wrk on every site; returns a journal timestamp from just before.

    Paced load (each connection waits 5 ms between requests, about 1,600 req/s a
    site) so that the deploy itself still gets CPU on a 2-core machine.
    *target* gives wrk's URL (and headers) for a site: by default its public URL.
    With *timeouts* (seconds), one wrk per timeout and site, each counting as
    failed what its clients did not get within that time; else one wrk whose
    clients wait 10 s.
    """
    hold_machine_for_load()
    host.check_output("printf 'function delay()\\n  return 5\\nend\\n' > /tmp/pace.lua")
    for s in sites:
        for timeout in timeouts or [None]:
            host.check_output("nohup wrk -t1 -c8 -d900s --timeout %ss --latency -s /tmp/pace.lua %s > %s 2>&1 &"
                              % (timeout or 10, target(s), _wrk_log(s, timeout)))
    since = float(host.check_output("date +%s.%N")) - 1
    time.sleep(1)
    return since


def paced_load_results(host, sites, timeouts=None):
    """Stop wrk; its numbers (restart_under_load.parse_wrk) per site name, and
    with *timeouts* per site name and timeout."""
    sys.path.insert(0, os.path.join(PROJECT, "tests", "harness"))
    from restart_under_load import parse_wrk

    time.sleep(1)
    host.run("pkill -INT -x wrk")
    deadline = time.monotonic() + 20
    while host.run("pgrep -x wrk").rc == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    release_machine_for_load()
    if timeouts is None:
        return dict((s["name"], parse_wrk(host.file(_wrk_log(s)).content_string)) for s in sites)
    return dict((s["name"], dict((t, parse_wrk(host.file(_wrk_log(s, t)).content_string)) for t in timeouts))
                for s in sites)


def stop_paced_load(host, sites, title="deploy under load (wrk, 8 paced connections per site)"):
    """Stop wrk, print and return its numbers per site."""
    results = paced_load_results(host, sites)
    rows = []
    for s in sites:
        res = results[s["name"]]
        rows.append(dict(site=s["name"], requests=res["requests"], failed=res["failed"],
                         **{k: round(res[k] or 0, 2) for k in ("p50_ms", "p99_ms", "max_ms")}))
    print_table(title, rows, list(rows[0]))
    return rows


# Runs on the host: kill -9 of a unit's main process under load; when are its
# orphaned workers gone, and when does a new process answer?
CRASH_PY = r"""
import json, os, signal, subprocess, sys, threading, time, urllib.request
unit, url = sys.argv[1], sys.argv[2]


def show(prop):
    return subprocess.run(["systemctl", "show", "-p", prop, "--value", unit],
                          capture_output=True, text=True).stdout.strip()


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        return False


main, restarts = int(show("MainPID")), int(show("NRestarts"))
workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(main)], capture_output=True, text=True).stdout.split()]
old = set(workers) | {main}
report = {"workers": len(workers), "old_answers": 0, "errors": 0}


def watch():
    while any(alive(w) for w in workers):
        time.sleep(0.005)
    report["workers_gone_s"] = round(time.monotonic() - t0, 2)


t0 = time.monotonic()
os.kill(main, signal.SIGKILL)
watcher = threading.Thread(target=watch)
watcher.start()
while time.monotonic() - t0 < 30:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            pid = json.loads(resp.read())["pid"]
    except Exception:
        report["errors"] += 1
        time.sleep(0.01)
        continue
    if pid not in old:
        report["back_s"] = round(time.monotonic() - t0, 2)
        break
    report["old_answers"] += 1
watcher.join(30)
report["restarts"] = int(show("NRestarts")) - restarts
report["new_main_differs"] = int(show("MainPID")) not in old
json.dump(report, sys.stdout)
"""


def crash_main(host_, unit, url):
    """kill -9 of *unit*'s main process (CRASH_PY, on the host); its report."""
    host_.check_output("test -e /usr/local/bin/onebox-crash.py || cat > /usr/local/bin/onebox-crash.py "
                       "<<'ONEBOX_EOF'\n%s\nONEBOX_EOF" % CRASH_PY)
    return json.loads(host_.check_output("python3 /usr/local/bin/onebox-crash.py %s %s" % (unit, url)))
