"""Rollback scenario: failed deploys under load, the deploy lock, releases.

The tests run in file order and build on each other: blog and shop start on
1.0.0 (converge), each failed deploy must leave blog serving its previous
release, and the later tests use the releases the earlier ones installed.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
import yaml
from conftest import (CONTAINER, PROJECT, journal_events, print_table, public_url, run_playbook, scenario_vars,
                      start_paced_load, stop_paced_load)

AUDIT_LOG = "/var/log/onebox/deploy.jsonl"
LOCK = "/run/lock/onebox-deploy.lock"
RESULTS = []   # one row per failed deploy, printed by the last test


def with_blog(sites, **changes):
    return [dict(s, **changes) if s["name"] == "blog" else s for s in sites]


def served(host, site):
    body = json.loads(host.check_output("curl -fsS --max-time 5 %s" % public_url(site)))
    return body["version"]


def audit(host, site=None):
    records = [json.loads(line) for line in host.file(AUDIT_LOG).content_string.splitlines() if line.strip()]
    return [r for r in records if site is None or r.get("site") == site]


def blog(sites):
    return next(s for s in sites if s["name"] == "blog")


def test_converged_sites_record_their_release(host, sites):
    for s in sites:
        assert served(host, s) == "1.0.0"
        meta = json.loads(host.file("/srv/onebox/%s/releases/1.0.0/.onebox-release.json" % s["name"]).content_string)
        assert meta["version"] == "1.0.0" and len(meta["sha256"]) == 64
    assert not host.file(LOCK).exists
    records = audit(host)
    assert {r["site"] for r in records} == {"blog", "shop"}
    assert all(r["action"] == "deploy" and r["outcome"] == "success" and r["from_version"] is None
               for r in records), records


FAILURES = [
    # (case, version, command change, what the failure message must say)
    ("crashes at start", "2.0.0", " --crash-on-start", "crash-looping|entered the failed state"),
    ("never turns ready", "2.1.0", " --never-ready", "readiness last=status_503"),
    ("turns ready only after the timeout", "2.2.0", " --warmup 8", "not ready within 4s"),
]


@pytest.mark.parametrize("case,version,flag,expected", FAILURES, ids=[f[0] for f in FAILURES])
def test_failed_deploy_rolls_back_and_keeps_serving_under_load(host, sites, case, version, flag, expected):
    """A broken release of blog (its unit file changes too) fails the deploy, blog serves 1.0.0 again."""
    unit_before = host.file("/etc/systemd/system/blog.service").content_string
    env_before = host.file("/etc/onebox/blog.env").content_string
    shop_pid = host.check_output("systemctl show -p MainPID --value shop.service")
    broken = with_blog(sites, version=version, command=blog(sites)["command"] + flag,
                       env={"RELEASE_NOTE": version})
    since = start_paced_load(host, [blog(sites)])
    began = time.monotonic()
    rc, out = run_playbook({"onebox_sites": broken}, playbook="deploy.yml")
    took = time.monotonic() - began
    rows = stop_paced_load(host, [blog(sites)], "deploy of a release that %s (wrk, 8 paced connections)" % case)

    assert rc != 0, out[-3000:]
    assert "rolled back blog.service to 1.0.0, which is serving again" in out, out[-3000:]
    assert "blog.service did not become ready" in out, out[-3000:]
    assert any(e in out for e in expected.split("|")), out[-3000:]
    assert served(host, blog(sites)) == "1.0.0"
    assert host.file("/srv/onebox/blog/current").linked_to == "/srv/onebox/blog/releases/1.0.0"
    # the unit and environment file the failed deploy wrote are back as they were
    assert host.file("/etc/systemd/system/blog.service").content_string == unit_before
    assert host.file("/etc/onebox/blog.env").content_string == env_before
    assert host.file("/etc/onebox/blog.env").mode == 0o600
    assert flag.strip() not in host.check_output("systemctl show -p ExecStart --value blog.service")
    # shop was not part of the change and was never touched
    assert host.check_output("systemctl show -p MainPID --value shop.service") == shop_pid
    assert not host.file(LOCK).exists
    last = audit(host, "blog")[-1]
    assert last["to_version"] == version and last["from_version"] == "1.0.0", last
    assert last["outcome"] == "rolled_back" and last["rollback"]["status"] == "ready", last
    assert last["serving"] == "1.0.0"
    events = journal_events(host, since, ["blog.service"])
    RESULTS.append(dict(case=case, requests=rows[0]["requests"], failed=rows[0]["failed"],
                        max_ms=rows[0]["max_ms"], p99_ms=rows[0]["p99_ms"], restarts=len(events) // 2,
                        rollback_ready_s=last["rollback"]["time_to_ready"], playbook_s=round(took, 1),
                        probe_failed=(last.get("probe") or {}).get("failed")))
    assert rows[0]["requests"] > 500, rows
    assert rows[0]["failed"] == 0, rows


def test_failed_deploy_results(host):
    """Prints the failed-request count of every failed deploy above (wrk's own count)."""
    print_table("failed deploys of blog under load, each rolled back to 1.0.0", RESULTS,
                ["case", "requests", "failed", "p99_ms", "max_ms", "rollback_ready_s", "probe_failed", "playbook_s"])
    assert len(RESULTS) == len(FAILURES)


def test_rollback_scope_all_returns_sites_rolled_before(host, sites):
    """shop rolls first to 2.3.0 and is ready; blog (next) never turns ready; with scope all both return."""
    order = [next(s for s in sites if s["name"] == "shop"), blog(sites)]
    new = [dict(s, version="2.3.0") for s in order]
    new[1]["command"] += " --never-ready"
    rc, out = run_playbook({"onebox_sites": new, "onebox_rollback_scope": "all"}, playbook="deploy.yml")
    assert rc != 0
    assert "rolled back blog.service to 1.0.0" in out and "rolled back shop.service to 1.0.0" in out, out[-3000:]
    assert all(served(host, s) == "1.0.0" for s in sites)
    assert audit(host, "shop")[-1]["outcome"] == "rolled_back"


def _start_deploy(extra, owner):
    """Start the deploy playbook in the background; returns (Popen, log path)."""
    inventory = {"onebox": {"hosts": {CONTAINER: {}}, "vars": dict(scenario_vars(), **extra)}}
    inventory["onebox"]["vars"].update(ansible_connection="containers.podman.podman",
                                       ansible_python_interpreter="/usr/bin/python3", onebox_deploy_owner=owner)
    handle, path = tempfile.mkstemp(suffix=".yml")
    with os.fdopen(handle, "w") as out:
        yaml.safe_dump(inventory, out)
    log = path + ".log"
    proc = subprocess.Popen(["ansible-playbook", "-i", path, os.path.join(PROJECT, "playbooks", "deploy.yml")],
                            cwd=PROJECT, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def test_two_deploys_at_once_one_wins_the_other_names_the_holder(host, sites):
    new = [dict(s, version="3.0.0") for s in sites]
    runs = [_start_deploy({"onebox_sites": new}, owner) for owner in ("alice@ci", "bob@ci")]
    codes = [proc.wait(timeout=600) for proc, _ in runs]
    logs = [open(log).read() for _, log in runs]
    assert sorted(codes)[0] == 0 and sorted(codes)[1] != 0, (codes, logs)
    winner = codes.index(0)
    loser = 1 - winner
    owner = ("alice@ci", "bob@ci")[winner]
    assert "deploy lock %s is held by %s since" % (LOCK, owner) in logs[loser], logs[loser][-3000:]
    assert all(served(host, s) == "3.0.0" for s in sites)
    assert not host.file(LOCK).exists


def test_a_killed_deploy_leaves_a_lock_that_is_taken_over_after_the_ttl(host, sites, tmp_path):
    hook = tmp_path / "slow-hook.yml"
    hook.write_text("---\n- name: Wait in the hook (the test kills the deploy here)\n"
                    "  ansible.builtin.command:\n    argv: [sleep, '61']\n  changed_when: false\n")
    ttl = 20
    new = [dict(s, version="3.1.0") for s in sites]
    proc, log = _start_deploy({"onebox_sites": new, "onebox_lock_ttl": ttl,
                               "onebox_hooks": {"before_roll": [str(hook)]}}, "carol@ci")
    deadline = time.monotonic() + 300
    # '^sleep 61$' so that pgrep does not match its own `sh -c` command line
    while host.run("pgrep -f '^sleep 61$'").rc != 0:
        assert proc.poll() is None and time.monotonic() < deadline, open(log).read()[-3000:]
        time.sleep(1)
    os.killpg(proc.pid, signal.SIGKILL)     # like a Ctrl-C'd or disconnected run
    proc.wait()
    host.run("pkill -f '^sleep 61$'")
    holder = json.loads(host.file(LOCK).content_string)
    assert holder["owner"] == "carol@ci"

    rc, out = run_playbook({"onebox_sites": new, "onebox_lock_ttl": ttl, "onebox_deploy_owner": "dave@ci"},
                           playbook="deploy.yml")
    assert rc != 0 and "is held by carol@ci since" in out, out[-3000:]
    assert json.loads(host.file(LOCK).content_string)["run_id"] == holder["run_id"]

    wait = holder["heartbeat"] + ttl + 1 - float(host.check_output("date +%s.%N"))
    time.sleep(max(0, wait))
    rc, out = run_playbook({"onebox_sites": new, "onebox_lock_ttl": ttl, "onebox_deploy_owner": "dave@ci"},
                           playbook="deploy.yml")
    assert rc == 0, out[-3000:]
    assert "took over the abandoned lock of carol@ci" in out
    takeover = [r for r in audit(host) if r.get("event") == "lock_takeover"]
    assert takeover and takeover[-1]["previous_owner"] == "carol@ci" and takeover[-1]["by"] == "dave@ci"
    assert all(served(host, s) == "3.1.0" for s in sites)
    assert not host.file(LOCK).exists


def test_hooks_and_keep_releases(host, sites, tmp_path):
    """A deploy with keep 2 prunes all but the current and the previous release; hooks run in order."""
    hook = tmp_path / "record-hook.yml"
    hook.write_text("---\n- name: Record the hook point\n  ansible.builtin.shell:\n"
                    "    cmd: echo \"{{ onebox_hook_point }} {{ onebox_hook_sites | map(attribute='name') | join(',') }}"
                    " $(readlink /srv/onebox/blog/current)\" >> /tmp/hooks.log\n  changed_when: true\n")
    host.run("rm -f /tmp/hooks.log")
    rc, out = run_playbook({"onebox_sites": [dict(s, version="4.0.0") for s in sites], "onebox_keep_releases": 2,
                            "onebox_hooks": {"before_roll": [str(hook)], "after_roll": [str(hook)]}},
                           playbook="deploy.yml")
    assert rc == 0, out[-3000:]
    assert host.file("/tmp/hooks.log").content_string.splitlines() == [
        "before_roll blog,shop /srv/onebox/blog/releases/3.1.0",
        "after_roll blog,shop /srv/onebox/blog/releases/4.0.0"]
    for s in sites:
        releases = host.check_output("ls /srv/onebox/%s/releases" % s["name"]).split()
        assert releases == ["3.1.0", "4.0.0"], releases
        assert host.file("/srv/onebox/%s/shared" % s["name"]).is_directory


def test_same_version_with_other_content_is_refused_unless_forced(host, sites, snapshot, tmp_path):
    changed = tmp_path / "reference-app"
    shutil.copytree(os.path.join(PROJECT, "files", "reference-app"), str(changed))
    (changed / "NOTE").write_text("rebuilt\n")
    rebuilt = [dict(s, version="4.0.0", **({"artifact": str(changed)} if s["name"] == "blog" else {}))
               for s in sites]
    before = snapshot(host)
    rc, out = run_playbook({"onebox_sites": rebuilt}, playbook="deploy.yml")
    assert rc != 0
    assert ("site blog: field 'version': release 4.0.0 is already installed with different content" in out), out[-3000:]
    assert snapshot(host) == before
    pid = host.check_output("systemctl show -p MainPID --value blog.service")
    rc, out = run_playbook({"onebox_sites": rebuilt, "onebox_force_release": True}, playbook="deploy.yml")
    assert rc == 0, out[-3000:]
    assert host.file("/srv/onebox/blog/releases/4.0.0/NOTE").exists
    assert host.check_output("systemctl show -p MainPID --value blog.service") != pid
    assert served(host, blog(sites)) == "4.0.0"


def test_rollback_playbook_previous_and_named_release_under_load(host, sites):
    since = start_paced_load(host, sites)
    rc, out = run_playbook({"onebox_sites": [dict(s, version="4.0.0") for s in sites],
                            "onebox_rollback_sites": ["blog"]}, playbook="rollback.yml")
    rows = stop_paced_load(host, sites, "rollback playbook, blog 4.0.0 -> 3.1.0 (wrk, 8 paced connections per site)")
    assert rc == 0, out[-3000:]
    assert served(host, blog(sites)) == "3.1.0"
    assert served(host, next(s for s in sites if s["name"] == "shop")) == "4.0.0"
    assert sum(r["failed"] for r in rows) == 0, rows
    assert [u for _, u, e in journal_events(host, since, ["blog.service", "shop.service"]) if e == "Stopping"] \
        == ["blog.service"]
    last = audit(host, "blog")[-1]
    assert (last["action"], last["from_version"], last["to_version"], last["outcome"]) == \
        ("rollback", "4.0.0", "3.1.0", "success"), last

    # a pruned release cannot be named; an installed one can
    rc, out = run_playbook({"onebox_sites": sites, "onebox_rollback_sites": ["blog"],
                            "onebox_rollback_to": "1.0.0"}, playbook="rollback.yml")
    assert rc != 0 and "site blog: field 'onebox_rollback_to': release 1.0.0 is not installed " \
        "(installed: 3.1.0, 4.0.0)" in out, out[-3000:]
    rc, out = run_playbook({"onebox_sites": sites, "onebox_rollback_sites": ["blog"],
                            "onebox_rollback_to": "4.0.0"}, playbook="rollback.yml")
    assert rc == 0, out[-3000:]
    assert served(host, blog(sites)) == "4.0.0"


def test_history_playbook_lists_recent_deploys_of_a_site(host, sites):
    rc, out = run_playbook({"onebox_sites": sites, "onebox_history_site": "blog", "onebox_history_limit": 4},
                           playbook="history.yml")
    assert rc == 0, out[-3000:]
    lines = [line.strip().strip('",') for line in out.splitlines() if " rollback blog " in line
             or " deploy blog " in line]
    print("\n".join(lines))
    assert len(lines) == 4, out[-3000:]
    assert "rollback blog 3.1.0 -> 4.0.0: success" in lines[-1]
    assert not any(" shop " in line for line in lines)
