# -*- coding: utf-8 -*-
"""onebox.deploy.snapshots (plugins/modules/snapshots.py): one call snapshots
every site of a roll; a snapshot that fails fails the module naming the site
and the field. In-process, on real SQLite files under tmp_path."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import os
import pwd
import sqlite3

from ansible_collections.onebox.deploy.plugins.modules import snapshots as module
from module_runner import invoke

USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def make_site(tmp_path, name, db=True):
    site_dir = tmp_path / name
    (site_dir / "shared").mkdir(parents=True)
    if db:
        conn = sqlite3.connect(str(site_dir / "shared" / "app.db"))
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
        conn.close()
    return dict(name=name, site_dir=str(site_dir), user=USER, group=GROUP, data=["shared/app.db"],
                from_version="1.0", to_version="2.0")


def test_one_call_snapshots_every_site_and_says_what_was_not_created_yet(tmp_path):
    sites = [make_site(tmp_path, "blog"), make_site(tmp_path, "wiki", db=False)]
    failed, res, _took = invoke(module.main, dict(sites=sites, run_id="r1", by="alice@laptop"))
    assert not failed, res
    assert res["changed"] is True
    assert res["sites"]["blog"]["taken"] and os.path.isdir(res["sites"]["blog"]["path"])
    assert res["sites"]["wiki"]["taken"] is False and res["sites"]["wiki"]["not_created"] == ["shared/app.db"]


def test_check_mode_reports_and_writes_nothing(tmp_path):
    sites = [make_site(tmp_path, "blog")]
    failed, res, _took = invoke(module.main, dict(sites=sites), check_mode=True)
    assert not failed and res["changed"] is True and res["sites"]["blog"]["would"]
    assert not os.path.exists(os.path.join(sites[0]["site_dir"], "snapshots"))


def test_a_failed_snapshot_names_the_site_and_stops_the_deploy(tmp_path):
    site = make_site(tmp_path, "blog", db=False)
    with open(os.path.join(site["site_dir"], "shared", "app.db"), "w") as handle:
        handle.write("this is not a database" * 50)
    failed, res, _took = invoke(module.main, dict(sites=[site]))
    assert failed
    assert res["msg"].startswith("site blog: field 'data': the snapshot before 2.0 failed, so the deploy stops before "
                                 "anything changed: ")
    assert "the SQLite backup failed" in res["msg"]
