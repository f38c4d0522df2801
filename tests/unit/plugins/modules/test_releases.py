# -*- coding: utf-8 -*-
"""Unit tests for release handling and the file-writing modules.

Covers plugins/module_utils/releases.py, plugins/modules/releases.py,
plugins/modules/install_files.py and plugins/modules/audit_log.py. Modules run
in-process on real files under tmp_path.
"""

from __future__ import absolute_import, division, print_function

import hashlib
import json
import os
import re

import pytest

from ansible_collections.onebox.deploy.plugins.module_utils import releases as R
from ansible_collections.onebox.deploy.plugins.modules import audit_log as audit_log_module
from ansible_collections.onebox.deploy.plugins.modules import install_files as install_files_module
from ansible_collections.onebox.deploy.plugins.modules import releases as releases_module
from module_runner import invoke

ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# --------------------------------------------------------------------------
# module invocation
# --------------------------------------------------------------------------

def run_module(module, args, check_mode=False):
    """Run ``module.main()`` in-process; returns (failed, result)."""
    return invoke(module.main, args, check_mode)[:2]


# --------------------------------------------------------------------------
# release trees
# --------------------------------------------------------------------------

NOW = 1795628402.0


def make_release(site_dir, version, installed_at=None, sha256=None, mtime=None, meta=True):
    path = os.path.join(str(site_dir), "releases", version)
    os.makedirs(os.path.join(path, "bin"))
    with open(os.path.join(path, "bin", "app"), "w") as handle:
        handle.write("app %s\n" % version)
    if meta:
        data = dict(version=version, sha256=sha256 or hashlib.sha256(version.encode()).hexdigest())
        if installed_at is not None:
            data["installed_at"] = installed_at
        with open(os.path.join(path, R.METADATA), "w") as handle:
            json.dump(data, handle)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def point_current(site_dir, version, relative=False):
    link = os.path.join(str(site_dir), "current")
    if os.path.lexists(link):
        os.unlink(link)
    target = os.path.join("releases", version) if relative else os.path.join(str(site_dir), "releases", version)
    os.symlink(target, link)


def versions(releases):
    return [r["version"] for r in releases]


def rel(version, at):
    return dict(version=version, sha256=None, installed_at=at)


# --------------------------------------------------------------------------
# module_utils.releases: list_releases / current_version / previous_version
# --------------------------------------------------------------------------

def test_list_releases_orders_by_recorded_install_time(tmp_path):
    # names sort differently from install order
    make_release(tmp_path, "1.10.0", installed_at=NOW + 30, sha256="a" * 64)
    make_release(tmp_path, "1.9.0", installed_at=NOW + 20, sha256="b" * 64)
    make_release(tmp_path, "2.0.0", installed_at=NOW + 10, sha256="c" * 64)
    releases = R.list_releases(str(tmp_path))
    assert versions(releases) == ["2.0.0", "1.9.0", "1.10.0"]
    assert releases[0] == dict(version="2.0.0", sha256="c" * 64, installed_at=NOW + 10)
    assert [r["sha256"] for r in releases] == ["c" * 64, "b" * 64, "a" * 64]


def test_list_releases_ignores_mtime_when_metadata_has_install_time(tmp_path):
    make_release(tmp_path, "a", installed_at=NOW + 10, mtime=NOW + 500)
    make_release(tmp_path, "b", installed_at=NOW + 20, mtime=NOW - 500)
    assert versions(R.list_releases(str(tmp_path))) == ["a", "b"]


def test_list_releases_accepts_install_time_as_string(tmp_path):
    # the site role templates installed_at, which may arrive as a string
    make_release(tmp_path, "old", installed_at="%.3f" % (NOW + 1))
    make_release(tmp_path, "new", installed_at="%.3f" % (NOW + 2))
    releases = R.list_releases(str(tmp_path))
    assert versions(releases) == ["old", "new"]
    assert releases[0]["installed_at"] == pytest.approx(NOW + 1)


def test_list_releases_falls_back_to_mtime(tmp_path):
    make_release(tmp_path, "meta-mid", installed_at=NOW + 20)
    make_release(tmp_path, "nometa-old", meta=False, mtime=NOW + 10)
    make_release(tmp_path, "nometa-new", meta=False, mtime=NOW + 30)
    broken = make_release(tmp_path, "broken-meta", meta=False)
    with open(os.path.join(broken, R.METADATA), "w") as handle:
        handle.write("{oops")
    os.utime(broken, (NOW + 40, NOW + 40))
    badtime = make_release(tmp_path, "bad-time", installed_at="soon")
    os.utime(badtime, (NOW + 5, NOW + 5))
    releases = R.list_releases(str(tmp_path))
    assert versions(releases) == ["bad-time", "nometa-old", "meta-mid", "nometa-new", "broken-meta"]
    by_version = dict((r["version"], r) for r in releases)
    assert by_version["nometa-old"]["sha256"] is None
    assert by_version["broken-meta"]["sha256"] is None
    assert by_version["nometa-old"]["installed_at"] == pytest.approx(NOW + 10)


def test_list_releases_ties_are_ordered_by_version(tmp_path):
    make_release(tmp_path, "b", installed_at=NOW)
    make_release(tmp_path, "a", installed_at=NOW)
    assert versions(R.list_releases(str(tmp_path))) == ["a", "b"]


def test_list_releases_skips_hidden_links_and_files(tmp_path):
    make_release(tmp_path, "1.0", installed_at=NOW)
    base = tmp_path / "releases"
    (base / ".1.1.partial").mkdir()
    (base / ".1.0.replaced-abc").mkdir()
    (base / "notes.txt").write_text("x")
    os.symlink(str(base / "1.0"), str(base / "alias"))
    assert versions(R.list_releases(str(tmp_path))) == ["1.0"]


def test_list_releases_of_missing_site_is_empty(tmp_path):
    assert R.list_releases(str(tmp_path / "nope")) == []
    assert R.list_releases(str(tmp_path)) == []


def test_current_version(tmp_path):
    assert R.current_version(str(tmp_path)) is None
    make_release(tmp_path, "1.4.2", installed_at=NOW)
    point_current(tmp_path, "1.4.2")
    assert R.current_version(str(tmp_path)) == "1.4.2"
    point_current(tmp_path, "1.4.2", relative=True)
    assert R.current_version(str(tmp_path)) == "1.4.2"
    os.unlink(str(tmp_path / "current"))
    os.symlink(str(tmp_path / "releases" / "1.4.2") + "/", str(tmp_path / "current"))
    assert R.current_version(str(tmp_path)) == "1.4.2"


def test_current_version_of_plain_directory_is_none(tmp_path):
    (tmp_path / "current").mkdir()
    assert R.current_version(str(tmp_path)) is None


def test_previous_version():
    releases = [rel("1.0", 1), rel("1.1", 2), rel("1.2", 3)]
    assert R.previous_version(releases, "1.2") == "1.1"
    assert R.previous_version(releases, "1.1") == "1.0"
    assert R.previous_version(releases, "1.0") is None
    assert R.previous_version(releases, "9.9") is None
    assert R.previous_version(releases, None) is None
    assert R.previous_version([], "1.0") is None


# --------------------------------------------------------------------------
# prune_plan
# --------------------------------------------------------------------------

SEVEN = [rel("r%d" % i, i) for i in range(1, 8)]


def test_prune_plan_keeps_newest():
    assert R.prune_plan(SEVEN, "r7", 3) == ["r1", "r2", "r3", "r4"]


def test_prune_plan_keep_one_still_keeps_the_rollback_target():
    assert R.prune_plan(SEVEN, "r7", 1) == ["r1", "r2", "r3", "r4", "r5"]


def test_prune_plan_keeps_current_and_previous_after_rollback():
    releases = SEVEN[:6]
    plan = R.prune_plan(releases, "r2", 2)
    assert plan == ["r3", "r4"]
    assert "r1" not in plan and "r2" not in plan          # current and the one before it
    assert "r5" not in plan and "r6" not in plan          # the newest two


def test_prune_plan_current_is_oldest():
    assert R.prune_plan(SEVEN[:4], "r1", 1) == ["r2", "r3"]


def test_prune_plan_without_current_keeps_only_newest():
    assert R.prune_plan(SEVEN[:4], None, 2) == ["r1", "r2"]
    assert R.prune_plan(SEVEN[:4], "gone", 2) == ["r1", "r2"]


def test_prune_plan_keep_covers_all():
    assert R.prune_plan(SEVEN, "r7", 7) == []
    assert R.prune_plan(SEVEN, "r7", 100) == []
    assert R.prune_plan([], None, 3) == []


def test_prune_plan_never_deletes_current_or_previous():
    for keep in range(1, 8):
        for index in range(len(SEVEN)):
            current = SEVEN[index]["version"]
            plan = R.prune_plan(SEVEN, current, keep)
            assert current not in plan
            if index > 0:
                assert SEVEN[index - 1]["version"] not in plan
            kept = [r["version"] for r in SEVEN if r["version"] not in plan]
            assert set(v["version"] for v in SEVEN[-keep:]) <= set(kept)


# --------------------------------------------------------------------------
# releases module
# --------------------------------------------------------------------------

@pytest.fixture
def site(tmp_path):
    """Six releases r1..r6 installed in order, current -> r6, plus leftovers."""
    site_dir = tmp_path / "srv" / "blog"
    for i in range(1, 7):
        make_release(site_dir, "r%d" % i, installed_at=NOW + i)
    point_current(site_dir, "r6")
    base = site_dir / "releases"
    (base / ".r7.partial" / "bin").mkdir(parents=True)
    (base / ".r7.partial" / "bin" / "app").write_text("half")
    (base / ".r3.replaced-5f0c8c7e2a1b4c52").mkdir()
    (base / ".keep-me").mkdir()
    return site_dir


def listing(site_dir):
    return sorted(os.listdir(str(site_dir / "releases")))


def test_module_lists_releases(site):
    failed, res = run_module(releases_module, dict(site_dir=str(site)))
    assert not failed, res.get('msg')
    assert res['changed'] is False
    assert versions(res['releases']) == ["r1", "r2", "r3", "r4", "r5", "r6"]
    assert res['current'] == "r6"
    assert res['previous'] == "r5"
    assert res['removed'] == []
    assert len(listing(site)) == 9


def test_module_lists_missing_site(tmp_path):
    failed, res = run_module(releases_module, dict(site_dir=str(tmp_path / "nope")))
    assert not failed
    assert res['releases'] == [] and res['current'] is None and res['previous'] is None


def test_module_prunes_old_releases_and_leftovers(site):
    failed, res = run_module(releases_module, dict(site_dir=str(site), state="pruned", keep=2))
    assert not failed, res.get('msg')
    assert res['changed'] is True
    assert res['removed'] == ["r1", "r2", "r3", "r4"]
    # listed as found before pruning
    assert versions(res['releases']) == ["r1", "r2", "r3", "r4", "r5", "r6"]
    assert listing(site) == [".keep-me", "r5", "r6"]
    assert os.path.realpath(str(site / "current")) == str(site / "releases" / "r6")


def test_module_prune_after_rollback_keeps_current_and_previous(site):
    point_current(site, "r2")
    failed, res = run_module(releases_module, dict(site_dir=str(site), state="pruned", keep=2))
    assert not failed, res.get('msg')
    assert res['current'] == "r2" and res['previous'] == "r1"
    assert res['removed'] == ["r3", "r4"]
    assert listing(site) == [".keep-me", "r1", "r2", "r5", "r6"]


def test_module_prune_check_mode_deletes_nothing(site):
    before = listing(site)
    failed, res = run_module(releases_module, dict(site_dir=str(site), state="pruned", keep=2), check_mode=True)
    assert not failed, res.get('msg')
    assert res['changed'] is True
    assert res['removed'] == ["r1", "r2", "r3", "r4"]
    assert listing(site) == before


def test_module_prune_only_leftovers_is_a_change(tmp_path):
    site_dir = tmp_path / "blog"
    make_release(site_dir, "1.0", installed_at=NOW)
    point_current(site_dir, "1.0")
    (site_dir / "releases" / ".1.1.partial").mkdir()
    failed, res = run_module(releases_module, dict(site_dir=str(site_dir), state="pruned", keep=5))
    assert not failed, res.get('msg')
    assert res['changed'] is True
    assert res['removed'] == []
    assert listing(site_dir) == ["1.0"]


def test_module_prune_nothing_to_do(tmp_path):
    site_dir = tmp_path / "blog"
    make_release(site_dir, "1.0", installed_at=NOW)
    make_release(site_dir, "1.1", installed_at=NOW + 1)
    point_current(site_dir, "1.1")
    failed, res = run_module(releases_module, dict(site_dir=str(site_dir), state="pruned", keep=5))
    assert not failed, res.get('msg')
    assert res['changed'] is False
    assert res['removed'] == []
    assert listing(site_dir) == ["1.0", "1.1"]


def test_module_prune_of_missing_site_is_no_change(tmp_path):
    failed, res = run_module(releases_module, dict(site_dir=str(tmp_path / "nope"), state="pruned", keep=1))
    assert not failed, res.get('msg')
    assert res['changed'] is False


@pytest.mark.parametrize("keep", [0, -1])
def test_module_prune_rejects_keep_below_one(site, keep):
    before = listing(site)
    failed, res = run_module(releases_module, dict(site_dir=str(site), state="pruned", keep=keep))
    assert failed
    assert "keep must be >= 1" in res['msg']
    assert str(site) in res['msg']
    assert listing(site) == before


# --------------------------------------------------------------------------
# install_files
# --------------------------------------------------------------------------

pytestmark_root = pytest.mark.skipif(os.geteuid() != 0, reason="install_files chowns to root")


@pytest.fixture
def files(tmp_path):
    staged = tmp_path / "staged"
    staged.mkdir()
    etc = tmp_path / "etc"
    etc.mkdir()
    return dict(staged=staged, etc=etc, backup=tmp_path / "site" / "units" / "previous")


def spec(files, name, **kw):
    out = dict(src=str(files["staged"] / name), dest=str(files["etc"] / name),
               backup=str(files["backup"] / name))
    out.update(kw)
    return out


def read(path):
    with open(str(path)) as handle:
        return handle.read()


@pytestmark_root
def test_install_first_time(files):
    (files["staged"] / "blog.service").write_text("[Service]\nExecStart=/bin/true\n")
    failed, res = run_module(install_files_module, dict(files=[spec(files, "blog.service")]))
    assert not failed, res.get('msg')
    dest = files["etc"] / "blog.service"
    assert res['changed'] is True
    assert res['installed'] == [dict(path=str(dest), backup=None)]
    assert read(dest) == "[Service]\nExecStart=/bin/true\n"
    st = os.stat(str(dest))
    assert st.st_mode & 0o7777 == 0o644
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert not files["backup"].exists()
    assert sorted(os.listdir(str(files["etc"]))) == ["blog.service"]


@pytestmark_root
def test_install_unchanged_file_leaves_backup_alone(files):
    (files["staged"] / "blog.service").write_text("same\n")
    (files["etc"] / "blog.service").write_text("same\n")
    files["backup"].mkdir(parents=True)
    backup = files["backup"] / "blog.service"
    backup.write_text("older\n")
    os.utime(str(backup), (NOW, NOW))
    failed, res = run_module(install_files_module, dict(files=[spec(files, "blog.service")]))
    assert not failed, res.get('msg')
    assert res['changed'] is False
    assert res['installed'] == []
    assert read(backup) == "older\n"
    assert os.stat(str(backup)).st_mtime == NOW
    assert read(files["etc"] / "blog.service") == "same\n"


@pytestmark_root
def test_install_changed_file_keeps_backup_and_applies_mode(files):
    (files["staged"] / "blog.env").write_text("SECRET=new-value-2\n")
    dest = files["etc"] / "blog.env"
    dest.write_text("SECRET=old\n")
    os.chmod(str(dest), 0o644)
    failed, res = run_module(install_files_module, dict(files=[spec(files, "blog.env", mode="0600")]))
    assert not failed, res.get('msg')
    backup = files["backup"] / "blog.env"
    assert res['changed'] is True
    assert res['installed'] == [dict(path=str(dest), backup=str(backup))]
    assert read(dest) == "SECRET=new-value-2\n"
    assert read(backup) == "SECRET=old\n"
    assert os.stat(str(dest)).st_mode & 0o7777 == 0o600
    assert os.stat(str(backup)).st_mode & 0o7777 == 0o600
    assert os.stat(str(files["backup"])).st_mode & 0o777 == 0o700
    # contents never appear in the result
    assert "SECRET" not in json.dumps(res)
    assert sorted(os.listdir(str(files["etc"]))) == ["blog.env"]


@pytestmark_root
def test_install_replaces_previous_backup(files):
    (files["staged"] / "blog.service").write_text("v3 content\n")
    (files["etc"] / "blog.service").write_text("v2\n")
    files["backup"].mkdir(parents=True)
    (files["backup"] / "blog.service").write_text("v1\n")
    failed, res = run_module(install_files_module, dict(files=[spec(files, "blog.service")]))
    assert not failed, res.get('msg')
    assert read(files["backup"] / "blog.service") == "v2\n"
    assert read(files["etc"] / "blog.service") == "v3 content\n"


@pytestmark_root
def test_install_several_files_reports_only_changed_ones(files):
    for name, staged, current in (("a.service", "A2\n", "A1\n"), ("b.service", "B\n", "B\n"),
                                  ("c.socket", "C\n", None)):
        (files["staged"] / name).write_text(staged)
        if current is not None:
            (files["etc"] / name).write_text(current)
    failed, res = run_module(install_files_module, dict(files=[
        spec(files, "a.service"), spec(files, "b.service"), spec(files, "c.socket")]))
    assert not failed, res.get('msg')
    assert res['installed'] == [
        dict(path=str(files["etc"] / "a.service"), backup=str(files["backup"] / "a.service")),
        dict(path=str(files["etc"] / "c.socket"), backup=None),
    ]
    assert not (files["backup"] / "b.service").exists()


@pytestmark_root
def test_install_missing_src_fails_naming_dest(files):
    (files["staged"] / "a.service").write_text("A\n")
    (files["etc"] / "b.service").write_text("old b\n")
    failed, res = run_module(install_files_module, dict(files=[
        spec(files, "a.service"), spec(files, "b.service")]))
    assert failed
    assert str(files["etc"] / "b.service") in res['msg']
    assert str(files["staged"] / "b.service") in res['msg']
    assert "does not exist" in res['msg']
    # the file before it was installed and is reported, b is untouched
    assert res['installed'] == [dict(path=str(files["etc"] / "a.service"), backup=None)]
    assert read(files["etc"] / "b.service") == "old b\n"


@pytestmark_root
def test_install_bad_mode_fails_naming_dest(files):
    (files["staged"] / "a.service").write_text("A\n")
    failed, res = run_module(install_files_module, dict(files=[spec(files, "a.service", mode="rw-r--r--")]))
    assert failed
    assert str(files["etc"] / "a.service") in res['msg']
    assert "octal" in res['msg']
    assert not (files["etc"] / "a.service").exists()


@pytestmark_root
def test_install_check_mode_writes_nothing(files):
    (files["staged"] / "new.service").write_text("new\n")
    (files["staged"] / "old.service").write_text("changed content\n")
    (files["etc"] / "old.service").write_text("old\n")
    failed, res = run_module(install_files_module, dict(files=[
        spec(files, "new.service"), spec(files, "old.service")]), check_mode=True)
    assert not failed, res.get('msg')
    assert res['changed'] is True
    assert res['installed'] == [
        dict(path=str(files["etc"] / "new.service"), backup=None),
        dict(path=str(files["etc"] / "old.service"), backup=str(files["backup"] / "old.service")),
    ]
    assert sorted(os.listdir(str(files["etc"]))) == ["old.service"]
    assert read(files["etc"] / "old.service") == "old\n"
    assert not files["backup"].exists()


# --------------------------------------------------------------------------
# audit_log
# --------------------------------------------------------------------------

def audit(path, **kw):
    args = dict(path=str(path))
    args.update(kw)
    return args


def lines(path):
    with open(str(path)) as handle:
        return [json.loads(line) for line in handle]


def test_audit_append_two_entries(tmp_path):
    path = tmp_path / "log" / "onebox" / "deploy.jsonl"
    entries = [
        dict(action="deploy", site="blog", by="alice", from_version="1.4.1", to_version="1.4.2", outcome="success"),
        dict(action="deploy", site="shop", by="alice", time="2026-01-01T00:00:00Z", outcome="failed"),
    ]
    failed, res = run_module(audit_log_module, audit(path, entries=entries))
    assert not failed, res.get('msg')
    assert res['changed'] is True
    assert res['written'] == 2
    got = lines(path)
    assert len(got) == 2
    assert ISO_RE.match(got[0]['time'])
    assert dict((k, v) for k, v in got[0].items() if k != 'time') == entries[0]
    assert got[1]['time'] == "2026-01-01T00:00:00Z"   # an existing time is kept
    assert got[1]['site'] == "shop"
    assert os.stat(str(path)).st_mode & 0o777 == 0o640
    assert os.stat(str(path.parent)).st_mode & 0o777 == 0o750


def test_audit_appends_to_existing_file(tmp_path):
    path = tmp_path / "deploy.jsonl"
    path.write_text('{"site": "old", "time": "t0"}\n')
    failed, res = run_module(audit_log_module, audit(path, entries=[dict(site="blog")]))
    assert not failed, res.get('msg')
    assert [r['site'] for r in lines(path)] == ["old", "blog"]


def test_audit_empty_entries_write_nothing(tmp_path):
    path = tmp_path / "deploy.jsonl"
    failed, res = run_module(audit_log_module, audit(path, entries=[]))
    assert not failed
    assert res['changed'] is False and res['written'] == 0
    assert not path.exists()


def test_audit_check_mode_writes_nothing(tmp_path):
    path = tmp_path / "log" / "deploy.jsonl"
    failed, res = run_module(audit_log_module, audit(path, entries=[dict(site="blog")]), check_mode=True)
    assert not failed
    assert res['changed'] is True
    assert res['written'] == 0
    assert not (tmp_path / "log").exists()


def write_history(path):
    records = []
    for i in range(1, 6):
        records.append(dict(site="blog", to_version="1.%d" % i, time="2026-01-0%dT00:00:00Z" % i))
        if i % 2:
            records.append(dict(site="shop", to_version="2.%d" % i))
    records.append(dict(event="lock_takeover", by="bob"))
    with open(str(path), "w") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return records


def test_audit_query_site_with_limit_returns_newest_oldest_first(tmp_path):
    path = tmp_path / "deploy.jsonl"
    write_history(path)
    failed, res = run_module(audit_log_module, audit(path, site="blog", limit=3))
    assert not failed, res.get('msg')
    assert res['changed'] is False
    assert [r['to_version'] for r in res['records']] == ["1.3", "1.4", "1.5"]
    assert all(r['site'] == "blog" for r in res['records'])


def test_audit_query_without_site_returns_last_records(tmp_path):
    path = tmp_path / "deploy.jsonl"
    records = write_history(path)
    failed, res = run_module(audit_log_module, audit(path, limit=2))
    assert not failed
    assert res['records'] == records[-2:]
    failed, res = run_module(audit_log_module, audit(path))
    assert res['records'] == records   # default limit 20 covers all


def test_audit_query_skips_garbage_lines(tmp_path):
    path = tmp_path / "deploy.jsonl"
    with open(str(path), "w") as handle:
        handle.write('{"site": "blog", "n": 1}\n')
        handle.write("not json at all\n")
        handle.write('{"site": "blog", "n": 2, "trunc\n')
        handle.write("\n")
        handle.write('[1, 2, 3]\n')
        handle.write('"a string"\n')
        handle.write('{"site": "blog", "n": 3}\n')
    failed, res = run_module(audit_log_module, audit(path, site="blog"))
    assert not failed, res.get('msg')
    assert [r['n'] for r in res['records']] == [1, 3]


def test_audit_query_skips_undecodable_line(tmp_path):
    path = tmp_path / "deploy.jsonl"
    with open(str(path), "wb") as handle:
        handle.write(b'{"site": "blog", "n": 1}\n')
        handle.write(b'\xff\xfe\x00garbage\x80\n')
        handle.write(b'{"site": "blog", "n": 2}\n')
    failed, res = run_module(audit_log_module, audit(path, site="blog"))
    assert not failed, res.get('msg')
    assert [r['n'] for r in res['records']] == [1, 2]


def test_audit_query_missing_file_is_empty(tmp_path):
    failed, res = run_module(audit_log_module, audit(tmp_path / "nope.jsonl", site="blog"))
    assert not failed, res.get('msg')
    assert res['records'] == []
    assert res['changed'] is False


def test_audit_query_works_in_check_mode(tmp_path):
    path = tmp_path / "deploy.jsonl"
    write_history(path)
    failed, res = run_module(audit_log_module, audit(path, site="shop", limit=5), check_mode=True)
    assert not failed
    assert [r['to_version'] for r in res['records']] == ["2.1", "2.3", "2.5"]


def test_audit_query_limit_below_one_fails(tmp_path):
    path = tmp_path / "deploy.jsonl"
    write_history(path)
    failed, res = run_module(audit_log_module, audit(path, limit=0))
    assert failed
    assert "limit must be >= 1" in res['msg']


def test_audit_round_trip(tmp_path):
    path = tmp_path / "deploy.jsonl"
    for version in ("1.0", "1.1", "1.2"):
        failed = run_module(audit_log_module, audit(path, entries=[dict(site="blog", to_version=version)]))[0]
        assert not failed
    failed, res = run_module(audit_log_module, audit(path, site="blog", limit=2))
    assert [r['to_version'] for r in res['records']] == ["1.1", "1.2"]
    assert all(ISO_RE.match(r['time']) for r in res['records'])
