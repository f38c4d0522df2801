"""Day-two operations on two reference-app sites with a secret each
(docs/operations.md). The tests run in file order and build on each other:

1. status on a fresh host: every site listed, nothing served, nothing changed;
2. the first deploy, then status: one table, each site's `current`, units,
   since, restarts, memory, the last deploy of the audit log, /readyz 200;
   the host unchanged by it, no secret in its output;
3. a stopped service is not started by status (no request reaches its socket);
4. the JSON output holds the same as the table;
5. a format it does not know is rejected before the host is read.
"""

import json
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
