# -*- coding: utf-8 -*-
"""Deploy filters: audit_records and audit_line (plugins/filter/deploy.py), and
the filters the file exports (rollback_plan itself is tested with
plugins/module_utils/plan.py, where it lives)."""

from __future__ import absolute_import, division, print_function

import pytest

from ansible_collections.onebox.deploy.plugins.filter import plan as F
from ansible_collections.onebox.deploy.plugins.filter import report as D
from ansible_collections.onebox.deploy.plugins.plugin_utils import _plan as P
from ansible_collections.onebox.deploy.plugins.plugin_utils import _sites as S
from conftest import normalized_site, role_settings, sample_preflight


# --------------------------------------------------------------------------
# sites and rolling_restart results
# --------------------------------------------------------------------------

BLOG = normalized_site("blog", 8001, "1.4.2")
SHOP = normalized_site("shop", 8002, "2.1.0")
WIKI = normalized_site("wiki", 8003, "3.0.0", strategy="overlap")
PREFLIGHT = sample_preflight()

PROBE = {"sent": 1200, "failed": 0, "errors": {}, "p50_ms": 1.2, "p99_ms": 8.5, "max_ms": 20.1, "duration": 4.1}


def ready(name, t=0.7):
    return {"name": name, "unit": name, "status": "ready", "time_to_ready": t}


def failed_unit(name, reason="exited with status 1"):
    return {"name": name, "unit": name, "status": "failed", "time_to_ready": None, "reason": reason}


def records_by_site(records):
    return dict((r["site"], r) for r in records)


# --------------------------------------------------------------------------
# audit_records
# --------------------------------------------------------------------------

def test_audit_records_success():
    result = {"changed": True, "results": [ready("blog.service", 0.71), ready("shop.service", 1.5)],
              "rolled": ["blog.service", "shop.service"], "duration": 4.213, "probe": PROBE}
    records = D.audit_records(result, [BLOG, SHOP], PREFLIGHT, "deploy", "alice@laptop", "run-1")
    assert [r["site"] for r in records] == ["blog", "shop"]
    blog = records[0]
    assert blog["action"] == "deploy"
    assert blog["by"] == "alice@laptop"
    assert blog["run_id"] == "run-1"
    assert blog["strategy"] == "restart"
    assert blog["from_version"] == "1.4.1"
    assert blog["to_version"] == "1.4.2"
    assert blog["outcome"] == "success"
    assert blog["serving"] == "1.4.2"
    assert blog["time_to_ready_s"] == 0.71
    assert blog["roll_duration_s"] == 4.213
    assert "reason" not in blog and "rollback" not in blog
    # the probe's numbers, without its own duration
    assert blog["probe"] == {"sent": 1200, "failed": 0, "errors": {}, "p50_ms": 1.2, "p99_ms": 8.5,
                             "max_ms": 20.1}
    assert records[1]["from_version"] == "2.0.0" and records[1]["to_version"] == "2.1.0"
    assert records[1]["time_to_ready_s"] == 1.5
    assert records[1]["probe"] == blog["probe"]


def test_audit_records_failed_then_rolled_back_and_not_started():
    result = {"failed": True, "results": [ready("blog.service"), failed_unit("shop.service", "timeout")],
              "rollback": [{"name": "shop.service", "status": "ready", "version": "2.0.0", "time_to_ready": 0.4,
                            "restored": ["/etc/systemd/system/shop.service"]}],
              "duration": 9.0}
    records = records_by_site(D.audit_records(result, [BLOG, SHOP, WIKI], PREFLIGHT, "deploy", "alice", "run-2"))
    assert records["blog"]["outcome"] == "success"
    assert records["blog"]["serving"] == "1.4.2"
    shop = records["shop"]
    assert shop["outcome"] == "rolled_back"
    assert shop["serving"] == "2.0.0"
    assert shop["reason"] == "timeout"
    assert shop["rollback"] == {"status": "ready", "version": "2.0.0", "time_to_stop": None, "time_to_ready": 0.4,
                                "time_to_recover": None, "reason": None}
    wiki = records["wiki"]
    assert wiki["outcome"] == "not_started"
    assert wiki["serving"] == "2.9.0"
    assert wiki["from_version"] == "2.9.0" and wiki["to_version"] == "3.0.0"
    assert wiki["time_to_ready_s"] is None
    assert wiki["strategy"] == "overlap"
    assert "probe" not in wiki


def test_audit_records_failed_without_rollback():
    result = {"failed": True, "results": [failed_unit("blog.service", "exited with status 3")], "duration": 2.0}
    records = D.audit_records(result, [BLOG, SHOP], PREFLIGHT)
    blog, shop = records
    assert blog["outcome"] == "failed"
    assert blog["serving"] is None
    assert blog["reason"] == "exited with status 3"
    assert "rollback" not in blog
    assert shop["outcome"] == "not_started"
    # defaults
    assert blog["action"] == "deploy" and blog["by"] == "unknown" and blog["run_id"] is None


def test_audit_records_failed_rollback_stays_failed():
    result = {"failed": True, "results": [failed_unit("blog.service")],
              "rollback": [{"name": "blog.service", "status": "timeout", "version": "1.4.1",
                            "time_to_ready": None, "reason": "not ready within 60s"}]}
    blog = D.audit_records(result, [BLOG], PREFLIGHT)[0]
    assert blog["outcome"] == "failed"
    assert blog["serving"] is None
    assert blog["rollback"]["status"] == "timeout"
    assert blog["rollback"]["reason"] == "not ready within 60s"


def test_audit_records_rollback_scope_all_rolls_back_earlier_site():
    result = {"failed": True, "results": [ready("blog.service"), failed_unit("shop.service")],
              "rollback": [{"name": "shop.service", "status": "ready", "version": "2.0.0", "time_to_ready": 0.3},
                           {"name": "blog.service", "status": "ready", "version": "1.4.1", "time_to_ready": 0.2}]}
    records = records_by_site(D.audit_records(result, [BLOG, SHOP], PREFLIGHT))
    assert records["blog"]["outcome"] == "rolled_back"
    assert records["blog"]["serving"] == "1.4.1"
    assert records["shop"]["outcome"] == "rolled_back"


def test_audit_records_overlap_rollback_matched_by_site_name():
    result = {"failed": True, "results": [failed_unit("wiki")],
              "rollback": [{"name": "wiki", "status": "ready", "version": "2.9.0", "time_to_ready": 0.5}]}
    wiki = D.audit_records(result, [WIKI], PREFLIGHT)[0]
    assert wiki["outcome"] == "rolled_back"
    assert wiki["serving"] == "2.9.0"


def test_audit_records_probe_failed():
    probe = dict(PROBE, failed=40, errors={"status_503": 40})
    result = {"failed": True, "msg": "probe saw 40 failed", "results": [ready("blog.service"), ready("shop.service")],
              "probe": probe, "duration": 5.5}
    records = D.audit_records(result, [BLOG, SHOP], PREFLIGHT)
    assert [r["outcome"] for r in records] == ["probe_failed", "probe_failed"]
    assert records[0]["serving"] == "1.4.2"
    assert records[0]["probe"]["failed"] == 40
    assert records[0]["probe"]["errors"] == {"status_503": 40}
    assert records[0]["probe"]["sent"] == 1200


@pytest.mark.parametrize("result", [{"skipped": True, "skip_reason": "Conditional result was False"},
                                    {"skipped": True, "results": [{"name": "blog.service", "status": "ready"}]}])
def test_audit_records_skipped_result_is_empty(result):
    assert D.audit_records(result, [BLOG, SHOP], PREFLIGHT) == []


def test_audit_records_without_sites_is_empty():
    assert D.audit_records({"results": [ready("blog.service")]}, [], PREFLIGHT) == []


def test_audit_records_of_missing_result_are_not_started():
    records = D.audit_records(None, [BLOG], PREFLIGHT)
    assert records[0]["outcome"] == "not_started"
    assert records[0]["serving"] == "1.4.1"


def test_audit_records_rollback_action_uses_targets():
    result = {"results": [ready("blog.service", 0.3)], "duration": 1.0}
    blog = D.audit_records(result, [BLOG], PREFLIGHT, "rollback", "bob", "run-3", {"blog": "1.4.0"})[0]
    assert blog["action"] == "rollback"
    assert blog["from_version"] == "1.4.1"
    assert blog["to_version"] == "1.4.0"
    assert blog["serving"] == "1.4.0"
    assert blog["outcome"] == "success"


def test_audit_records_site_unknown_to_preflight():
    blog = D.audit_records({"results": [ready("blog.service")]}, [BLOG], {})[0]
    assert blog["from_version"] is None
    assert blog["outcome"] == "success"


# --------------------------------------------------------------------------
# audit_line
# --------------------------------------------------------------------------

def test_audit_line_deploy_record():
    record = {"time": "2026-11-25T17:40:09Z", "action": "deploy", "site": "blog", "by": "alice@laptop",
              "run_id": "run-1", "from_version": "1.4.1", "to_version": "1.4.2", "time_to_ready_s": 0.71,
              "outcome": "success", "probe": {"sent": 1200, "failed": 3, "max_ms": 20.1}}
    assert D.audit_line(record) == ("2026-11-25T17:40:09Z deploy blog 1.4.1 -> 1.4.2: success, ready in 0.71 s, "
                                    "probe 3/1200 failed, max 20.1 ms, by alice@laptop (run run-1)")


def test_audit_line_rolled_back_record():
    record = {"time": "t", "action": "deploy", "site": "shop", "by": "bob", "run_id": "r", "from_version": "2.0.0",
              "to_version": "2.1.0", "time_to_ready_s": None, "outcome": "rolled_back",
              "rollback": {"status": "ready", "version": "2.0.0"}}
    line = D.audit_line(record)
    assert line == "t deploy shop 2.0.0 -> 2.1.0: rolled_back, rollback ready to 2.0.0, by bob (run r)"
    assert "ready in" not in line


def test_audit_line_lock_takeover():
    record = {"event": "lock_takeover", "time": "2026-11-25T18:00:00Z", "by": "bob@desk", "run_id": "run-2",
              "previous_owner": "alice@laptop", "previous_run_id": "run-1",
              "previous_started": "2026-11-25T17:40:02Z", "heartbeat_age_s": 1080.5}
    assert D.audit_line(record) == ("2026-11-25T18:00:00Z lock takeover by bob@desk (run run-2) of alice@laptop's "
                                    "abandoned lock (run run-1, started 2026-11-25T17:40:02Z, silent 1080.5s)")


def test_filter_module_exports():
    filters = D.FilterModule().filters()
    assert filters["audit_records"] is D.audit_records
    assert F.FilterModule().filters()["rollback_plan"] is P.rollback_plan   # the planner's, not a copy
    assert filters["audit_line"] is D.audit_line
    assert F.FilterModule().filters()["artifact_sums"] is P.artifact_sums


# --------------------------------------------------------------------------
# removal_records (state: absent) and their audit line
# --------------------------------------------------------------------------

REMOVED = {
    "wiki": {"changed": True, "stopped": ["wiki.socket", "wiki.service"],
             "removed": ["/etc/systemd/system/wiki.socket", "/etc/onebox/wiki.env"], "account_deleted": True,
             "purged": "/srv/onebox/wiki"},
    "ghost": {"changed": False, "stopped": [], "removed": [], "account_deleted": False, "purged": None},
    "docs": {"changed": True, "stopped": [], "removed": ["/etc/onebox/docs.env"], "account_deleted": False,
             "purged": None},
}


def test_removal_records_one_per_site_removed():
    records = D.removal_records(REMOVED, "alice@laptop", "run-7")
    assert records == [
        dict(action="remove", site="docs", by="alice@laptop", run_id="run-7", outcome="removed", stopped=[],
             removed=["/etc/onebox/docs.env"], account_deleted=False, purged=None),
        dict(action="remove", site="wiki", by="alice@laptop", run_id="run-7", outcome="removed",
             stopped=["wiki.socket", "wiki.service"],
             removed=["/etc/systemd/system/wiki.socket", "/etc/onebox/wiki.env"], account_deleted=True,
             purged="/srv/onebox/wiki"),
    ]


@pytest.mark.parametrize("removed", [None, {}, {"ghost": REMOVED["ghost"]}])
def test_removal_records_of_nothing_removed_are_empty(removed):
    assert D.removal_records(removed) == []


def test_removal_records_defaults():
    (record,) = D.removal_records({"docs": {"changed": True}})
    assert record["by"] == "unknown" and record["run_id"] is None
    assert record["stopped"] == [] and record["removed"] == [] and record["account_deleted"] is False


def test_audit_line_remove_record():
    wiki, docs = [dict(r, time="2026-11-25T18:00:00Z") for r in
                  reversed(D.removal_records(REMOVED, "alice@laptop", "run-7"))]
    assert D.audit_line(wiki) == ("2026-11-25T18:00:00Z remove wiki: removed (stopped wiki.socket, wiki.service; "
                                  "account deleted; purged /srv/onebox/wiki), by alice@laptop (run run-7)")
    assert D.audit_line(docs) == ("2026-11-25T18:00:00Z remove docs: removed (stopped nothing; account kept), "
                                  "by alice@laptop (run run-7)")


def test_filter_module_exports_removal_records():
    assert D.FilterModule().filters()["removal_records"] is D.removal_records


def test_deploy_failure_says_what_serves_now():
    failed = dict(msg="rolled back blog.service to 1.0.0, which is serving again", rolled=["shop.service"],
                  results=[dict(status="ready"), dict(status="failed")])
    assert D.deploy_failure(failed, "web2") == (
        "deploy on web2 failed: rolled back blog.service to 1.0.0, which is serving again Sites rolled before it "
        "keep their new release: shop.service (onebox_rollback_scope: all returns them too).")
    assert "Sites rolled before it" not in D.deploy_failure(failed, "web2", "all")
    probe = dict(msg="probe saw 4 failed of 208 requests", rolled=["blog.service", "shop.service"],
                 results=[dict(status="ready"), dict(status="ready")])
    assert D.deploy_failure(probe, "web1").endswith(
        "Every site rolled and serves its new release; the probe counted the failures above.")


def test_failed_hosts_and_the_serving_report():
    hostvars = {"web1": {"onebox_deploy_result": {"serving": {"blog": "2.0", "shop": "2.0"}, "failure": ""}},
                "web2": {"onebox_deploy_result": {"serving": {"blog": "1.0"}, "failure": "deploy on web2 failed: x"}},
                "web3": {}}
    assert D.failed_hosts(hostvars, ["web1", "web2", "web3"]) == ["deploy on web2 failed: x"]
    assert D.serving_report(hostvars, ["web1", "web2", "web3"]) == [
        "web1: blog 2.0, shop 2.0", "web2: blog 1.0",
        "web3: not deployed in this run (it failed before its roll, or was not reached)"]


def test_check_mode_keeps_what_serves_and_the_report_names_what_would_change():
    """In check mode nothing rolled: each site still serves its release, and the
    report says which release it would roll to (it said '(nothing)')."""
    result = dict(changed=True, results=[dict(name="blog.service", status="would_restart")])
    preflight = {"blog": {"current_release": "1.0.0"}}
    records = D.audit_records(result, [BLOG], preflight)
    assert records[0]["outcome"] == "would_roll" and records[0]["serving"] == "1.0.0"
    assert D.serving([BLOG], preflight, records) == {"blog": "1.0.0"}
    hostvars = {"web1": {"onebox_deploy_result": {"serving": {"blog": "1.0.0", "shop": "2.1.0"},
                                                  "planned": {"blog": "1.4.2"}}},
                "web2": {"onebox_deploy_result": {"serving": {"blog": None}, "planned": {"blog": "1.4.2"}}}}
    assert D.serving_report(hostvars, ["web1", "web2"]) == [
        "web1: blog 1.0.0 (check mode: would roll to 1.4.2), shop 2.1.0",
        "web2: blog (nothing) (check mode: would roll to 1.4.2)"]


def test_audit_line_of_a_first_deploy_says_so():
    record = {"time": "t", "action": "deploy", "site": "hello", "by": "alice@vm", "run_id": "r",
              "from_version": None, "to_version": "1.0.0", "time_to_ready_s": 0.5, "outcome": "success"}
    assert D.audit_line(record) == "t deploy hello (first deploy) -> 1.0.0: success, ready in 0.5 s, by alice@vm (run r)"
    assert "None" not in D.audit_line(record)


# --------------------------------------------------------------------------
# data: the audit records of a site with declared data, the messages, the report
# --------------------------------------------------------------------------

NOTES = S.normalize_site({"name": "notes", "listen": "127.0.0.1:8201", "version": "2.0.0", "artifact": "/opt/n/",
                          "command": "bin/app", "data": ["shared/notes.db"]}, role_settings(), "/opt")
NOTES_PREFLIGHT = {"notes": {"current_release": "1.0.0"}}
SNAP = dict(site="notes", taken=True, name="20261207T014500Z-1.0.0-to-2.0.0",
            path="/srv/onebox/notes/snapshots/20261207T014500Z-1.0.0-to-2.0.0", from_version="1.0.0",
            to_version="2.0.0", files=[dict(path="shared/notes.db", bytes=105005056, seconds=0.412)],
            bytes=105005056, seconds=0.415, not_created=[])


def test_a_deploy_records_its_snapshot_with_size_and_seconds():
    record = D.audit_records({"results": [ready("notes.service")]}, [NOTES], NOTES_PREFLIGHT, "deploy", "a", "r1",
                             None, {"notes": SNAP}, ["/hooks/migrate.yml"])[0]
    assert record["outcome"] == "success"
    assert record["data"] == dict(files=["shared/notes.db"], restored=False, not_created=[], snapshot=dict(
        name=SNAP["name"], path=SNAP["path"], bytes=105005056, seconds=0.415, files=SNAP["files"]))
    assert "snapshot 105.0 MB in 0.415 s" in D.audit_line(dict(record, time="T"))
    # a site without data gets no data key; a first deploy names the files not created yet
    assert "data" not in D.audit_records({"results": [ready("blog.service")]}, [BLOG], PREFLIGHT)[0]
    first = D.audit_records({"results": [ready("notes.service")]}, [NOTES], {}, "deploy", "a", "r1", None,
                            {"notes": dict(site="notes", taken=False, not_created=["shared/notes.db"])})[0]
    assert first["data"]["snapshot"] is None and first["data"]["not_created"] == ["shared/notes.db"]
    assert "no snapshot (shared/notes.db not created yet)" in D.audit_line(dict(first, time="T"))


@pytest.mark.parametrize("unit,hooks,ran,note", [
    (dict(failed_unit("notes.service"), answered=False), [], "started, never answered a request",
     "since its snapshot, 2.0.0 (it started, never answered a request) ran against shared/notes.db"),
    (dict(failed_unit("notes.service"), answered=True), ["/h.yml"], "started and answered requests",
     "since its snapshot, the before_roll hooks and 2.0.0 (it started and answered requests) ran against "
     "shared/notes.db"),
    (None, ["/h.yml"], "never started", "since its snapshot, the before_roll hooks ran against shared/notes.db"),
])
def test_a_failed_deploy_says_what_ran_against_the_data_and_how_to_put_the_snapshot_back(unit, hooks, ran, note):
    result = {"failed": True, "msg": "rolled back", "results": [unit] if unit else [],
              "rollback": [dict(name="notes.service", status="ready", version="1.0.0")] if unit else None}
    records = D.audit_records(result, [NOTES], NOTES_PREFLIGHT, "deploy", "a", "r1", None, {"notes": SNAP}, hooks)
    data = records[0]["data"]
    assert data["restored"] is False and data["new_release"] == ran and data["before_roll_hooks"] == len(hooks)
    msg = D.deploy_failure(result, "web1", "site", records)
    assert ("notes: data not restored: %s, which 1.0.0 now serves as they left it. To put back the snapshot taken "
            "before the deploy (%s, 105.0 MB): ansible-playbook onebox.deploy.rollback -e '{\"onebox_rollback_sites\": "
            "[\"notes\"]}' -e onebox_rollback_to=1.0.0 -e onebox_rollback_data=true" % (note, SNAP["path"])) in msg, msg
    assert "data not restored (new release %s)" % ran in D.audit_line(dict(records[0], time="T"))


def test_a_failed_deploy_that_never_touched_the_data_has_no_data_note():
    result = {"failed": True, "msg": "x", "results": [failed_unit("blog.service")]}
    records = D.audit_records(result, [BLOG, NOTES], {"blog": {}, "notes": {"current_release": "1.0.0"}}, "deploy",
                              "a", "r1", None, {"notes": SNAP}, [])
    assert records[1]["data"]["new_release"] == "never started"
    assert "data not restored" not in D.deploy_failure(result, "web1", "site", records)


def back_plan(requested):
    plan = P.rollback_plan([NOTES], {"notes": {
        "current_release": "2.0.0", "previous_release": "1.0.0",
        "releases": [{"version": "1.0.0"}, {"version": "2.0.0"}],
        "snapshots": [dict(SNAP, time="20261207T014500Z", taken_at=1.0)]}}, None, None, requested)
    assert plan["errors"] == []
    return plan


def test_a_rollback_without_data_says_who_wrote_it_and_how_to_restore_it():
    plan = back_plan(False)
    result = {"results": [dict(ready("notes.service"))]}
    assert D.rollback_data_notes(plan, result) == [
        "notes: data not restored: shared/notes.db was last written by 2.0.0, the release rolled back; 1.0.0 runs on "
        "it as it is. To restore the snapshot taken when 1.0.0 was replaced (20261207T014500Z-1.0.0-to-2.0.0, "
        "20261207T014500Z, 105.0 MB): ansible-playbook onebox.deploy.rollback -e '{\"onebox_rollback_sites\": "
        "[\"notes\"]}' -e onebox_rollback_to=1.0.0 -e onebox_rollback_data=true (what was written since is moved to "
        "/srv/onebox/notes/aside/, not deleted)"]
    record = D.audit_records(result, plan["sites"], {"notes": {"current_release": "2.0.0"}}, "rollback", "a", "r2",
                             plan["targets"], plan["data"])[0]
    assert record["data"]["requested"] is False and record["data"]["restored"] is False
    assert record["data"]["last_written_by"] == "2.0.0"
    assert "data not restored (last written by 2.0.0)" in D.audit_line(dict(record, time="T"))


def test_a_rollback_with_data_says_where_the_replaced_files_are():
    plan = back_plan(True)
    swap = dict(snapshot=SNAP["path"], aside="/srv/onebox/notes/aside/20261207T020000Z-written-by-2.0.0",
                restored=[dict(path="shared/notes.db", bytes=105005056)], seconds=0.61)
    result = {"results": [dict(ready("notes.service"), data=swap)]}
    assert D.rollback_data_notes(plan, result) == [
        "notes: data restored from the snapshot %s (taken when 1.0.0 was replaced by 2.0.0); the files 2.0.0 wrote "
        "are kept in %s" % (SNAP["path"], swap["aside"])]
    record = D.audit_records(result, plan["sites"], {"notes": {"current_release": "2.0.0"}}, "rollback", "a", "r2",
                             plan["targets"], plan["data"])[0]
    assert record["outcome"] == "success"
    assert record["data"]["restored"] is True and record["data"]["aside"] == swap["aside"]
    assert record["data"]["snapshot"]["name"] == SNAP["name"] and record["data"]["swap_seconds"] == 0.61
    assert "data restored from %s (replaced files in %s)" % (SNAP["name"], swap["aside"]) in D.audit_line(
        dict(record, time="T"))
    # the release did not come ready: the swap was undone, the record says so
    failed = {"failed": True, "results": [dict(failed_unit("notes.service"), data=swap)],
              "rollback": [dict(name="notes.service", status="ready", version="2.0.0",
                                data=dict(aside="/srv/onebox/notes/aside/x-written-by-1.0.0-failed"))]}
    record = D.audit_records(failed, plan["sites"], {"notes": {"current_release": "2.0.0"}}, "rollback", "a", "r3",
                             plan["targets"], plan["data"])[0]
    assert record["data"]["restored"] is False and record["data"]["undone"].endswith("-failed")
    assert "data restore undone" in D.audit_line(dict(record, time="T"))


def test_the_report_shows_the_snapshot_and_in_check_mode_what_would_be_taken():
    hostvars = {"web1": {"onebox_deploy_result": {"serving": {"notes": "2.0.0"}, "data": {"notes": SNAP}}},
                "web2": {"onebox_deploy_result": {"serving": {"notes": "1.0.0"}, "planned": {"notes": "2.0.0"},
                                                  "data": {"notes": dict(SNAP, taken=False, would=True)}}},
                "web3": {"onebox_deploy_result": {"serving": {"notes": "1.0.0"}, "data": {"notes": dict(
                    site="notes", taken=False, not_created=["shared/notes.db"])}}}}
    assert D.serving_report(hostvars, ["web1", "web2", "web3"]) == [
        "web1: notes 2.0.0 (data snapshot before it: 105.0 MB in 0.41 s)",
        "web2: notes 1.0.0 (check mode: would roll to 2.0.0 after a snapshot of shared/notes.db (at most 105.0 MB))",
        "web3: notes 1.0.0 (data shared/notes.db not created yet, nothing to snapshot)"]


# --------------------------------------------------------------------------
# status_report
# --------------------------------------------------------------------------

STATUS = dict(site="blog", release="1.0.2", current="1.0.1",
              units=[dict(unit="blog.socket", active="active", sub="running"),
                     dict(unit="blog.service", active="activating", sub="start")],
              since="Mon 2026-12-07 06:41:12 UTC", restarts=3, memory_bytes=15 * 1048576,
              last_deploy=dict(time="2026-12-07T06:41:13Z", action="deploy", from_version="1.0.0",
                               to_version="1.0.1", outcome="success", by="alice@laptop"),
              readyz={"blog.service": dict(result=503, ms=1.5)})


def test_status_report_table_has_a_header_and_one_line_per_site():
    stopped = dict(site="shop", release="2", current=None, units=[], since=None, restarts=None, memory_bytes=None,
                   last_deploy=None, readyz={})
    lines = D.FilterModule().filters()["status_report"]([STATUS, stopped], "web1")
    assert lines[0] == "web1: 2 site(s)"
    assert lines[1].split() == ["site", "release", "current", "units", "since", "restarts", "memory", "last",
                                "deploy", "readyz"]
    assert lines[1].index("release") == lines[2].index("1.0.2")
    row = lines[2]
    for cell in ("1.0.1 (inventory: 1.0.2)", "blog.socket running, blog.service activating/start",
                 "Mon 2026-12-07 06:41:12 UTC", " 3 ", "15.0 MiB",
                 "2026-12-07T06:41:13Z deploy 1.0.0 -> 1.0.1 success by alice@laptop", "503 in 1.5 ms"):
        assert cell in row, (cell, row)
    assert lines[3].split()[:3] == ["shop", "2", "-"] and lines[3].endswith("not asked (no process runs)")


def test_status_report_json_is_every_site_as_read():
    report = D.FilterModule().filters()["status_report"]
    assert report([STATUS], "web1", "json") == {"host": "web1", "sites": [STATUS]}
    with pytest.raises(ValueError, match="onebox_status_format must be one of table, json, got 'yaml'"):
        D.FilterModule().filters()["status_report"]([STATUS], "web1", "yaml")


# --------------------------------------------------------------------------
# run_record, run_report, audit_line of a run
# --------------------------------------------------------------------------

RUN = dict(changed=True, exit_status=0, stdout="migrated 3\n", stderr="warn\n", seconds=0.4, release="1.0.1",
           command="bin/blog migrate --key ********", unit="onebox-run-blog-1.service")


def test_run_record_holds_the_masked_command_and_never_the_output():
    filters = D.FilterModule().filters()
    record = filters["run_record"](RUN, "blog", "alice@laptop", "r1")
    assert record == dict(action="run", site="blog", by="alice@laptop", run_id="r1", release="1.0.1",
                          command="bin/blog migrate --key ********", exit_status=0, seconds=0.4, outcome="success")
    assert filters["run_record"](dict(RUN, exit_status=2), "blog")["outcome"] == "failed"
    refused = filters["run_record"](dict(failed=True, msg="no release", command="x"), "blog")
    assert refused["outcome"] == "failed" and refused["error"] == "no release"
    line = filters["audit_line"](dict(record, time="2026-12-07T06:00:00Z"))
    assert line == ("2026-12-07T06:00:00Z run blog 1.0.1: bin/blog migrate --key ******** exited with status 0 "
                    "after 0.4 s: success, by alice@laptop (run r1)")


def test_run_report_prints_the_exit_status_then_the_output():
    report = D.FilterModule().filters()["run_report"]
    assert report(RUN, "blog") == ["blog 1.0.1: bin/blog migrate --key ******** exited with status 0 after 0.4 s",
                                   "stdout:", "  migrated 3", "stderr:", "  warn"]
    assert report(dict(RUN, exit_status=None, stdout="", stderr=""), "blog") == [
        "blog 1.0.1: bin/blog migrate --key ******** would run (check mode)"]


def test_status_report_lists_the_job_units_after_the_sites_own():
    status = dict(STATUS, jobs=[dict(unit="blog_tick.timer", active="active", sub="waiting"),
                                dict(unit="blog_tick.service", active="inactive", sub="dead")])
    row = D.FilterModule().filters()["status_report"]([status], "web1")[2]
    assert "blog.socket running, blog.service activating/start, blog_tick.timer waiting, blog_tick.service dead" in row
