# -*- coding: utf-8 -*-
"""onebox.deploy.releases (plugins/modules/releases.py): listing and pruning
the releases of a site. The module runs in-process on real files under tmp_path.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.onebox.deploy.plugins.modules import releases as releases_module
from module_runner import invoke
from release_trees import NOW, make_release, point_current, versions


def run_module(module, args, check_mode=False):
    """Run ``module.main()`` in-process; returns (failed, result)."""
    return invoke(module.main, args, check_mode)[:2]


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


def make_snapshot(site_dir, name, from_version, taken_at):
    path = site_dir / "snapshots" / name
    path.mkdir(parents=True)
    (path / "snapshot.json").write_text(json.dumps(dict(from_version=from_version, to_version="x", taken_at=taken_at)))
    return path


def test_module_prune_keeps_the_newest_snapshots_and_the_one_a_data_rollback_needs(site):
    # current r6, previous r5: the snapshot taken when r5 was replaced is kept however old it is
    for i, from_version in enumerate(["r1", "r5", "r2", "r3", "r4"]):
        make_snapshot(site, "s%d" % i, from_version, NOW + i)
    (site / "snapshots" / ".s9.partial-x").mkdir()
    failed, res = run_module(releases_module, dict(site_dirs=[str(site)], state="pruned", keep=2))
    assert not failed, res.get('msg')
    assert res['sites'][str(site)]['snapshots_removed'] == ["s0", "s2"]
    assert sorted(os.listdir(str(site / "snapshots"))) == ["s1", "s3", "s4"]
    aside = site / "aside" / "x-written-by-r6"
    aside.mkdir(parents=True)
    failed, res = run_module(releases_module, dict(site_dir=str(site), state="pruned", keep=1))
    assert res['snapshots_removed'] == ["s3"] and aside.is_dir()        # what a restore moved aside stays
