"""Every kind of failed deploy against Debian's gunicorn run plainly, and the
run's verdict however it is run.

`plain` is Debian's gunicorn 20.1 run as a user would run it, with the
collection's defaults: `/usr/bin/gunicorn --workers 2 --graceful-timeout 10
app:app`, no config file, no preload, no health port of its own (its
/livez and /readyz answer on the public socket), Type=exec, strategy restart,
ready_timeout 5 (molecule/rollback/files/plain/app.py; each release's fault
is a file in the release). `twin` is the reference app with the overlap
strategy. Each failed deploy runs under two independent wrk loads on the
site's public URL, one whose clients give up after 5 s and one whose clients
wait 30 s. Each is run a different way (--limit, -e onebox_deploy_sites,
--tags onebox_roll, ...): the exit status must say it failed every time.

Runs after test_rollback.py (file order); blog and shop are left alone (a
site missing from onebox_sites is never touched).
"""

import json
import os
import shutil
import statistics

import pytest
from conftest import (CONTAINER, PROJECT, crash_main, paced_load_results, print_table, public_url, run_playbook,
                      start_paced_load)

AUDIT_LOG = "/var/log/onebox/deploy.jsonl"
APP = os.path.join(PROJECT, "molecule", "rollback", "files", "plain")
PLAIN = dict(name="plain", listen="127.0.0.1:8101", version="p1", artifact=APP, service_type="exec",
             command="/usr/bin/gunicorn --workers 2 --graceful-timeout 10 app:app", ready_timeout=5,
             env={"APP_WARMUP": "0.8"})
TWIN = dict(name="twin", listen="127.0.0.1:8102", health_listen="127.0.0.1:19102", version="t1",
            artifact="files/reference-app", strategy="overlap", command="bin/onebox-app --warmup 0.8",
            ready_timeout=5)
TIMEOUTS = (5, 30)
ROWS = []      # one per failed deploy, printed by test_zz_summary
CRASHES = []   # kill -9 of the plain master


def audit(host, site):
    return [r for r in (json.loads(line) for line in host.file(AUDIT_LOG).content_string.splitlines() if line.strip())
            if r.get("site") == site]


def served(host, site):
    return json.loads(host.check_output("curl -fsS --max-time 10 %s" % public_url(site)))["version"]


def release(tmp_path, version, fault=None):
    """An artifact of the plain app with *fault* in it (the file FAULT)."""
    path = tmp_path / version
    shutil.copytree(APP, str(path))
    if fault:
        (path / "FAULT").write_text(fault + "\n")
    return str(path)


def deploy(extra, args=()):
    return run_playbook(dict({"onebox_sites": [PLAIN, TWIN]}, **extra), playbook="deploy.yml", args=args)


def usual_time_to_ready(host, site):
    """The site's usual time to ready: the median of its successful rolls in the audit log."""
    times = [r["time_to_ready_s"] for r in audit(host, site) if r.get("outcome") == "success"
             and r.get("time_to_ready_s")]
    assert times, "no successful roll of %s recorded" % site
    return statistics.median(times)


def test_plain_gunicorn_and_an_overlap_site_deploy_twice(host, tmp_path_factory):
    """First install, then a release each (0 failed from the probe): the sites' ready history."""
    global PLAIN, TWIN
    rc, out = deploy({})
    assert rc == 0, out[-3000:]
    tmp = tmp_path_factory.mktemp("plain")
    PLAIN = dict(PLAIN, version="p2", artifact=release(tmp, "p2"))
    TWIN = dict(TWIN, version="t2")
    rc, out = deploy({})
    assert rc == 0, out[-3000:]
    assert "0 failed" in out
    assert served(host, PLAIN) == "p2" and served(host, TWIN) == "t2"
    assert [r["outcome"] for r in audit(host, "plain")] == ["success", "success"]
    assert audit(host, "plain")[0]["from_version"] is None and audit(host, "plain")[1]["time_to_stop_s"] < 2


# (fault, what the release does, the way the run is started, the message)
RESTART_FAULTS = [
    ("exit-at-import", "workers exit at import, the master lives", "--limit", "its workers keep dying"),
    ("raise-at-import", "workers raise at import, the master exits", "-e onebox_deploy_sites",
     "crash-looping|entered the failed state|unit stopped"),
    ("slow-start", "ready after 20 s, ready_timeout 5", "plain", "not ready within 5s|never answered 200 within"),
    ("never-ready", "/readyz stays 503", "--tags onebox_roll", "readiness last=status_503"),
    ("hang-on-stop", "never ready, hangs when stopped", "plain", "readiness last=status_503|not ready within 5s"),
]


@pytest.mark.parametrize("fault,what,way,expected", RESTART_FAULTS, ids=[f[0] for f in RESTART_FAULTS])
def test_a_failed_restart_deploy_is_rolled_back_fails_the_run_and_drops_no_request_of_a_patient_client(
        host, tmp_path, fault, what, way, expected):
    previous = served(host, PLAIN)
    version = "p-" + fault
    broken = dict(PLAIN, version=version, artifact=release(tmp_path, version, fault))
    extra, args = {"onebox_sites": [broken, TWIN]}, []
    if way == "--limit":
        args = ["--limit", CONTAINER]
    elif way == "-e onebox_deploy_sites":
        extra["onebox_deploy_sites"] = "plain"
    elif way == "--tags onebox_roll":
        # install first, restart nothing; then only the roll
        rc, out = run_playbook(extra, playbook="deploy.yml", args=["--skip-tags", "onebox_roll"])
        assert rc == 0, out[-3000:]
        assert served(host, PLAIN) == previous
        args = ["--tags", "onebox_roll"]
    start_paced_load(host, [PLAIN], timeouts=TIMEOUTS)
    rc, out = run_playbook(extra, playbook="deploy.yml", args=args)
    load = paced_load_results(host, [PLAIN], timeouts=TIMEOUTS)["plain"]

    assert rc != 0, "the run of a failed deploy (%s) exited 0:\n%s" % (way, out[-3000:])
    assert "rolled back plain.service to %s, which is serving again" % previous in out, out[-3000:]
    assert any(e in out for e in expected.split("|")), out[-3000:]
    assert "ROLLBACK OF" not in out
    assert served(host, PLAIN) == previous
    record = audit(host, "plain")[-1]
    assert (record["to_version"], record["outcome"], record["serving"]) == (version, "rolled_back", previous), record
    back = record["rollback"]
    assert back["status"] == "ready" and back["version"] == previous, record
    usual = usual_time_to_ready(host, "plain")
    bound = record["time_to_stop_s"] + 2 * usual + 1
    ROWS.append(dict(
        strategy="restart", fault=fault, way=way, given_up_s=record["given_up_after_s"],
        recovered_s=back["time_to_recover"], bound_s=round(bound, 2) if "import" in fault else "",
        failed_stop_s=back["time_to_stop"], **dict(("%s (%ds)" % (key, t), load[t][key])
                                                   for t in TIMEOUTS for key in ("requests", "failed", "max_ms"))))
    print("%s (%s): given up after %.2f s, %s serving again %.2f s after the deploy's restart (the failed release "
          "stopped in %s s); usual time to ready %.2f s" % (fault, way, record["given_up_after_s"], previous,
                                                            back["time_to_recover"], back["time_to_stop"], usual))
    for timeout in TIMEOUTS:
        print("  wrk --timeout %ds: %d requests, %d failed, max %.0f ms" % (
            timeout, load[timeout]["requests"], load[timeout]["failed"], load[timeout]["max_ms"] or 0))
    # A client that waits 30 s loses nothing, whatever the fault.
    assert load[30]["requests"] > 500 and load[30]["failed"] == 0, load[30]
    if "import" in fault:
        # A broken release is given up on fast: from the old process's stop to the old release
        # ready again, at most its stop time + twice its usual time to ready + 1 s.
        assert back["time_to_recover"] <= bound, (back, usual, record)
        # A request waits in the socket's backlog from the deploy's restart until the old release
        # is ready again: a 5 s client loses nothing when that took under 4 s (a quiet machine:
        # 2.5 s); on a loaded one (a usual time to ready of 3.9 s made it 6.8 s) it may time out,
        # but nothing is ever refused or reset.
        assert load[5]["failed"] == load[5]["timeouts"], load[5]
        if back["time_to_recover"] < 4:
            assert load[5]["failed"] == 0, (load[5], back)
        else:
            print("  recovered after %.2f s, more than a 5 s client waits for: %d timed out" % (
                back["time_to_recover"], load[5]["timeouts"]))


OVERLAP_FAULTS = [
    ("crash-on-start", " --crash-on-start", "crash-looping|entered the failed state|unit stopped"),
    ("never-ready", " --never-ready", "readiness last=status_503"),
    ("slow-start", " --warmup 20", "not ready within 5s"),
]


@pytest.mark.parametrize("fault,flag,expected", OVERLAP_FAULTS, ids=[f[0] for f in OVERLAP_FAULTS])
def test_a_failed_overlap_deploy_drops_no_request_at_any_client_timeout(host, fault, flag, expected):
    """The old instance is never stopped before the new one is ready: nothing waits."""
    previous = served(host, TWIN)
    broken = dict(TWIN, version="t-" + fault, command=TWIN["command"] + flag)
    start_paced_load(host, [TWIN], timeouts=TIMEOUTS)
    rc, out = run_playbook({"onebox_sites": [PLAIN, broken]}, playbook="deploy.yml")
    load = paced_load_results(host, [TWIN], timeouts=TIMEOUTS)["twin"]
    assert rc != 0, out[-3000:]
    assert any(e in out for e in expected.split("|")), out[-3000:]
    assert served(host, TWIN) == previous
    record = audit(host, "twin")[-1]
    assert record["outcome"] == "rolled_back" and record["serving"] == previous, record
    ROWS.append(dict(strategy="overlap", fault=fault, way="plain", given_up_s=record["given_up_after_s"],
                     recovered_s=record["rollback"]["time_to_recover"], bound_s="", failed_stop_s="",
                     **dict(("%s (%ds)" % (key, t), load[t][key])
                            for t in TIMEOUTS for key in ("requests", "failed", "max_ms"))))
    for timeout in TIMEOUTS:
        assert load[timeout]["requests"] > 500 and load[timeout]["failed"] == 0, (timeout, load[timeout])


def test_check_mode_shows_the_environment_file_and_says_what_serves_and_what_would_roll(host, snapshot):
    """plain has env and no secret_env: its environment file's diff shows its lines (it showed only
    VALUE_SPECIFIED_IN_NO_LOG_PARAMETER), and the report names what serves now and what would change."""
    before = snapshot(host)
    now = served(host, PLAIN)
    changed = dict(PLAIN, version="p-check", env=dict(PLAIN["env"], LOG_LEVEL="debug"))
    rc, out = run_playbook({"onebox_sites": [changed, TWIN]}, playbook="deploy.yml", args=["--check", "--diff"])
    assert rc == 0, out[-3000:]
    assert '+LOG_LEVEL="debug"' in out and "+ONEBOX_VERSION=p-check" in out, out[-5000:]
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" not in out
    assert "%s: plain %s (check mode: would roll to p-check), twin %s" % (CONTAINER, now, served(host, TWIN)) in out, \
        out[-2000:]
    assert snapshot(host) == before


@pytest.mark.parametrize("check", [True, False], ids=["check mode", "real run"])
def test_an_absolute_command_missing_on_the_host_fails_before_anything_changes(host, snapshot, check):
    before = snapshot(host)
    missing = dict(PLAIN, version="p-missing", command="/usr/bin/gunicorn-nope --workers 2 app:app")
    rc, out = run_playbook({"onebox_sites": [missing, TWIN]}, playbook="deploy.yml",
                           args=["--check"] if check else [])
    assert rc != 0, out[-3000:]
    assert "site plain: field 'command': /usr/bin/gunicorn-nope does not exist on the host" in out, out[-3000:]
    assert snapshot(host) == before


def test_a_crashed_plain_gunicorn_master_is_back_within_restart_sec_plus_warmup_plus_2s(host):
    """kill -9 of the plain server's master under load, 3 times: orphaned workers gone at once, back soon."""
    assert host.check_output("systemctl show -p RestartUSec --value plain.service") == "1s"
    bound = 1.0 + float(PLAIN["env"]["APP_WARMUP"]) + 2
    start_paced_load(host, [PLAIN], timeouts=TIMEOUTS)
    # Each crash once the master has both its workers: /readyz answers from the first, and on a
    # loaded machine gunicorn booted the second a second later.
    both_workers = ("for i in $(seq 300); do curl -fsS -o /dev/null --max-time 2 %sreadyz && [ \"$(pgrep -c -P "
                    "\"$(systemctl show -p MainPID --value plain.service)\")\" = 2 ] && exit 0; sleep 0.1; done; "
                    "echo 'plain: not ready with 2 workers within 30 s' >&2; exit 1" % public_url(PLAIN))
    for _ in range(3):
        host.check_output(both_workers)
        CRASHES.append(crash_main(host, "plain.service", public_url(PLAIN)))
    host.check_output(both_workers)
    load = paced_load_results(host, [PLAIN], timeouts=TIMEOUTS)["plain"]
    for r in CRASHES:
        print("kill -9 of the plain gunicorn master: %(workers)d workers gone after %(workers_gone_s)s s; a new "
              "master answered after %(back_s)s s (bound %(bound).1f s)" % dict(r, bound=bound))
    for timeout in TIMEOUTS:
        print("  wrk --timeout %ds: %d requests, %d failed (%d timeouts), max %.0f ms" % (
            timeout, load[timeout]["requests"], load[timeout]["failed"], load[timeout]["timeouts"],
            load[timeout]["max_ms"] or 0))
    for r in CRASHES:
        assert r["restarts"] == 1 and r["new_main_differs"] and r["workers"] == 2, r
        assert r["workers_gone_s"] < 0.5, r
        assert r["back_s"] < bound, r
    assert load[30]["timeouts"] == 0, load[30]


def test_a_release_slower_than_usual_but_healthy_is_waited_for(host, tmp_path):
    """A start about three times the usual (a 3 s warm-up, no health port answering meanwhile) is not
    taken for a crash: it comes ready within the ready timeout and the deploy succeeds."""
    slower = dict(PLAIN, version="p3", artifact=release(tmp_path, "p3", "slower"))
    start_paced_load(host, [PLAIN], timeouts=TIMEOUTS)
    rc, out = run_playbook({"onebox_sites": [slower, TWIN]}, playbook="deploy.yml")
    load = paced_load_results(host, [PLAIN], timeouts=TIMEOUTS)["plain"]
    assert rc == 0, out[-3000:]
    record = audit(host, "plain")[-1]
    assert record["outcome"] == "success" and record["time_to_ready_s"] >= 3, record
    assert served(host, PLAIN) == "p3" and load[30]["failed"] == 0, load


def test_zz_summary():
    columns = ["strategy", "fault", "way", "given_up_s", "recovered_s", "bound_s", "failed_stop_s"] + \
        ["%s (%ds)" % (key, t) for t in TIMEOUTS for key in ("requests", "failed", "max_ms")]
    print_table("failed deploys: plain gunicorn (restart) and the reference app (overlap), each under wrk with "
                "5 s and 30 s client timeouts", ROWS, columns)
    assert len(ROWS) == len(RESTART_FAULTS) + len(OVERLAP_FAULTS)
    assert len(CRASHES) == 3
