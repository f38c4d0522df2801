# -*- coding: utf-8 -*-
"""Deploy filters: audit_records, rollback_plan, audit_line (plugins/filter/deploy.py),
artifact_sums (plugins/filter/sites.py) and artifact_sha256 plus the ``checksum``
site field (plugins/module_utils/sites.py)."""

from __future__ import absolute_import, division, print_function

import hashlib
import os
import shutil
from unittest import mock

import pytest

from ansible_collections.onebox.deploy.plugins.filter import deploy as D
from ansible_collections.onebox.deploy.plugins.filter import sites as F
from ansible_collections.onebox.deploy.plugins.module_utils import sites as S


# --------------------------------------------------------------------------
# sites and rolling_restart results
# --------------------------------------------------------------------------

def normalized(name, port, version, strategy="restart", root="/srv/onebox"):
    raw = {"name": name, "listen": "127.0.0.1:%d" % port, "health_listen": "127.0.0.1:%d" % (port + 10000),
           "version": version, "artifact": "/opt/artifacts/%s-%s/" % (name, version), "command": "bin/app",
           "strategy": strategy, "root": root}
    return S.normalize_site(raw, {}, "/opt/artifacts")


BLOG = normalized("blog", 8001, "1.4.2")
SHOP = normalized("shop", 8002, "2.1.0")
WIKI = normalized("wiki", 8003, "3.0.0", strategy="overlap")

PREFLIGHT = {
    "blog": {"current_release": "1.4.1", "previous_release": "1.4.0",
             "releases": [{"version": "1.3.9"}, {"version": "1.4.0"}, {"version": "1.4.1"}]},
    "shop": {"current_release": "2.0.0", "previous_release": None, "releases": [{"version": "2.0.0"}]},
    "wiki": {"current_release": "2.9.0", "previous_release": "2.8.0",
             "releases": [{"version": "2.8.0"}, {"version": "2.9.0"}]},
}

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
    assert shop["rollback"] == {"status": "ready", "version": "2.0.0", "time_to_ready": 0.4, "reason": None}
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
    assert filters["rollback_plan"] is D.rollback_plan
    assert filters["audit_line"] is D.audit_line
    assert F.FilterModule().filters()["artifact_sums"] is F.artifact_sums


# --------------------------------------------------------------------------
# rollback_plan
# --------------------------------------------------------------------------

def test_rollback_plan_chooses_previous_release():
    plan = D.rollback_plan([BLOG], PREFLIGHT)
    assert plan["errors"] == []
    assert plan["targets"] == {"blog": "1.4.0"}
    assert plan["sites"] == [BLOG]
    assert plan["unchanged"] == []
    unit = plan["units"][0]
    assert unit["name"] == "blog.service"
    assert unit["link"] == "/srv/onebox/blog/current"
    assert unit["link_target"] == "/srv/onebox/blog/releases/1.4.0"
    assert unit["readiness_url"] == BLOG["readiness_url"]


def test_rollback_plan_named_release():
    plan = D.rollback_plan([BLOG], PREFLIGHT, "1.3.9")
    assert plan["errors"] == []
    assert plan["targets"] == {"blog": "1.3.9"}
    assert plan["units"][0]["link_target"] == "/srv/onebox/blog/releases/1.3.9"


def test_rollback_plan_overlap_unit():
    plan = D.rollback_plan([WIKI], PREFLIGHT)
    assert plan["targets"] == {"wiki": "2.8.0"}
    unit = plan["units"][0]
    assert unit["name"] == "wiki"
    assert unit["strategy"] == "overlap"
    assert unit["instances"] == WIKI["instances"]
    assert unit["link_target"] == "/srv/onebox/wiki/releases/2.8.0"


def test_rollback_plan_nothing_deployed():
    preflight = {"blog": {"current_release": None, "previous_release": None, "releases": []}}
    plan = D.rollback_plan([BLOG], preflight)
    assert len(plan["errors"]) == 1
    err = plan["errors"][0]
    assert err.startswith("site blog: field 'onebox_rollback_sites'")
    assert "nothing is deployed" in err
    assert "/srv/onebox/blog" in err
    assert plan["targets"] == {} and plan["units"] == [] and plan["sites"] == []


def test_rollback_plan_site_missing_from_preflight():
    plan = D.rollback_plan([BLOG], {})
    assert len(plan["errors"]) == 1
    assert "site blog: field 'onebox_rollback_sites'" in plan["errors"][0]


def test_rollback_plan_no_earlier_release():
    plan = D.rollback_plan([SHOP], PREFLIGHT)
    assert len(plan["errors"]) == 1
    err = plan["errors"][0]
    assert err.startswith("site shop: field 'onebox_rollback_to'")
    assert "no release was installed before 2.0.0" in err
    assert "installed: 2.0.0" in err
    assert plan["targets"] == {} and plan["units"] == []


def test_rollback_plan_release_not_installed():
    plan = D.rollback_plan([BLOG], PREFLIGHT, "0.9.0")
    assert len(plan["errors"]) == 1
    err = plan["errors"][0]
    assert err.startswith("site blog: field 'onebox_rollback_to'")
    assert "release 0.9.0 is not installed" in err
    assert "1.3.9, 1.4.0, 1.4.1" in err
    assert plan["targets"] == {} and plan["units"] == []


def test_rollback_plan_target_is_current_is_unchanged():
    plan = D.rollback_plan([BLOG], PREFLIGHT, "1.4.1")
    assert plan["errors"] == []
    assert plan["unchanged"] == ["blog"]
    assert plan["targets"] == {} and plan["units"] == [] and plan["sites"] == []


def test_rollback_plan_mixed_sites():
    plan = D.rollback_plan([BLOG, SHOP, WIKI], PREFLIGHT)
    assert plan["targets"] == {"blog": "1.4.0", "wiki": "2.8.0"}
    assert [s["name"] for s in plan["sites"]] == ["blog", "wiki"]
    assert [u["name"] for u in plan["units"]] == ["blog.service", "wiki"]
    assert len(plan["errors"]) == 1 and plan["errors"][0].startswith("site shop:")


# --------------------------------------------------------------------------
# artifact_sha256 / artifact_sums
# --------------------------------------------------------------------------

def make_tree(root):
    os.makedirs(os.path.join(root, "bin"))
    os.makedirs(os.path.join(root, "static", "css"))
    os.makedirs(os.path.join(root, "empty"))
    with open(os.path.join(root, "bin", "app"), "w") as handle:
        handle.write("#!/bin/sh\necho hi\n")
    os.chmod(os.path.join(root, "bin", "app"), 0o755)
    with open(os.path.join(root, "static", "css", "site.css"), "w") as handle:
        handle.write("body{}\n")
    os.chmod(os.path.join(root, "static", "css", "site.css"), 0o644)
    with open(os.path.join(root, "README"), "w") as handle:
        handle.write("readme\n")
    os.chmod(os.path.join(root, "README"), 0o644)
    os.symlink("bin/app", os.path.join(root, "run"))
    return root


@pytest.fixture
def trees(tmp_path):
    a = make_tree(str(tmp_path / "one" / "blog-1.4.2"))
    b = make_tree(str(tmp_path / "two" / "elsewhere"))
    return a, b


def test_sha256_same_tree_in_two_places(trees):
    a, b = trees
    digest = S.artifact_sha256(a)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert S.artifact_sha256(b) == digest
    assert S.artifact_sha256(a + "/") == digest


def test_sha256_is_stable_over_mtime_and_copy(trees, tmp_path):
    a = trees[0]
    digest = S.artifact_sha256(a)
    copy = str(tmp_path / "copy")
    shutil.copytree(a, copy, symlinks=True)
    for top, dirs, files in os.walk(copy):
        for name in files:
            path = os.path.join(top, name)
            if not os.path.islink(path):
                os.utime(path, (1, 1))
    assert S.artifact_sha256(copy) == digest


def test_sha256_content_change(trees):
    a, b = trees
    with open(os.path.join(b, "static", "css", "site.css"), "w") as handle:
        handle.write("body{color:red}\n")
    assert S.artifact_sha256(a) != S.artifact_sha256(b)


def test_sha256_exec_bit_change(trees):
    a, b = trees
    os.chmod(os.path.join(b, "README"), 0o755)
    assert S.artifact_sha256(a) != S.artifact_sha256(b)
    os.chmod(os.path.join(b, "README"), 0o644)
    assert S.artifact_sha256(a) == S.artifact_sha256(b)


def test_sha256_added_file(trees):
    a, b = trees
    with open(os.path.join(b, "static", "extra.txt"), "w") as handle:
        handle.write("")
    assert S.artifact_sha256(a) != S.artifact_sha256(b)


def test_sha256_added_empty_directory(trees):
    a, b = trees
    os.makedirs(os.path.join(b, "static", "img"))
    assert S.artifact_sha256(a) != S.artifact_sha256(b)


def test_sha256_renamed_file(trees):
    a, b = trees
    os.rename(os.path.join(b, "README"), os.path.join(b, "README.md"))
    assert S.artifact_sha256(a) != S.artifact_sha256(b)


def test_sha256_symlink_target_change(trees):
    a, b = trees
    os.unlink(os.path.join(b, "run"))
    os.symlink("./bin/app", os.path.join(b, "run"))   # same file, other target text
    assert S.artifact_sha256(a) != S.artifact_sha256(b)


def test_sha256_symlink_vs_file_copy(trees):
    a, b = trees
    os.unlink(os.path.join(b, "run"))
    shutil.copy2(os.path.join(b, "bin", "app"), os.path.join(b, "run"))
    assert S.artifact_sha256(a) != S.artifact_sha256(b)


def test_sha256_of_file_is_sha256_of_bytes(tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)   # more than one read chunk
    path = tmp_path / "tool"
    path.write_bytes(data)
    assert S.artifact_sha256(str(path)) == hashlib.sha256(data).hexdigest()
    empty = tmp_path / "empty.tar.gz"
    empty.write_bytes(b"")
    assert S.artifact_sha256(str(empty)) == hashlib.sha256(b"").hexdigest()


def test_sha256_exec_bit_does_not_depend_on_caller(trees):
    a = trees[0]
    path = os.path.join(a, "bin", "app")
    os.chmod(path, 0o744)   # executable by its owner only
    as_owner = S.artifact_sha256(a)

    real_access = os.access

    def access_as_other_user(p, mode, *args, **kwargs):
        # the kernel's answer for a user that is neither the owner nor in the group
        if mode == os.X_OK:
            return bool(os.stat(p).st_mode & 0o001)
        return real_access(p, mode, *args, **kwargs)

    with mock.patch.object(S.os, "access", side_effect=access_as_other_user):
        as_other = S.artifact_sha256(a)
    assert as_other == as_owner


def test_artifact_sums_filter(trees, tmp_path):
    a = trees[0]
    tool = tmp_path / "tool"
    tool.write_bytes(b"\x7fELF fake")
    blog = S.normalize_site({"name": "blog", "listen": "8001", "version": "1.4.2", "artifact": "one/blog-1.4.2",
                             "command": "bin/app"}, {}, str(tmp_path))
    cli = S.normalize_site({"name": "tool", "listen": "8002", "version": "1", "artifact": str(tool)}, {},
                           str(tmp_path))
    assert blog["artifact_path"].endswith("/")
    sums = F.artifact_sums([blog, cli])
    assert sums == {"blog": S.artifact_sha256(a), "tool": hashlib.sha256(b"\x7fELF fake").hexdigest()}
    assert F.artifact_sums([]) == {}


# --------------------------------------------------------------------------
# validate_sites: checksum
# --------------------------------------------------------------------------

@pytest.fixture
def base(trees, tmp_path):
    tool = tmp_path / "tool"
    tool.write_bytes(b"#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    return str(tmp_path)


def site(**kw):
    out = {"name": "blog", "listen": "127.0.0.1:8001", "health_listen": "127.0.0.1:19001",
           "version": "1.4.2", "artifact": "one/blog-1.4.2", "command": "bin/app"}
    out.update(kw)
    return out


def checksum_errors(errors):
    return [e for e in errors if "'checksum'" in e]


def test_valid_site_without_checksum(base):
    assert S.validate_sites([site()], base) == []


def test_checksum_match_has_no_error(base):
    digest = S.artifact_sha256(os.path.join(base, "one", "blog-1.4.2"))
    assert S.validate_sites([site(checksum="sha256:" + digest)], base) == []


def test_checksum_match_for_file_artifact(base):
    digest = hashlib.sha256(b"#!/bin/sh\nexit 0\n").hexdigest()
    assert S.validate_sites([site(name="tool", artifact="tool", command=None, checksum="sha256:" + digest)],
                            base) == []


@pytest.mark.parametrize("value", [
    "md5:d41d8cd98f00b204e9800998ecf8427e",
    "sha256:" + "A" * 64,
    "sha256:" + "a" * 63,
    "sha256:" + "a" * 65,
    "sha512:" + "a" * 64,
    " sha256:" + "a" * 64,
    "a" * 64,
    "",
    12345,
    ["sha256:" + "a" * 64],
])
def test_checksum_wrong_format(base, value):
    errs = S.validate_sites([site(checksum=value)], base)
    assert len(errs) == 1, errs
    assert errs[0].startswith("site 'blog' (onebox_sites[0]): field 'checksum'")
    assert "must be sha256:<64 lowercase hex digits>" in errs[0]


def test_checksum_mismatch_names_site_field_and_actual_sum(base):
    digest = S.artifact_sha256(os.path.join(base, "one", "blog-1.4.2"))
    wrong = "sha256:" + "0" * 64
    errs = S.validate_sites([site(checksum=wrong)], base)
    assert len(errs) == 1, errs
    err = errs[0]
    assert err.startswith("site 'blog' (onebox_sites[0]): field 'checksum'")
    assert digest in err
    assert wrong in err
    assert os.path.join(base, "one", "blog-1.4.2") in err


def test_checksum_mismatch_after_content_change(base):
    path = os.path.join(base, "one", "blog-1.4.2")
    pinned = "sha256:" + S.artifact_sha256(path)
    with open(os.path.join(path, "README"), "a") as handle:
        handle.write("changed\n")
    errs = checksum_errors(S.validate_sites([site(checksum=pinned)], base))
    assert len(errs) == 1
    assert "site 'blog'" in errs[0]


def test_checksum_mismatch_in_second_site_names_that_site(base):
    digest = S.artifact_sha256(os.path.join(base, "one", "blog-1.4.2"))
    sites = [site(checksum="sha256:" + digest),
             site(name="shop", listen="8002", health_listen="127.0.0.1:19002", checksum="sha256:" + "1" * 64)]
    errs = S.validate_sites(sites, base)
    assert len(errs) == 1, errs
    assert errs[0].startswith("site 'shop' (onebox_sites[1]): field 'checksum'")


def test_checksum_not_compared_without_artifact_checks(base):
    assert S.validate_sites([site(checksum="sha256:" + "0" * 64)], base, check_artifacts=False) == []
    errs = S.validate_sites([site(checksum="nope")], base, check_artifacts=False)
    assert len(checksum_errors(errs)) == 1


def test_checksum_of_missing_artifact_reports_only_artifact(base):
    errs = S.validate_sites([site(artifact="one/missing", checksum="sha256:" + "0" * 64)], base)
    assert checksum_errors(errs) == []
    assert any("field 'artifact'" in e and "does not exist" in e for e in errs)


def test_checksum_via_site_errors_filter(base):
    digest = S.artifact_sha256(os.path.join(base, "one", "blog-1.4.2"))
    assert F.site_errors([site(checksum="sha256:" + digest)], base) == []
    assert len(checksum_errors(F.site_errors([site(checksum="sha256:" + "f" * 64)], base))) == 1
