# -*- coding: utf-8 -*-
"""Unit tests for onebox.deploy.preflight (plugins/modules/preflight.py over
plugins/module_utils/host.py and plugins/module_utils/verify.py): the
same-version-different-content check, the site accounts (never taken over),
the units verified with ``systemd-analyze verify`` before anything changes
(faked, tests/unit/fake_host.py) and the ports of sites removed in the run."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import grp
import json
import os
import pwd
import shutil
import subprocess
import types
from unittest import mock

import pytest

from ansible_collections.onebox.deploy.plugins.module_utils import host as H
from ansible_collections.onebox.deploy.plugins.plugin_utils import _plan as P
from ansible_collections.onebox.deploy.plugins.plugin_utils import _sites as S
from ansible_collections.onebox.deploy.plugins.module_utils.systemd import Systemctl
from ansible_collections.onebox.deploy.plugins.modules import preflight
from conftest import role_settings
from fake_host import FakeHost, fake_accounts, tree
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
# One name per test process: test runs of several checkouts or ansible-core
# versions (make matrix) may share a machine and its accounts.
TEST_ACCOUNT = "oneboxtest%d" % os.getpid()


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
    """The system account ``TEST_ACCOUNT`` (with its own group) for the duration of a test."""
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


# --------------------------------------------------------------------------
# units verified as systemd loads them, before anything changes
# --------------------------------------------------------------------------

UNIT_MARKER = "Managed by onebox.deploy"
#: What ``systemd-analyze verify`` prints for a misspelt directive, per systemd version.
IGNORED_KEY = {
    "systemd-252": "{path}:9: Unknown key 'ProtectSytem' in section [Service], ignoring.",
    "systemd-257": "{path}:9: Unknown key name 'ProtectSytem' in section 'Service', ignoring.",
}


@pytest.fixture
def host():
    with fake_accounts(FakeHost()) as fake:
        yield fake


def normal_site(tmp_path, name="blog", port=8001, version="1.0", strategy="restart"):
    """A site as site_plan normalises it, under ``<tmp>/srv``."""
    raw = {"name": name, "listen": "127.0.0.1:%d" % port, "health_listen": "127.0.0.1:%d" % (port + 18000),
           "version": version, "artifact": "/opt/artifacts/%s/" % name, "command": "bin/app", "strategy": strategy}
    return S.normalize_site(raw, role_settings(root=str(tmp_path / "srv")), "/opt/artifacts")


def rendered(site, service_extra="", socket_extra=""):
    """A site's units as the preflight action plugin renders them (``units``)."""
    socket = "# %s: public socket of site %s.\n[Socket]\nListenStream=%s\nService=%s\n%s" % (
        UNIT_MARKER, site["name"], site["listen"], site["trigger_unit"], socket_extra)
    service = "# %s: site %s.\n[Service]\nWorkingDirectory=%s/current\nExecStart=%s\nProtectSystem=strict\n%s" % (
        UNIT_MARKER, site["name"], site["site_dir"], site["exec_start"], service_extra)
    return dict(name=site["name"], socket=socket, service=service)


def install_units(tmp_path, site, unit):
    """The site's units as a run before this one installed them."""
    unit_dir = tmp_path / "units"
    unit_dir.mkdir(exist_ok=True)
    (unit_dir / ("%s.socket" % site["name"])).write_text(unit["socket"])
    (unit_dir / site["service_file"]).write_text(unit["service"])


def unpacked(site):
    """The site's release as stage_releases unpacks it."""
    release = os.path.join(site["site_dir"], "releases", site["version"])
    os.makedirs(os.path.join(release, "bin"))
    return release


def run_checks(host, tmp_path, sites, units=(), listening=(), **kw):
    (tmp_path / "units").mkdir(exist_ok=True)
    args = dict(sites=sites, units=list(units), unit_dir=str(tmp_path / "units"), root=str(tmp_path / "srv"))
    args.update(kw)
    with mock.patch.object(H, "listening_ports", lambda: set(listening)):
        return invoke(preflight.main, args, patches={
            "run_command": host.run_command,
            "get_bin_path": lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name})[:2]


def test_units_are_verified_as_systemd_loads_them_inside_the_new_release(host, tmp_path):
    site = normal_site(tmp_path)
    release = unpacked(site)
    os.makedirs(os.path.join(site["site_dir"], "units"))      # installed before
    unit = rendered(site)
    failed, res = run_checks(host, tmp_path, [site], [unit])
    assert not failed, res.get("msg")
    assert res["sites"]["blog"]["units_verified"] == "ok"
    (checked,) = host.verified
    assert sorted(checked) == ["blog.service", "blog.socket"]
    assert "ExecStart=%s/bin/app\n" % release in checked["blog.service"]
    assert "/current/" not in checked["blog.service"]
    assert checked["blog.socket"] == unit["socket"]
    # the verification copies are gone; nothing was written on the host
    (paths,) = host.verify_paths
    assert [os.path.basename(p) for p in paths] == ["blog.socket", "blog.service"]
    assert not any(os.path.exists(p) or p.startswith(str(tmp_path)) for p in paths)
    assert tree(site["site_dir"]) == ["releases", "releases/1.0", "releases/1.0/bin", "units"]
    assert os.listdir(str(tmp_path / "units")) == [] and host.mutations == []


def test_a_release_not_yet_on_the_host_is_verified_with_bin_true(host, tmp_path):
    site = normal_site(tmp_path)
    failed, res = run_checks(host, tmp_path, [site], [rendered(site)])
    assert not failed, res.get("msg")
    assert res["sites"]["blog"]["units_verified"] == "ok"
    (checked,) = host.verified
    assert "ExecStart=/bin/true\n" in checked["blog.service"]
    assert site["exec_start"] not in checked["blog.service"]
    assert not os.path.exists(site["site_dir"])


def test_first_install_with_the_release_unpacked_is_verified(host, tmp_path):
    # What stage_releases leaves on a new host: the release, no units/ directory yet.
    site = normal_site(tmp_path)
    os.makedirs(os.path.join(site["site_dir"], "releases", "1.0"))
    failed, res = run_checks(host, tmp_path, [site], [rendered(site)])
    assert not failed, res.get("msg")
    assert res["sites"]["blog"]["units_verified"] == "ok" and len(host.verified) == 1
    assert "ExecStart=%s/releases/1.0/bin/app\n" % site["site_dir"] in host.verified[0]["blog.service"]
    assert tree(site["site_dir"]) == ["releases", "releases/1.0"]


@pytest.mark.parametrize("systemd", sorted(IGNORED_KEY))
def test_a_setting_systemd_would_ignore_fails_naming_the_site_and_the_directive(host, tmp_path, systemd):
    site = normal_site(tmp_path)
    unpacked(site)
    # systemd-analyze verify only warns (rc 0) about a setting it ignores
    host.verify_result = lambda paths: (0, "", IGNORED_KEY[systemd].format(path=paths[1]) + "\n")
    failed, res = run_checks(host, tmp_path, [site], [rendered(site, service_extra="ProtectSytem=full\n")])
    assert failed
    line = IGNORED_KEY[systemd].format(path="blog.service")     # the temporary directory left out
    error = "site blog: field 'service_directives': systemd would ignore ProtectSytem: %s" % line
    assert res["errors"] == [error]
    assert res["msg"] == "preflight found 1 problem(s): %s" % error
    assert "onebox-verify-" not in res["msg"]
    assert "ProtectSytem=full\n" in host.verified[0]["blog.service"]
    # found before anything on the host changed
    assert os.listdir(str(tmp_path / "units")) == [] and host.mutations == []


def test_a_failed_verification_of_one_site_fails_naming_that_site_before_anything_changes(host, tmp_path):
    blog, shop = normal_site(tmp_path), normal_site(tmp_path, "shop", 8002)
    unpacked(blog)
    unpacked(shop)
    complaint = "shop.service: Command %s/releases/1.0/bin/app is not executable: No such file or directory" % (
        shop["site_dir"])

    def verify(paths):
        if os.path.basename(paths[0]) == "shop.socket":
            return 1, "", complaint + "\n"
        return 0, "", ""
    host.verify_result = verify
    failed, res = run_checks(host, tmp_path, [blog, shop], [rendered(blog), rendered(shop)])
    assert failed
    assert res["errors"] == ["site shop: field 'command': systemd-analyze verify failed (rc=1): %s" % complaint]
    assert res["sites"]["blog"]["units_verified"] == "ok" and len(host.verified) == 2
    assert os.listdir(str(tmp_path / "units")) == [] and host.mutations == []


@pytest.mark.parametrize("changed", [None, "socket", "service"])
def test_only_units_that_would_change_are_verified(host, tmp_path, changed):
    site = normal_site(tmp_path)
    unpacked(site)
    unit = rendered(site)
    installed = dict(unit)
    if changed:
        installed[changed] += "# the release before\n"
    install_units(tmp_path, site, installed)
    failed, res = run_checks(host, tmp_path, [site], [unit])
    assert not failed, res.get("msg")
    if changed is None:
        assert res["sites"]["blog"]["units_verified"] is None
        assert host.commands("systemd-analyze") == []
    else:
        assert res["sites"]["blog"]["units_verified"] == "ok"
        assert len(host.commands("systemd-analyze")) == 1


def test_the_instance_name_of_a_template_unit_is_verified(host, tmp_path):
    site = normal_site(tmp_path, strategy="overlap")
    assert site["trigger_unit"] == "blog@26001.service" and site["service_file"] == "blog@.service"
    unit = rendered(site)
    failed, res = run_checks(host, tmp_path, [site], [unit])
    assert not failed, res.get("msg")
    assert res["sites"]["blog"]["units_verified"] == "ok"
    assert sorted(host.verified[0]) == ["blog.socket", "blog@26001.service"]
    # installed as the template file: unchanged, so not verified again
    install_units(tmp_path, site, unit)
    assert os.path.isfile(str(tmp_path / "units" / "blog@.service"))
    failed, res = run_checks(host, tmp_path, [site], [unit])
    assert not failed, res.get("msg")
    assert res["sites"]["blog"]["units_verified"] is None and len(host.verified) == 1


def test_nothing_is_verified_when_asked_not_to(host, tmp_path):
    site = normal_site(tmp_path)
    host.verify_result = (1, "", "blog.service:9: Unknown key 'ProtectSytem' in section [Service], ignoring.\n")
    failed, res = run_checks(host, tmp_path, [site], [rendered(site)], verify_units=False)
    assert not failed, res.get("msg")
    assert host.commands("systemd-analyze") == [] and "units_verified" not in res["sites"]["blog"]


def test_units_are_not_verified_when_another_check_failed(host, tmp_path):
    site = normal_site(tmp_path)
    (tmp_path / "units").mkdir()
    (tmp_path / "units" / "blog.service").write_text("[Service]\nExecStart=/usr/bin/blog\n")    # not ours
    failed, res = run_checks(host, tmp_path, [site], [rendered(site)])
    assert failed
    assert [e.split("'")[1] for e in res["errors"]] == ["name"]
    assert "was not written by onebox.deploy" in res["errors"][0]
    assert host.commands("systemd-analyze") == []


def test_units_of_a_site_not_checked_are_ignored(host, tmp_path):
    site = normal_site(tmp_path)
    ghost = rendered(normal_site(tmp_path, "ghost", 8009))
    failed, res = run_checks(host, tmp_path, [site], [ghost])
    assert not failed, res.get("msg")
    assert host.commands("systemd-analyze") == [] and "ghost" not in res["sites"]
    assert "units_verified" not in res["sites"]["blog"]


# --------------------------------------------------------------------------
# stale units: the roll stops only those that run
# --------------------------------------------------------------------------

def test_a_stale_unit_that_is_only_enabled_is_not_stopped_by_the_roll(host, tmp_path):
    # blog switched from overlap to restart: its two instances are stale, one runs, one is only enabled.
    site = normal_site(tmp_path)
    install_units(tmp_path, site, rendered(site))
    host.units["blog.socket"] = dict(LoadState="loaded", ActiveState="active", UnitFileState="enabled")
    host.units["blog@26001.service"] = dict(LoadState="loaded", ActiveState="active", UnitFileState="enabled")
    host.units["blog@26002.service"] = dict(LoadState="loaded", ActiveState="inactive", UnitFileState="enabled")
    failed, res = run_checks(host, tmp_path, [site], check_ports=False)
    assert not failed, res.get("msg")
    state = res["sites"]["blog"]
    assert state["stale_units"] == ["blog@26001.service", "blog@26002.service"]
    assert state["active_units"] == ["blog@26001.service"]
    (unit,) = P.roll_plan([site], res["sites"])["units"]
    assert unit["stop_units"] == ["blog@26001.service"]


# --------------------------------------------------------------------------
# releasing: the ports of sites removed in this run
# --------------------------------------------------------------------------

def test_a_port_held_by_the_socket_of_a_site_being_removed_counts_as_free(host, tmp_path):
    site = normal_site(tmp_path)                          # listen 127.0.0.1:8001
    host.units["wiki.socket"] = dict(LoadState="loaded", ActiveState="active", Listen="127.0.0.1:8001 (Stream)")
    host.units["shop.socket"] = dict(LoadState="loaded", ActiveState="active", Listen="127.0.0.1:8002 (Stream)")
    failed, res = run_checks(host, tmp_path, [site], listening=[8001, 8002])
    assert failed
    assert res["errors"] == ["site blog: field 'listen': port 8001 is already in use on the host by something "
                             "other than blog.socket"]
    failed, res = run_checks(host, tmp_path, [site], listening=[8001, 8002], releasing=["shop"])
    assert failed and "port 8001 is already in use" in res["errors"][0]
    failed, res = run_checks(host, tmp_path, [site], listening=[8001, 8002], releasing=["wiki"])
    assert not failed, res.get("msg")


def test_released_ports_are_read_from_the_sockets_of_the_removed_sites(host):
    module = types.SimpleNamespace(run_command=host.run_command,
                                   get_bin_path=lambda name, required=False: "/usr/bin/" + name)
    state = H.HostState(Systemctl(module), "/nonexistent", "/nonexistent", UNIT_MARKER)
    host.units["wiki.socket"] = dict(LoadState="loaded", Listen="127.0.0.1:8001 (Stream)")
    host.units["shop.socket"] = dict(LoadState="loaded", Listen="[::]:8443 (Stream)")
    assert state.released_ports(["wiki", "shop", "gone"]) == {8001, 8443}
    show = host.commands("systemctl")[0]
    assert show[show.index("--") + 1:] == ["wiki.socket", "shop.socket", "gone.socket"] and "Listen" in show
    # The overlap instances of every removed site in one systemctl call.
    assert [c[1] for c in host.commands("systemctl")].count("list-units") == 1
    host.calls = []
    assert state.released_ports([]) == set() and host.calls == []


def test_released_ports_include_the_health_port_of_a_removed_site(host, tmp_path):
    """The health port a removed site's environment file names is free for the others too."""
    module = types.SimpleNamespace(run_command=host.run_command,
                                   get_bin_path=lambda name, required=False: "/usr/bin/" + name)
    (tmp_path / "wiki.env").write_text("ONEBOX_SITE=wiki\nONEBOX_HEALTH_LISTEN=127.0.0.1:19003\n")
    state = H.HostState(Systemctl(module), "/nonexistent", "/nonexistent", UNIT_MARKER, str(tmp_path))
    host.units["wiki.socket"] = dict(LoadState="loaded", Listen="127.0.0.1:8003 (Stream)")
    assert state.released_ports(["wiki"]) == {8003, 19003}


def run_preflight_with(tmp_path, **site_fields):
    site = dict(name="blog", version="1.0.0", listen="127.0.0.1:1", listen_port=1, health_port=1,
                instances=[], service_units=["blog.service"])
    site.update(site_fields)
    (tmp_path / "units").mkdir(exist_ok=True)
    args = dict(sites=[site], unit_dir=str(tmp_path / "units"), root=str(tmp_path / "srv"), check_ports=False,
                check_accounts=False, verify_units=False, audit_log=str(tmp_path / "deploy.jsonl"))
    return invoke(preflight.main, args, patches={
        "run_command": lambda self, args, **kw: (0, "", ""),
        "get_bin_path": lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name})[:2]


@pytest.mark.parametrize("make,problem", [
    (None, "/opt/app/nope does not exist on the host"),
    ("dir", "/opt/app/nope on the host is not a file"),
    ("plain", "/opt/app/nope on the host is not executable"),
])
def test_an_absolute_command_the_host_cannot_run_is_refused_naming_the_site(tmp_path, make, problem):
    exe = tmp_path / "opt" / "app" / "nope"
    exe.parent.mkdir(parents=True)
    if make == "dir":
        exe.mkdir()
    elif make == "plain":
        exe.write_text("#!/bin/sh\n")
    failed, res = run_preflight_with(tmp_path, command_argv0=str(exe))
    assert failed
    assert res["errors"] == ["site blog: field 'command': %s" % problem.replace("/opt/app/nope", str(exe))]


def test_an_absolute_command_the_host_has_and_a_release_command_pass(tmp_path):
    assert run_preflight_with(tmp_path, command_argv0="/bin/sh")[0] is False
    assert run_preflight_with(tmp_path, command_argv0="bin/app")[0] is False    # inside the release: the controller checks it


def test_each_site_reads_its_ready_history_from_the_audit_log(tmp_path):
    log = tmp_path / "deploy.jsonl"
    lines = [dict(action="deploy", site="blog", outcome="success", time_to_ready_s=1.0 + i, time_to_stop_s=0.1)
             for i in range(7)]
    lines += [dict(action="deploy", site="blog", outcome="rolled_back", time_to_ready_s=None),
              dict(action="rollback", site="blog", outcome="success", time_to_ready_s=2.5),
              dict(action="deploy", site="shop", outcome="success", time_to_ready_s=9.0),
              dict(event="lock_takeover", by="x")]
    log.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    failed, res = run_preflight_with(tmp_path)
    assert not failed, res.get("msg")
    assert res["sites"]["blog"]["ready_history"] == [[4.0, 0.1], [5.0, 0.1], [6.0, 0.1], [7.0, 0.1], [2.5, None]]
    assert H.ready_history(str(tmp_path / "missing.jsonl"), ["blog"]) == {"blog": []}
    # only the tail is read: a cut first line is skipped, the newest records count
    tail = H.ready_history(str(log), ["blog", "shop"], keep=2, tail=len(log.read_text()) - 5)
    assert tail == {"blog": [[7.0, 0.1], [2.5, None]], "shop": [[9.0, None]]}


# --------------------------------------------------------------------------
# declared data
# --------------------------------------------------------------------------

def data_site(tmp_path, current):
    site_dir = tmp_path / "srv" / "blog"
    (site_dir / "shared").mkdir(parents=True)
    (site_dir / "releases" / "1.0.0").mkdir(parents=True)
    if current:
        os.symlink(str(site_dir / "releases" / "1.0.0"), str(site_dir / "current"))
    return site_dir


def test_a_data_file_not_created_yet_is_fine_before_a_first_release(tmp_path):
    data_site(tmp_path, current=False)
    failed, res = run_preflight_with(tmp_path, data=["shared/app.db"])
    assert not failed, res.get("msg")
    assert res["sites"]["blog"]["data"] == {"shared/app.db": {"exists": False, "bytes": 0}}
    assert res["sites"]["blog"]["snapshots"] == []


def test_a_data_file_missing_while_a_release_serves_is_an_error(tmp_path):
    site_dir = data_site(tmp_path, current=True)
    failed, res = run_preflight_with(tmp_path, data=["shared/app.db"])
    assert failed
    assert res["errors"] == [
        "site blog: field 'data': %s/shared/app.db does not exist on the host, although release 1.0.0 serves: "
        "declare the files the app writes (a file is \"not created yet\" only before a first release)" % site_dir]


def test_a_data_file_that_is_a_link_is_an_error(tmp_path):
    site_dir = data_site(tmp_path, current=True)
    (tmp_path / "elsewhere.db").write_text("")
    os.symlink(str(tmp_path / "elsewhere.db"), str(site_dir / "shared" / "app.db"))
    failed, res = run_preflight_with(tmp_path, data=["shared/app.db"])
    assert failed and len(res["errors"]) == 1
    assert res["errors"][0].startswith("site blog: field 'data': shared/app.db: %s/shared/app.db is a symbolic link"
                                       % site_dir)


def test_an_existing_data_file_is_reported_with_its_size(tmp_path):
    site_dir = data_site(tmp_path, current=True)
    (site_dir / "shared" / "app.db").write_bytes(b"x" * 4096)
    (site_dir / "shared" / "app.db-wal").write_bytes(b"y" * 100)
    failed, res = run_preflight_with(tmp_path, data=["shared/app.db"])
    assert not failed, res.get("msg")
    assert res["sites"]["blog"]["data"] == {"shared/app.db": {"exists": True, "bytes": 4196}}


# --------------------------------------------------------------------------
# scheduled jobs: calendars, their units verified, units of another origin
# --------------------------------------------------------------------------

def site_with_jobs(tmp_path, calendars=("daily",), name="blog", port=8001):
    raw = {"name": name, "listen": "127.0.0.1:%d" % port, "version": "1.0", "artifact": "/opt/artifacts/%s/" % name,
           "command": "bin/app", "timers": [{"name": "job%d" % i, "on_calendar": c, "command": "bin/app cleanup"}
                                            for i, c in enumerate(calendars)]}
    return S.normalize_site(raw, role_settings(root=str(tmp_path / "srv")), "/opt/artifacts")


def rendered_jobs(site):
    unit = rendered(site)
    unit["jobs"] = [dict(name=job["name"], service_unit=job["service_unit"], timer_unit=job["timer_unit"],
                         service="# %s: job %s of site %s.\n[Service]\nType=oneshot\nExecStart=%s\n" % (
                             UNIT_MARKER, job["name"], site["name"], job["exec_start"]),
                         timer="# %s: job %s of site %s.\n[Timer]\nOnCalendar=%s\n" % (
                             UNIT_MARKER, job["name"], site["name"], job["on_calendar"]))
                    for job in site["jobs"]]
    return unit


def test_every_calendar_is_checked_in_one_call_and_the_jobs_units_verified(host, tmp_path):
    blog = site_with_jobs(tmp_path, ("daily", "*:*:0/20"))
    shop = site_with_jobs(tmp_path, ("weekly",), name="shop", port=8002)
    failed, res = run_checks(host, tmp_path, [blog, shop], [rendered_jobs(blog), rendered_jobs(shop)])
    assert not failed, res.get("msg")
    assert host.calendars == [["*:*:0/20", "daily", "weekly"]]
    assert sorted(host.verified[0]) == ["blog.service", "blog.socket", "blog_job0.service", "blog_job0.timer",
                                        "blog_job1.service", "blog_job1.timer"]
    assert "ExecStart=/bin/true\n" in host.verified[0]["blog_job0.service"]


def test_a_calendar_systemd_rejects_fails_naming_the_site_and_the_field(host, tmp_path):
    host.bad_calendars = ("*-*-* 25:00:00",)
    blog = site_with_jobs(tmp_path, ("daily", "*-*-* 25:00:00"))
    failed, res = run_checks(host, tmp_path, [blog], [rendered_jobs(blog)])
    assert failed
    assert res["errors"] == ["site blog: field 'timers[job1].on_calendar' '*-*-* 25:00:00' is not a calendar "
                             "systemd accepts (systemd-analyze calendar: Invalid argument)"]
    assert host.mutations == []


def test_a_changed_job_unit_alone_is_verified_again(host, tmp_path):
    blog = site_with_jobs(tmp_path)
    unit = rendered_jobs(blog)
    install_units(tmp_path, blog, unit)
    for job in unit["jobs"]:
        (tmp_path / "units" / job["service_unit"]).write_text(job["service"])
        (tmp_path / "units" / job["timer_unit"]).write_text(job["timer"])
    failed, res = run_checks(host, tmp_path, [blog], [unit])
    assert not failed and res["sites"]["blog"]["units_verified"] is None and host.verified == []
    unit["jobs"][0]["timer"] += "AccuracySec=1s\n"
    failed, res = run_checks(host, tmp_path, [blog], [unit])
    assert not failed and res["sites"]["blog"]["units_verified"] == "ok" and len(host.verified) == 1


def test_a_job_unit_of_another_origin_is_never_overwritten(host, tmp_path):
    blog = site_with_jobs(tmp_path)
    (tmp_path / "units").mkdir()
    (tmp_path / "units" / "blog_job0.timer").write_text("[Timer]\nOnCalendar=hourly\n")
    failed, res = run_checks(host, tmp_path, [blog], [rendered_jobs(blog)])
    assert failed
    assert ("site blog: field 'timers[job0].name': %s exists and was not written by onebox.deploy; rename the job "
            "or remove that unit" % (tmp_path / "units" / "blog_job0.timer")) in res["errors"]
