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
    rejected before the host changes, naming the field.
"""

import json
import threading
import time

import pytest
from conftest import print_table, run_playbook

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
