# -*- coding: utf-8 -*-
"""The release directories of a site (plugins/module_utils/releases.py):
listing, current and previous release, the prune plan, and what ``stage``
records of ``current`` for the diff of stage_releases."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.onebox.deploy.plugins.module_utils import releases as R
from release_trees import NOW, make_release, point_current, versions


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
# stage: current_target, what current pointed at before (for the diff)
# --------------------------------------------------------------------------

def staged(site_dir, version, point=True, stage=False):
    return dict(name="blog", version=version, site_dir=str(site_dir), stage=stage, point_current=point, meta={})


def test_stage_records_where_current_pointed_before(tmp_path):
    site_dir = tmp_path / "blog"
    make_release(site_dir, "1.0")
    make_release(site_dir, "1.1")
    point_current(site_dir, "1.0")
    moved, kept = staged(site_dir, "1.1"), staged(site_dir, "1.1", point=False)
    out = R.stage([moved], None, "run-1", check_mode=True)
    assert moved["current_target"] == str(site_dir / "releases" / "1.0")
    assert out["blog"]["current"] == str(site_dir / "releases" / "1.1")
    # recorded whether or not current moves; the link itself as it is (a relative one stays relative)
    point_current(site_dir, "1.0", relative=True)
    R.stage([kept], None, "run-1", check_mode=True)
    assert kept["current_target"] == "releases/1.0"
    assert os.readlink(str(site_dir / "current")) == "releases/1.0"


def test_stage_records_no_current_target_on_a_new_site(tmp_path):
    rel_entry = staged(tmp_path / "blog", "1.0")
    out = R.stage([rel_entry], None, "run-1", check_mode=True)
    assert "current_target" in rel_entry and rel_entry["current_target"] is None
    assert out["blog"]["current"] == str(tmp_path / "blog" / "releases" / "1.0")


def test_stage_points_current_at_an_unpacked_release(tmp_path):
    site_dir = tmp_path / "blog"
    make_release(site_dir, "1.0")
    make_release(site_dir, "1.1")
    point_current(site_dir, "1.0")
    rel_entry = staged(site_dir, "1.1")
    out = R.stage([rel_entry], None, "run-1")
    assert out["blog"] == dict(changed=True, staged=False, replaced=False, current=str(site_dir / "releases" / "1.1"),
                               dropped_bits=[])
    assert rel_entry["current_target"] == str(site_dir / "releases" / "1.0")
    assert os.readlink(str(site_dir / "current")) == str(site_dir / "releases" / "1.1")
