# -*- coding: utf-8 -*-
"""Unit tests for onebox.deploy.preflight (plugins/modules/preflight.py over
plugins/module_utils/host.py): the same-version-different-content check and
the site accounts (never taken over)."""

from __future__ import absolute_import, division, print_function

import contextlib
import grp
import json
import os
import pwd
import shutil
import subprocess

import pytest

from ansible_collections.onebox.deploy.plugins.modules import preflight
from module_runner import invoke

INSTALLED = "a" * 64
ARTIFACT = "b" * 64


def run_preflight(tmp_path, sums, force_release=False):
    site = dict(name="blog", version="1.0.0", listen="127.0.0.1:1", listen_port=1, health_port=1,
                instances=[], service_units=["blog.service"])
    args = dict(sites=[site], unit_dir=str(tmp_path / "units"), root=str(tmp_path / "srv"), sums=sums,
                force_release=force_release)
    return invoke(preflight.main, args, patches={
        "run_command": lambda self, args, **kw: (0, "", ""),
        "get_bin_path": lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name})[:2]


def release(tmp_path, current):
    site_dir = tmp_path / "srv" / "blog"
    rel = site_dir / "releases" / "1.0.0"
    rel.mkdir(parents=True)
    (rel / ".onebox-release.json").write_text(json.dumps(dict(sha256=INSTALLED, installed_at=1.0)))
    (tmp_path / "units").mkdir()
    if current:
        os.symlink(str(rel), str(site_dir / "current"))


@pytest.mark.parametrize("force_release", [False, True])
def test_same_version_other_content_is_refused_once_a_release_served(tmp_path, force_release):
    release(tmp_path, current=True)
    failed, res = run_preflight(tmp_path, {"blog": ARTIFACT}, force_release)
    assert res["sites"]["blog"]["release_differs"] is True
    assert res["sites"]["blog"]["current_release"] == "1.0.0"
    if force_release:
        assert not failed and res["errors"] == []
    else:
        assert failed and len(res["errors"]) == 1
        assert "release 1.0.0 is already installed with different content" in res["errors"][0]


def test_same_version_other_content_is_replaced_when_nothing_ever_served(tmp_path):
    release(tmp_path, current=False)     # a first install that was rolled back: no current symlink
    failed, res = run_preflight(tmp_path, {"blog": ARTIFACT})
    assert not failed, res.get("msg")
    assert res["errors"] == []
    assert res["sites"]["blog"]["release_differs"] is True
    assert res["sites"]["blog"]["current_release"] is None


@pytest.mark.parametrize("current", [False, True])
def test_same_content_does_not_differ(tmp_path, current):
    release(tmp_path, current=current)
    failed, res = run_preflight(tmp_path, {"blog": INSTALLED})
    assert not failed and res["sites"]["blog"]["release_differs"] is False


# --------------------------------------------------------------------------
# accounts
# --------------------------------------------------------------------------

MARKER = "onebox.deploy site account"
TEST_ACCOUNT = "oneboxtest"


def run_accounts(tmp_path, user, group=None, site_dir=None):
    site = dict(name="blog", version="1.0.0", listen="127.0.0.1:1", listen_port=1, health_port=1,
                instances=[], service_units=["blog.service"], user=user,
                site_dir=str(site_dir or tmp_path / "srv" / "blog"))
    if group is not None:
        site["group"] = group
    args = dict(sites=[site], unit_dir=str(tmp_path / "units"), root=str(tmp_path / "srv"), check_ports=False)
    return invoke(preflight.main, args, patches={
        "run_command": lambda self, args, **kw: (0, "", ""),
        "get_bin_path": lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name})[:2]


@pytest.mark.parametrize("user,group,fields", [
    ("daemon", None, ["user", "group"]),             # a system account and its group
    ("nobody", "nogroup", ["user", "group"]),
    ("onebox-no-such-user", "daemon", ["group"]),    # a new user, but an existing group
])
def test_an_account_of_another_origin_is_refused(tmp_path, user, group, fields):
    failed, res = run_accounts(tmp_path, user, group)
    assert failed
    assert [e.split("'")[1] for e in res["errors"]] == fields, res["errors"]
    if "user" in fields:
        assert res["errors"][0].startswith("site blog: field 'user': the account %s already exists and was not "
                                           "created by onebox.deploy" % user)
    assert res["sites"]["blog"]["user_exists"] is ("user" in fields)


def test_new_accounts_are_fine(tmp_path):
    failed, res = run_accounts(tmp_path, "onebox-no-such-user", "onebox-no-such-group")
    assert not failed, res.get("msg")
    assert res["sites"]["blog"]["user_exists"] is False and res["sites"]["blog"]["group_exists"] is False


def test_accounts_are_not_checked_when_asked_not_to(tmp_path):
    site = dict(name="blog", version="1.0.0", listen="127.0.0.1:1", listen_port=1, health_port=1, instances=[],
                service_units=["blog.service"], user="daemon", site_dir=str(tmp_path / "srv" / "blog"))
    failed, res = invoke(preflight.main, dict(sites=[site], unit_dir=str(tmp_path / "units"), root=str(tmp_path),
                                              check_ports=False, check_accounts=False), patches={
        "run_command": lambda self, args, **kw: (0, "", ""),
        "get_bin_path": lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name})[:2]
    assert not failed and res["errors"] == []


can_make_accounts = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("userdel"),
                                       reason="needs root and useradd/userdel to make a throwaway account")


@contextlib.contextmanager
def throwaway_account(comment, home):
    """The system account ``oneboxtest`` (with its own group) for the duration of a test."""
    if _exists(pwd.getpwnam, TEST_ACCOUNT) or _exists(grp.getgrnam, TEST_ACCOUNT):
        pytest.fail("the account or group %s exists already; remove it (userdel %s)" % (TEST_ACCOUNT, TEST_ACCOUNT))
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", str(home),
                    "--shell", "/usr/sbin/nologin", "--comment", comment, TEST_ACCOUNT], check=True)
    try:
        yield
    finally:
        subprocess.run(["userdel", TEST_ACCOUNT], check=False)
        if _exists(grp.getgrnam, TEST_ACCOUNT):
            subprocess.run(["groupdel", TEST_ACCOUNT], check=False)


def _exists(lookup, name):
    try:
        lookup(name)
    except KeyError:
        return False
    return True


@can_make_accounts
def test_an_account_with_the_marker_is_ours(tmp_path):
    site_dir = tmp_path / "srv" / "blog"
    with throwaway_account(MARKER, "/nonexistent"):
        failed, res = run_accounts(tmp_path, TEST_ACCOUNT, TEST_ACCOUNT, site_dir)
        assert not failed, res.get("msg")
        state = res["sites"]["blog"]
        assert (state["user_exists"], state["user_ours"], state["group_exists"], state["group_ours"]) == (
            True, True, True, True)
        # The marker decides, not the name: the same account with another GECOS is refused.
        subprocess.run(["usermod", "--comment", "Some Service", TEST_ACCOUNT], check=True)
        failed, res = run_accounts(tmp_path, TEST_ACCOUNT, TEST_ACCOUNT, site_dir)
        assert failed
        assert [e.split("'")[1] for e in res["errors"]] == ["user", "group"]


@can_make_accounts
def test_an_account_of_an_earlier_version_is_ours_by_its_home(tmp_path):
    site_dir = tmp_path / "srv" / "blog"
    with throwaway_account("", site_dir):
        failed, res = run_accounts(tmp_path, TEST_ACCOUNT, TEST_ACCOUNT, site_dir)
        assert not failed, res.get("msg")
        assert res["sites"]["blog"]["user_ours"] is True
        failed, res = run_accounts(tmp_path, TEST_ACCOUNT, TEST_ACCOUNT, tmp_path / "srv" / "other")
        assert failed and "site blog: field 'user'" in res["errors"][0]
