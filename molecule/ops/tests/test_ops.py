"""Day-two operations on two reference-app sites with a secret each
(docs/operations.md). The tests run in file order and build on each other:

1. status on a fresh host: every site listed, nothing served, nothing changed;
2. the first deploy, then status: one table, each site's `current`, units,
   since, restarts, memory, the last deploy of the audit log, /readyz 200;
   the host unchanged by it, no secret in its output;
3. a stopped service is not started by status (no request reaches its socket);
4. the JSON output holds the same as the table;
5. a format it does not know is rejected before the host is read;
6. a command run once: as the site's user, in its sandbox, with its
   environment and secret, in `current`; it writes to shared/; its output and
   exit status printed; the audit record holds the command with the secret
   masked; no secret in the journal, the audit log or the output;
7. a relative command resolves inside the release;
8. a failing command fails the run, is recorded, and releases the lock;
9. while a command runs, it holds the deploy lock: a deploy fails at once
   naming the holder;
10. bad input (an unknown site, '..', no command, an unquoted -e value) is
    rejected before the host changes, naming the field;
11. timers: a job fired by its timer (every 20 s) runs as blog, in its
    sandbox, with its environment and secret (a hash of it in shared/), in
    current; a deploy during a run waits for it (the job ends with status 0 on
    its release, no second copy starts, blog restarts after it); bad timers
    are rejected before the host changes; a job dropped from the list and the
    jobs of a removed site are stopped, disabled and deleted, and a unit we did
    not write is left alone; a run the timer starts while the deploy lock is
    held waits for its release.
"""

import copy
import hashlib
import json
import re
import threading
import time

import pytest
from conftest import print_table, run_playbook, scenario_vars

AUDIT_LOG = "/var/log/onebox/deploy.jsonl"
SECRETS = ("onebox-ops-secret-7b1e", "onebox-ops-secret-c40a")
FACTS = {}


@pytest.fixture(autouse=True)
def json_results(monkeypatch):
    """Task results as JSON (the scenario's ansible.cfg says YAML), so the tests read them back."""
    monkeypatch.setenv("ANSIBLE_CALLBACK_RESULT_FORMAT", "json")


def task_result(out, task):
    """The result the default callback printed for *task* (its first host)."""
    start = out.index("TASK [%s]" % task) if "TASK [%s]" % task in out else out.index(task)
    arrow = out.index("=> {", start)
    return json.JSONDecoder().raw_decode(out[arrow + 3:])[0]


def status(fmt="table"):
    rc, out = run_playbook({"onebox_status_format": fmt}, playbook="status.yml")
    assert rc == 0, out[-3000:]
    for secret in SECRETS:
        assert secret not in out
    return task_result(out, "onebox.deploy.site : Show the status of the sites")["msg"], out


def audit(host):
    return [json.loads(line) for line in host.file(AUDIT_LOG).content_string.splitlines() if line.strip()]


def test_status_of_a_fresh_host_lists_the_sites_and_changes_nothing(host, snapshot):
    before = snapshot(host)
    table, out = status()
    print("\n".join(table))
    assert "changed=0" in out
    assert table[0] == "onebox-ops: 2 site(s)"
    for line, name in zip(table[2:], ("blog", "shop")):
        cells = line.split()
        assert cells[0] == name and cells[2] == "-", line
        assert line.endswith("not asked (no process runs)"), line
    assert snapshot(host) == before


def test_status_after_a_deploy_shows_release_units_memory_last_deploy_and_readyz(host, snapshot):
    rc, out = run_playbook({}, playbook="deploy.yml")
    assert rc == 0, out[-3000:]
    before = snapshot(host)
    started = time.monotonic()
    table, out = status()
    FACTS["status_s"] = round(time.monotonic() - started, 1)
    print("\n".join(table))
    assert snapshot(host) == before, "status changed the host"
    assert "changed=0" in out
    header = table[1]
    columns = ["site", "release", "current", "units", "since", "restarts", "memory", "last deploy", "readyz"]
    assert [header.index(c) for c in columns] == sorted(header.index(c) for c in columns), header
    records = audit(host)
    for line, (name, version) in zip(table[2:], (("blog", "1.0.0"), ("shop", "2.0.0"))):
        pid = host.check_output("systemctl show -p MainPID --value %s.service" % name)
        since = host.check_output("systemctl show -p ActiveEnterTimestamp --value %s.service" % name)
        last = [r for r in records if r.get("site") == name][-1]
        assert line.split()[:3] == [name, version, version], line
        assert "%s.socket running, %s.service running" % (name, name) in line, line
        assert since in line, (since, line)
        assert "%s deploy (first) -> %s success by %s" % (last["time"], version, last["by"]) in line, line
        assert " 200 in " in line, line
        rss_kib = int(host.check_output("awk '/^VmRSS/ {print $2}' /proc/%s/status" % pid))
        memory = float(line.split(" MiB")[0].split()[-1])
        assert abs(memory * 1024 - rss_kib) < 0.2 * rss_kib + 2048, (memory, rss_kib, line)
    print("status took %s s for 2 sites" % FACTS["status_s"])


def test_status_does_not_start_a_stopped_service(host):
    host.check_output("systemctl stop shop.service")
    try:
        table, _out = status()
        print("\n".join(table))
        shop = [line for line in table if line.startswith("shop ")][0]
        assert "shop.service dead" in shop and shop.endswith("not asked (no process runs)"), shop
        assert host.check_output("systemctl show -p ActiveState --value shop.service") == "inactive"
    finally:
        host.check_output("systemctl start shop.service")


def test_status_as_json_holds_what_the_table_shows(host):
    table, _out = status()
    data, _out = status("json")
    assert data["host"] == "onebox-ops"
    rows = []
    for site, line in zip(data["sites"], table[2:]):
        assert line.split()[:3] == [site["site"], site["release"], site["current"]]
        assert site["since"] in line and site["last_deploy"]["time"] in line
        assert [u["unit"] for u in site["units"]] == ["%s.socket" % site["site"], "%s.service" % site["site"]]
        answer = site["readyz"]["%s.service" % site["site"]]
        assert answer["result"] == 200
        rows.append(dict(site=site["site"], current=site["current"], since=site["since"],
                         restarts=site["restarts"], memory_bytes=site["memory_bytes"],
                         readyz="%s in %s ms" % (answer["result"], answer["ms"])))
    print_table("status as JSON", rows, list(rows[0]))


def test_status_rejects_an_unknown_format_naming_it():
    rc, out = run_playbook({"onebox_status_format": "yaml"}, playbook="status.yml")
    assert rc != 0
    assert "onebox_status_format must be table or json, got \"yaml\"" in out, out[-2000:]
    assert "Read the state of every site" not in out


# --------------------------------------------------------------------------
# onebox.deploy.run
# --------------------------------------------------------------------------

# A shell script (absolute /bin/sh: no '..', no relative path) that reports
# what it sees; it names blog's secret to compare it, so the command itself
# carries a secret the record and the output must mask.
PROBE = ("/bin/sh -c 'echo user=$(id -un); echo cwd=$(pwd -P); echo level=$LOG_LEVEL; echo version=$ONEBOX_VERSION; "
         "[ \"$BLOG_KEY\" = onebox-ops-secret-7b1e ] && echo secret=seen; [ -z \"$SHOP_TOKEN\" ] && echo other=unseen; "
         "grep -E \"^(NoNewPrivs|Seccomp):\" /proc/self/status | tr -d \"\\t\"; "
         "echo ran >> /srv/onebox/blog/shared/ran-once && echo shared=written; "
         "touch /srv/onebox/blog/current/x 2>/dev/null || echo release=read-only; "
         "touch /etc/onebox-x 2>/dev/null || echo etc=read-only'")


def run(command, site="blog", args=()):
    return run_playbook({"onebox_run_site": site, "onebox_run_command": command}, playbook="run.yml", args=args)


def run_output(out):
    return task_result(out, "onebox.deploy.site : Show the command's output and exit status")["msg"]


def runs(host):
    return [r for r in audit(host) if r.get("action") == "run"]


def test_run_once_in_the_sites_environment_sandbox_and_current(host):
    since = host.check_output("date +%s")
    rc, out = run(PROBE)
    assert rc == 0, out[-3000:]
    lines = run_output(out)
    print("\n".join(lines))
    assert lines[0].startswith("blog 1.0.0: /bin/sh -c ") and lines[0].endswith(" s")
    assert " exited with status 0 after " in lines[0]
    seen = [line.strip() for line in lines[1:]]
    for expected in ("user=blog", "cwd=/srv/onebox/blog/releases/1.0.0", "level=info", "version=1.0.0",
                     "secret=seen", "other=unseen", "NoNewPrivs:1", "Seccomp:2", "shared=written",
                     "release=read-only", "etc=read-only"):
        assert expected in seen, (expected, seen)
    assert host.file("/srv/onebox/blog/shared/ran-once").user == "blog"
    record = runs(host)[-1]
    print(record)
    assert record["site"] == "blog" and record["exit_status"] == 0 and record["outcome"] == "success"
    assert record["release"] == "1.0.0" and "\"$BLOG_KEY\" = ******** ]" in record["command"]
    journal = host.check_output("journalctl --no-pager --since @%s" % since)
    assert "onebox run for site blog" in journal
    for secret in SECRETS:
        assert secret not in out and secret not in journal
        assert secret not in host.file(AUDIT_LOG).content_string
    assert host.run("systemctl list-units --all --no-legend 'onebox-run-*'").stdout.strip() == ""


def test_run_a_relative_command_inside_the_release(host):
    rc, out = run("bin/onebox-app --help")
    assert rc == 0, out[-3000:]
    lines = run_output(out)
    assert lines[0].startswith("blog 1.0.0: bin/onebox-app --help exited with status 0")
    assert any("usage: onebox-app" in line for line in lines), lines


def test_a_failing_command_fails_the_run_is_recorded_and_releases_the_lock(host):
    rc, out = run("/bin/sh -c 'echo before; echo oops >&2; exit 3'", site="shop")
    assert rc != 0
    lines = run_output(out)
    print("\n".join(lines))
    assert lines == ["shop 2.0.0: /bin/sh -c 'echo before; echo oops >&2; exit 3' exited with status 3 after %s s"
                     % runs(host)[-1]["seconds"], "stdout:", "  before", "stderr:", "  oops"]
    assert "Fail when the command failed" in out
    record = runs(host)[-1]
    assert record["site"] == "shop" and record["exit_status"] == 3 and record["outcome"] == "failed"
    assert not host.file("/run/lock/onebox-deploy.lock").exists
    rc, out = run("/bin/true", site="shop")
    assert rc == 0, out[-3000:]
    rc, out = run_playbook({"onebox_history_site": "shop"}, playbook="history.yml")
    assert rc == 0, out[-3000:]
    history = task_result(out, "onebox.deploy.site : Show the recent deploys and rollbacks")["msg"]
    print("\n".join(history))
    assert history[-2].endswith("run shop 2.0.0: /bin/sh -c 'echo before; echo oops >&2; exit 3' exited with status 3 "
                                "after %s s: failed, by %s (run %s)" % (record["seconds"], record["by"],
                                                                       record["run_id"])), history
    assert " run shop 2.0.0: /bin/true exited with status 0 after " in history[-1], history


def test_a_running_command_holds_the_deploy_lock(host):
    result = {}

    def slow():
        result["rc"], result["out"] = run("/bin/sleep 8")

    thread = threading.Thread(target=slow)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if host.run("systemctl list-units --no-legend 'onebox-run-blog-*'").stdout.strip():
                break
            time.sleep(0.2)
        else:
            pytest.fail("the command never started: %s" % result)
        assert host.file("/run/lock/onebox-deploy.lock").exists
        rc, out = run_playbook({}, playbook="deploy.yml")
        assert rc != 0
        assert "deploy lock /run/lock/onebox-deploy.lock is held by" in out, out[-2000:]
    finally:
        thread.join(60)
    assert result["rc"] == 0, result["out"][-2000:]
    assert runs(host)[-1]["command"] == "/bin/sleep 8" and runs(host)[-1]["seconds"] >= 8


@pytest.mark.parametrize("site,command,args,error", [
    ("nope", "/bin/true", (), "onebox_run_site names unknown sites: nope (known: blog, shop)"),
    ("blog", "bin/../../../../usr/bin/id", (),
     "onebox_run_command: the argument 'bin/../../../../usr/bin/id' has a '..' path part"),
    ("blog", "", (), "onebox_run_command is required"),
    ("blog", "/bin/true", ("-e", "onebox_run_command=/bin/echo unquoted"),
     "onebox_run_command: -e key=value ends a value at a space, and 'unquoted' was left over"),
])
def test_run_rejects_bad_input_before_the_host_changes(host, snapshot, site, command, args, error):
    before = snapshot(host)
    rc, out = run(command, site=site, args=args)
    assert rc != 0
    assert error in out, out[-2000:]
    assert "Take the deploy lock" not in out
    assert snapshot(host) == before


# --------------------------------------------------------------------------
# timers: scheduled jobs per site
# --------------------------------------------------------------------------

SHARED = "/srv/onebox/blog/shared"
# The job the tests schedule every 20 s. Fired by its timer only (the tests
# never start it): it notes a second copy of itself (a pid file whose process
# still runs), logs what it sees, writes the SHA-256 of blog's secret (never
# the secret), and runs on while the test holds it (shared/hold), 1200 polls of 0.1 s at most
# (2 to 3 minutes on a busy machine, inside its 300 s timeout).
JOB = ("/bin/sh -c 'S=%s; if [ -e $S/job.pid ] && kill -0 $(cat $S/job.pid) 2>/dev/null; then echo overlap >> "
       "$S/job.overlap; fi; echo $$ > $S/job.pid; echo start $$ $(date +%%s.%%N) user=$(id -un) cwd=$(pwd -P) "
       "version=$ONEBOX_VERSION level=$LOG_LEVEL job=$ONEBOX_JOB nnp=$(grep ^NoNewPrivs: /proc/self/status | tr -d "
       "\"\\t\") >> $S/job.log; printf %%s \"$BLOG_KEY\" | sha256sum | cut -d\" \" -f1 > $S/job-secret.sha256; n=0; "
       "while [ -e $S/hold ] && [ $n -lt 1200 ]; do sleep 0.1; n=$((n+1)); done; echo end $$ $(date +%%s.%%N) >> "
       "$S/job.log; rm -f $S/job.pid'" % SHARED)
TICK = {"name": "tick", "on_calendar": "*:*:0/20", "command": JOB, "timeout": 300}


def with_blog(**fields):
    """The scenario's sites with blog's fields replaced."""
    out = []
    for site in copy.deepcopy(scenario_vars()["onebox_sites"]):
        if site["name"] == "blog":
            site.update(fields)
        out.append(site)
    return out


def job_log(host):
    text = host.run("cat %s/job.log" % SHARED).stdout
    return [line.split() for line in text.splitlines() if line.strip()]


def unit_props(host, unit, *props):
    out = host.check_output("systemctl show %s %s" % (" ".join("-p " + p for p in props), unit))
    return dict(line.split("=", 1) for line in out.splitlines())


def monotonic_s(text):
    """A monotonic time as `systemctl show` prints it ("2d 10h 55min 36.717914s") in seconds."""
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1, "min": 60, "h": 3600, "d": 86400, "w": 604800}
    parts = re.findall(r"([\d.]+)(us|ms|s|min|h|d|w)\b", text)
    assert parts and "".join(n + u for n, u in parts) == text.replace(" ", ""), text
    return sum(float(n) * scale[u] for n, u in parts)


def wait_for(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail("timed out after %ss waiting for %s" % (timeout, what))


def test_a_job_fired_by_its_timer_runs_in_the_sites_environment_and_writes_shared(host):
    since = host.check_output("date +%s")
    host.run("rm -f %s/job.log %s/job-secret.sha256" % (SHARED, SHARED))
    rc, out = run_playbook({"onebox_sites": with_blog(timers=[TICK])}, playbook="deploy.yml")
    assert rc == 0, out[-3000:]
    deployed = float(host.check_output("date +%s.%N"))
    assert host.file("/etc/systemd/system/blog_tick.timer").contains("Managed by onebox.deploy")
    assert host.check_output("systemctl is-enabled blog_tick.timer") == "enabled"
    # The next elapse of */20 s is at most 20 s away, and AccuracySec=1s; 60 s for a busy machine.
    starts = wait_for(lambda: [line for line in job_log(host) if line[0] == "start"] and
                      [line for line in job_log(host) if line[0] == "end"], 60, "a run of blog_tick")
    run = unit_props(host, "blog_tick.service", "Result", "ExecMainStatus", "ExecMainStartTimestampMonotonic",
                     "ExecMainExitTimestampMonotonic", "InactiveExitTimestampMonotonic", "NRestarts")
    timer = unit_props(host, "blog_tick.timer", "LastTriggerUSecMonotonic", "ActiveState")
    line = dict(item.split("=", 1) for item in job_log(host)[0][3:])
    print("first run %.1f s after the deploy ended, took %.3f s: %s" % (
        float(job_log(host)[0][2]) - deployed,
        (int(run["ExecMainExitTimestampMonotonic"]) - int(run["ExecMainStartTimestampMonotonic"])) / 1e6, line))
    assert starts
    assert run["Result"] == "success" and run["ExecMainStatus"] == "0", run
    # Started by the timer: its last trigger is when the run's unit started (it may then have waited for the
    # deploy's lock before its command started).
    assert abs(monotonic_s(timer["LastTriggerUSecMonotonic"]) - int(run["InactiveExitTimestampMonotonic"]) / 1e6) < 1, (
        timer, run)
    assert line == {"user": "blog", "cwd": "/srv/onebox/blog/releases/1.0.0", "version": "1.0.0", "level": "info",
                    "job": "tick", "nnp": "NoNewPrivs:1"}, line
    secret_hash = host.check_output("cat %s/job-secret.sha256" % SHARED)
    assert secret_hash == hashlib.sha256(SECRETS[0].encode()).hexdigest(), "the job did not see BLOG_KEY"
    assert host.file("%s/job.log" % SHARED).user == "blog"
    assert host.file("%s/job.log" % SHARED).mode == 0o640
    journal = host.check_output("journalctl --no-pager --since @%s" % since)
    for secret in SECRETS:
        assert secret not in out and secret not in journal
    for path in ("/etc/systemd/system/blog_tick.service", "/etc/systemd/system/blog_tick.timer"):
        assert host.file(path).mode == 0o644 and SECRETS[0] not in host.file(path).content_string
    # The status (of the same inventory) lists the job's units after the site's own.
    rc, out = run_playbook({"onebox_sites": with_blog(timers=[TICK])}, playbook="status.yml")
    assert rc == 0, out[-3000:]
    table = task_result(out, "onebox.deploy.site : Show the status of the sites")["msg"]
    blog = [row for row in table if row.startswith("blog ")][0]
    print("\n".join(table))
    assert "blog.socket running, blog.service running, blog_tick.timer waiting, blog_tick.service " in blog, blog


def test_a_deploy_during_a_run_waits_for_it_and_starts_no_second_copy(host):
    """The roll waits for the running job before it switches blog: the job ends
    on its release (1.0.0) with status 0, no second copy starts, and blog
    restarts on 1.0.1 only after the job ended."""
    host.check_output("touch %s/hold && rm -f %s/job.log %s/job.overlap" % (SHARED, SHARED, SHARED))
    try:
        wait_for(lambda: host.run("systemctl is-active blog_tick.service").stdout.strip() == "activating", 60,
                 "a run of blog_tick that the test holds")
        pid = host.check_output("systemctl show -p MainPID --value blog_tick.service")
        result = {}

        def deploy():
            result["began"] = time.monotonic()
            result["rc"], result["out"] = run_playbook(
                {"onebox_sites": with_blog(version="1.0.1", timers=[TICK])}, playbook="deploy.yml", args=("-v",))
            result["ended"] = time.monotonic()

        thread = threading.Thread(target=deploy)
        thread.start()
        # The deploy renews its lock right before the roll, after blog's new files: wait for that, then give
        # the roll 8 s to begin (about 1-2 s measured; generous, as other scenarios may load the machine).
        wait_for(lambda: host.file("/etc/onebox/blog.env").contains("ONEBOX_VERSION=1.0.1") or not thread.is_alive(),
                 120, "the deploy to install blog's files")
        renewed = ("test $(stat -c %.9Y /run/lock/onebox-deploy.lock | tr -d .) -gt "
                   "$(stat -c %.9Y /etc/onebox/blog.env | tr -d .)")
        wait_for(lambda: host.run(renewed).rc == 0 or not thread.is_alive(), 120,
                 "the deploy to renew its lock before the roll")
        time.sleep(8)
        assert thread.is_alive(), result.get("out", "")[-3000:]
        assert host.check_output("readlink /srv/onebox/blog/current").endswith("1.0.0")
        assert host.check_output("systemctl show -p MainPID --value blog_tick.service") == pid
        held_for = time.monotonic() - result["began"]
    finally:
        host.check_output("rm -f %s/hold" % SHARED)
    thread.join(300)
    assert result["rc"] == 0, result["out"][-3000:]
    lines = job_log(host)
    ended = [float(line[2]) for line in lines if line[0] == "end" and line[1] == pid]
    assert ended, lines
    run = unit_props(host, "blog_tick.service", "Result", "ExecMainStatus", "NRestarts")
    assert run["Result"] == "success" and run["ExecMainStatus"] == "0", run
    started = [line for line in lines if line[0] == "start"]
    assert started[0][1] == pid and "cwd=/srv/onebox/blog/releases/1.0.0" in started[0], started
    assert not host.file("%s/job.overlap" % SHARED).exists, "a second copy of the job ran"
    # systemd's own account of the held run: one start, a clean finish, never stopped or killed.
    journal = host.check_output("journalctl --no-pager -o cat -u blog_tick.service --since @%d"
                                % (int(float(started[0][2])) - 1))
    lines = journal.splitlines()
    held = lines[:[i for i, line in enumerate(lines) if line.startswith("Finished blog_tick.service")][0] + 1]
    print("\n".join(held))
    assert len([line for line in held if line.startswith("Starting blog_tick.service")]) == 1, journal
    for word in ("Stopping", "Failed", "Killing", "timed out"):
        assert word not in "\n".join(held), journal
    # blog stopped (the roll) only after the job ended.
    stopping = host.check_output(
        "journalctl --no-pager -o short-unix -u blog.service --since @%d | awk '/Stopping/ {print $1}' | tail -1"
        % int(ended[0] - 60))
    assert stopping and float(stopping) > ended[0], (stopping, ended)
    assert host.check_output("readlink /srv/onebox/blog/current").endswith("1.0.1")
    roll = task_result(result["out"], "onebox.deploy.site : Restart changed sites one at a time")
    waited = [r.get("jobs_waited") for r in roll["results"] if r["name"] == "blog.service"][0]
    print("deploy during a run: held the job %.1f s into the deploy; the roll waited %s s for it; job ended %.2f s "
          "before blog stopped; deploy took %.1f s" % (held_for, waited["blog_tick.service"],
                                                        float(stopping) - ended[0], result["ended"] - result["began"]))
    assert waited["blog_tick.service"] > 0, waited  # the job ran when the roll reached blog
    # The next run, fired by the timer, runs the new release.
    wait_for(lambda: any("cwd=/srv/onebox/blog/releases/1.0.1" in line for line in job_log(host)), 60,
             "a run on 1.0.1")
    starts = [line for line in job_log(host) if line[0] == "start"]
    ends = [line for line in job_log(host) if line[0] == "end"]
    assert len(starts) - len(ends) in (0, 1), (starts, ends)
    assert not host.file("%s/job.overlap" % SHARED).exists


def test_a_run_the_timer_starts_while_the_deploy_lock_is_held_waits_for_it(host):
    """onebox.deploy.run holds the deploy lock (as a deploy does) for 30 s: the
    run the timer starts meanwhile waits before its command, then runs."""
    host.check_output("rm -f %s/job.log" % SHARED)
    # The timer fires at every 20-second mark. The run takes the lock a few seconds after
    # the start below, well before the next mark: the run of the last mark has begun its
    # command before the lock, and every later one must wait for it.
    wait_for(lambda: 0.5 <= float(host.check_output("date +%s.%N")) % 20 <= 3, 25, "a moment just after a mark")
    result = {}

    def hold():
        result["rc"], result["out"] = run("/bin/sleep 30", site="shop")

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        holder = wait_for(lambda: json.loads(host.run("cat /run/lock/onebox-deploy.lock").stdout or "null"), 30,
                          "the run to take the lock")
        locked_at = float(holder["heartbeat"])
        # When the lock file goes, as the host sees it (within 0.05 s). Read on the controller once
        # the run had returned, the release came up to a second and more late on a loaded machine.
        host.check_output("rm -f /tmp/lock-released; nohup sh -c 'while [ -e /run/lock/onebox-deploy.lock ]; do "
                          "sleep 0.05; done; date +%s.%N > /tmp/lock-released' >/dev/null 2>&1 &")
        # At least 1 s from either mark, or a run of the last mark could pass its check just before.
        assert 1 <= locked_at % 20 <= 19, "the lock was taken %.1f s after a mark, too close to tell" % (locked_at % 20)
        # The next 20-second mark starts the job; it waits in ExecStartPre= while the lock is held.
        wait_for(lambda: host.check_output("systemctl show -p SubState --value blog_tick.service") == "start-pre"
                 or not thread.is_alive(), 40, "a run of blog_tick waiting for the lock")
        assert thread.is_alive(), "the lock was released before the timer fired"
        waiting_since = float(host.check_output("date +%s.%N"))
        during = [line for line in job_log(host) if line[0] == "start" and float(line[2]) >= locked_at]
        assert not during, "the job's command ran while the lock was held: %s" % during
    finally:
        thread.join(120)
    assert result["rc"] == 0, result["out"][-2000:]
    released = float(wait_for(lambda: host.run("cat /tmp/lock-released").stdout.strip(), 10, "the lock's release"))
    started = wait_for(lambda: [line for line in job_log(host) if line[0] == "start" and float(line[2]) >= locked_at],
                       30, "the run after the lock")
    delay = float(started[0][2]) - released
    print("a run waited for the deploy lock from at least %.1f s before its release; its command started %.1f s "
          "after the release" % (released - waiting_since, delay))
    assert not host.file("/run/lock/onebox-deploy.lock").exists
    assert -1 < delay < 10, delay  # it polls the lock every second; 10 s for a busy machine
    assert "cwd=/srv/onebox/blog/releases/1.0.1" in started[0]
    wait_for(lambda: unit_props(host, "blog_tick.service", "ActiveState")["ActiveState"] == "inactive", 30,
             "the run to end")
    assert unit_props(host, "blog_tick.service", "Result")["Result"] == "success"


@pytest.mark.parametrize("job,error", [
    (dict(TICK, on_calendar="*-*-* 25:00:00"),
     "site blog: field 'timers[tick].on_calendar' '*-*-* 25:00:00' is not a calendar systemd accepts"),
    (dict(TICK, command="bin/../../../usr/bin/id"),
     "field 'timers[tick].command' has the argument 'bin/../../../usr/bin/id' with a '..' path part"),
    (dict(TICK, timeout=-1), "field 'timers[tick].timeout' must be a number of seconds greater than 0"),
    (dict(TICK, name="Tick_1"), "field 'timers[0].name' must match ^[a-z0-9][a-z0-9-]{0,31}$"),
    (dict(TICK, name=None), "field 'timers[0].name' is required"),
])
def test_bad_timers_are_rejected_before_the_host_changes(host, snapshot, job, error):
    # The job's own runs write to shared/ every 20 s: its timer rests while the host is compared.
    host.check_output("systemctl stop blog_tick.timer")
    try:
        wait_for(lambda: unit_props(host, "blog_tick.service", "ActiveState")["ActiveState"] != "activating", 30,
                 "a run of blog_tick to end")
        before = snapshot(host)
        rc, out = run_playbook({"onebox_sites": with_blog(version="1.0.1", timers=[job])}, playbook="deploy.yml")
        assert rc != 0
        assert error in out, out[-2000:]
        assert "Unpack the new releases" not in out
        assert snapshot(host) == before
    finally:
        host.check_output("systemctl start blog_tick.timer")


def test_duplicate_job_names_are_rejected(host):
    rc, out = run_playbook({"onebox_sites": with_blog(version="1.0.1", timers=[TICK, TICK])}, playbook="deploy.yml")
    assert rc != 0 and "field 'timers[tick].name' is already used by timers[0]" in out, out[-2000:]


def test_a_job_dropped_from_the_list_is_stopped_disabled_and_removed(host):
    foreign = "/etc/systemd/system/blog_foreign.timer"
    host.check_output("printf '[Timer]\\nOnCalendar=daily\\n' > %s" % foreign)
    try:
        rc, out = run_playbook({"onebox_sites": with_blog(version="1.0.1", timers=[])}, playbook="deploy.yml")
        assert rc == 0, out[-3000:]
        for unit in ("blog_tick.timer", "blog_tick.service"):
            assert not host.file("/etc/systemd/system/%s" % unit).exists, unit
            props = unit_props(host, unit, "LoadState", "ActiveState")
            assert props["ActiveState"] == "inactive", (unit, props)
        assert not host.file("/etc/systemd/system/timers.target.wants/blog_tick.timer").exists
        assert host.file(foreign).exists, "a unit onebox.deploy did not write was touched"
        assert host.check_output("systemctl is-active blog.service") == "active"
    finally:
        host.check_output("rm -f %s" % foreign)


def test_a_removed_site_takes_its_jobs_with_it(host):
    rc, out = run_playbook({"onebox_sites": with_blog(version="1.0.1", timers=[TICK])}, playbook="deploy.yml")
    assert rc == 0, out[-3000:]
    assert host.check_output("systemctl is-active blog_tick.timer") == "active"
    rc, out = run_playbook({"onebox_sites": with_blog(state="absent")}, playbook="deploy.yml")
    assert rc == 0, out[-3000:]
    for unit in ("blog_tick.timer", "blog_tick.service", "blog.socket", "blog.service"):
        assert not host.file("/etc/systemd/system/%s" % unit).exists, unit
        assert unit_props(host, unit, "ActiveState")["ActiveState"] == "inactive", unit
    assert not host.file("/etc/systemd/system/timers.target.wants/blog_tick.timer").exists
