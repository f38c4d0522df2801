# -*- coding: utf-8 -*-
"""onebox.deploy.site_files (plugins/modules/site_files.py over
plugins/module_utils/sitefiles.py), run in-process with the files already
rendered (``files``, what the action plugin sends), on real directories
under tmp_path.

``systemctl``, ``systemd-analyze``, ``useradd`` and ``groupadd`` are faked
through ``AnsibleModule.run_command``; the account database the module reads
(``pwd``/``grp``) is a stand-in that the fake ``useradd``/``groupadd`` fill.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import stat
import types
from unittest import mock

import pytest

from ansible_collections.onebox.deploy.plugins.module_utils import host as H
from ansible_collections.onebox.deploy.plugins.module_utils import sitefiles as SF
from ansible_collections.onebox.deploy.plugins.modules import site_files
from module_runner import ExitJson, invoke

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="site_files writes root-owned files")

MARKER = "Managed by onebox.deploy"
SECRET = "hunter2-do-not-log"


# --------------------------------------------------------------------------
# fake host: systemd, systemd-analyze, the account tools and database
# --------------------------------------------------------------------------

class FakeHost(object):
    def __init__(self):
        self.calls = []
        self.units = {}                  # unit -> {UnitFileState, ActiveState, LoadState}
        self.verify_result = (0, "", "")
        self.verified = []               # [{file name: content}] per systemd-analyze verify call
        self.users = {}
        self.groups = {}
        self.next_id = 4242
        self.fail = {}                   # program -> (rc, stdout, stderr)

    # account database ------------------------------------------------------
    def add_user(self, name, gid, home, gecos):
        self.users[name] = types.SimpleNamespace(pw_name=name, pw_uid=self.next_id, pw_gid=gid, pw_dir=home,
                                                 pw_gecos=gecos, pw_shell="/usr/sbin/nologin")
        self.next_id += 1

    def add_group(self, name):
        self.groups[name] = types.SimpleNamespace(gr_name=name, gr_gid=self.next_id, gr_mem=[])
        self.next_id += 1

    def getpwnam(self, name):
        try:
            return self.users[name]
        except KeyError:
            raise KeyError("getpwnam(): name not found: %r" % name)

    def getgrnam(self, name):
        try:
            return self.groups[name]
        except KeyError:
            raise KeyError("getgrnam(): name not found: %r" % name)

    # run_command -------------------------------------------------------------
    def run_command(self, args, **kwargs):
        prog = os.path.basename(args[0])
        argv = [str(a) for a in args[1:]]
        self.calls.append([prog] + argv)
        if prog in self.fail:
            return self.fail[prog]
        if prog == "systemctl":
            return self.systemctl(argv)
        if prog == "systemd-analyze":
            contents = {}
            for path in argv[1:]:
                with open(path) as handle:
                    contents[os.path.basename(path)] = handle.read()
            self.verified.append(contents)
            return self.verify_result
        if prog == "groupadd":
            self.add_group(argv[-1])
            return 0, "", ""
        if prog == "groupdel":
            del self.groups[argv[-1]]
            return 0, "", ""
        if prog == "useradd":
            opts = dict(zip(argv[:-1], argv[1:]))
            self.add_user(argv[-1], self.groups[opts["--gid"]].gr_gid, opts["--home-dir"], opts["--comment"])
            return 0, "", ""
        raise AssertionError("unexpected command %r" % (args,))

    def systemctl(self, argv):
        verb = argv[0]
        units = argv[argv.index("--") + 1:] if "--" in argv else []
        if verb == "show":
            props = [argv[i + 1] for i, a in enumerate(argv) if a == "-p"]
            blocks = []
            for unit in units:
                state = dict(dict(Id=unit, LoadState="not-found", ActiveState="inactive", UnitFileState=""),
                             **self.units.get(unit, {}))
                blocks.append("".join("%s=%s\n" % (p, state.get(p, "")) for p in props))
            return 0, "\n".join(blocks), ""
        if verb == "enable":
            for unit in units:
                state = self.units.setdefault(unit, {})
                state.update(LoadState="loaded", UnitFileState="enabled")
                if "--now" in argv:
                    state["ActiveState"] = "active"
            return 0, "", ""
        if verb in ("daemon-reload", "disable"):
            return 0, "", ""
        raise AssertionError("unexpected systemctl %r" % (argv,))

    def commands(self, prog):
        return [c for c in self.calls if c[0] == prog]

    @property
    def mutations(self):
        return [c for c in self.calls if c[0] in ("useradd", "groupadd", "userdel", "groupdel")
                or (c[0] == "systemctl" and c[1] != "show")]


@pytest.fixture
def host():
    fake = FakeHost()
    pwd_stub = types.SimpleNamespace(getpwnam=fake.getpwnam, getpwall=lambda: list(fake.users.values()))
    grp_stub = types.SimpleNamespace(getgrnam=fake.getgrnam, getgrall=lambda: list(fake.groups.values()))
    with mock.patch.object(H, "pwd", pwd_stub), mock.patch.object(H, "grp", grp_stub), \
            mock.patch.object(SF, "pwd", pwd_stub), mock.patch.object(SF, "grp", grp_stub):
        yield fake


@pytest.fixture
def dirs(tmp_path):
    """unit_dir exists (as /etc/systemd/system does), env_dir and the site root do not yet."""
    out = dict(unit_dir=tmp_path / "systemd", env_dir=tmp_path / "onebox-env", root=tmp_path / "srv")
    out["unit_dir"].mkdir()
    return out


def files_entry(dirs, name="blog", version="1.0", service_extra="", env_extra="", **kw):
    """One site's rendered files, as the action plugin sends them."""
    site_dir = str(dirs["root"] / name)
    out = dict(
        name=name, user=name, group=name, site_dir=site_dir, version=version,
        service_file="%s.service" % name, trigger_unit="%s.service" % name, retired_file="%s@.service" % name,
        stale_units=[], secret_keys=["DB_KEY"],
        socket="# %s: public socket of site %s.\n[Socket]\nListenStream=127.0.0.1:8001\n" % (MARKER, name),
        service="# %s: site %s.\n[Service]\nExecStart=%s/current/bin/app\nProtectSystem=strict\n%s" % (
            MARKER, name, site_dir, service_extra),
        env="# %s: environment of site %s\nONEBOX_VERSION=%s\nDB_KEY=\"%s\"\n%s" % (
            MARKER, name, version, SECRET, env_extra),
    )
    out.update(kw)
    return out


def run(host, dirs, files, check_mode=False, diff=False, **kw):
    args = dict(files=files, unit_dir=str(dirs["unit_dir"]), env_dir=str(dirs["env_dir"]), marker=MARKER)
    if diff:
        args["_ansible_diff"] = True
    args.update(kw)
    return invoke(site_files.main, args, check_mode, patches={
        "run_command": host.run_command,
        "get_bin_path": lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name})[:2]


def mode_owner(path):
    st = os.lstat(str(path))
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def read(path):
    with open(str(path)) as handle:
        return handle.read()


def tree(path):
    """Every path under *path*, relative, sorted."""
    out = []
    for top, names, files in os.walk(str(path)):
        for entry in names + files:
            out.append(os.path.relpath(os.path.join(top, entry), str(path)))
    return sorted(out)


# --------------------------------------------------------------------------
# install
# --------------------------------------------------------------------------

def test_first_install_creates_the_account_dirs_and_files(host, dirs):
    entry = files_entry(dirs)
    failed, res = run(host, dirs, [entry])
    assert not failed, res.get("msg")
    blog = res["sites"]["blog"]
    socket = dirs["unit_dir"] / "blog.socket"
    service = dirs["unit_dir"] / "blog.service"
    env = dirs["env_dir"] / "blog.env"
    assert res["changed"] is True and blog["changed"] is True
    assert blog["installed"] == [dict(path=str(socket), backup=None), dict(path=str(service), backup=None),
                                 dict(path=str(env), backup=None)]
    assert blog["socket_changed"] is True and blog["socket_path"] == str(socket)
    assert blog["account_created"] is True
    # no release unpacked yet: the units are not verified
    assert blog["verified"].startswith("not verified") and host.verified == []
    assert read(socket) == entry["socket"] and read(service) == entry["service"] and read(env) == entry["env"]
    assert mode_owner(socket) == (0o644, 0, 0) and mode_owner(service) == (0o644, 0, 0)
    assert mode_owner(env) == (0o600, 0, 0)
    # no backup of anything: nothing was replaced
    site_dir = dirs["root"] / "blog"
    assert os.listdir(str(site_dir / "units" / "previous")) == []
    assert os.listdir(str(dirs["env_dir"] / ".previous")) == []
    assert sorted(os.listdir(str(dirs["env_dir"]))) == [".previous", "blog.env"]
    # the account: a system group and user marked as ours, home the site directory
    assert host.commands("groupadd") == [["groupadd", "--system", "blog"]]
    (useradd,) = host.commands("useradd")
    assert useradd[-1] == "blog" and "--system" in useradd
    assert useradd[useradd.index("--comment") + 1] == H.ACCOUNT_MARKER
    assert useradd[useradd.index("--home-dir") + 1] == str(site_dir)
    # the directories, with shared/ the only one the site's user owns
    user = host.users["blog"]
    assert mode_owner(site_dir) == (0o755, 0, 0)
    assert mode_owner(site_dir / "releases") == (0o755, 0, 0)
    assert mode_owner(site_dir / "units" / "previous") == (0o700, 0, 0)
    assert mode_owner(site_dir / "shared") == (0o750, user.pw_uid, user.pw_gid)
    assert mode_owner(dirs["env_dir"] / ".previous") == (0o700, 0, 0)
    # one reload, then the socket enabled and started, the service enabled
    systemctl = [c[1:] for c in host.commands("systemctl") if c[1] != "show"]
    assert systemctl == [["daemon-reload"], ["enable", "--now", "--", "blog.socket"], ["enable", "--", "blog.service"]]


def test_a_second_run_with_the_same_content_changes_nothing(host, dirs):
    entry = files_entry(dirs)
    assert not run(host, dirs, [entry])[0]
    before = dict((p, os.stat(os.path.join(str(dirs["unit_dir"]), p)).st_mtime_ns)
                  for p in os.listdir(str(dirs["unit_dir"])))
    host.calls = []
    failed, res = run(host, dirs, [entry])
    assert not failed, res.get("msg")
    assert res["changed"] is False
    blog = res["sites"]["blog"]
    assert blog["changed"] is False and blog["installed"] == [] and blog["socket_changed"] is False
    assert blog["account_created"] is False and blog["verified"] is None
    assert host.mutations == []
    assert before == dict((p, os.stat(os.path.join(str(dirs["unit_dir"]), p)).st_mtime_ns)
                          for p in os.listdir(str(dirs["unit_dir"])))


def test_changed_content_keeps_the_replaced_files_for_a_rollback(host, dirs):
    old = files_entry(dirs)
    assert not run(host, dirs, [old])[0]
    new = files_entry(dirs, version="1.1", service_extra="LimitNOFILE=4096\n")
    failed, res = run(host, dirs, [new])
    assert not failed, res.get("msg")
    site_dir = dirs["root"] / "blog"
    service, env = dirs["unit_dir"] / "blog.service", dirs["env_dir"] / "blog.env"
    service_backup = site_dir / "units" / "previous" / "blog.service"
    env_backup = dirs["env_dir"] / ".previous" / "blog.env"
    blog = res["sites"]["blog"]
    assert blog["installed"] == [dict(path=str(service), backup=str(service_backup)),
                                 dict(path=str(env), backup=str(env_backup))]
    assert blog["socket_changed"] is False
    assert read(service) == new["service"] and read(env) == new["env"]
    assert read(service_backup) == old["service"] and read(env_backup) == old["env"]
    assert mode_owner(env_backup) == (0o600, 0, 0) and mode_owner(env) == (0o600, 0, 0)
    assert mode_owner(service_backup) == (0o644, 0, 0)
    assert not (site_dir / "units" / "previous" / "blog.socket").exists()
    assert [c[1] for c in host.commands("systemctl") if c[1] != "show"][-1:] == ["daemon-reload"]


def test_only_the_env_file_changed_reloads_nothing(host, dirs):
    assert not run(host, dirs, [files_entry(dirs)])[0]
    host.calls = []
    failed, res = run(host, dirs, [files_entry(dirs, env_extra="NEW=1\n")])
    assert not failed, res.get("msg")
    assert [e["path"] for e in res["sites"]["blog"]["installed"]] == [str(dirs["env_dir"] / "blog.env")]
    assert res["sites"]["blog"]["verified"] is None        # no unit changed: nothing to verify
    assert host.mutations == []


def test_check_mode_writes_nothing(host, dirs, tmp_path):
    failed, res = run(host, dirs, [files_entry(dirs), files_entry(dirs, name="shop")], check_mode=True)
    assert not failed, res.get("msg")
    assert res["changed"] is True
    for name in ("blog", "shop"):
        site = res["sites"][name]
        assert site["changed"] is True and site["account_created"] is True
        assert [e["path"] for e in site["installed"]] == [
            str(dirs["unit_dir"] / ("%s.socket" % name)), str(dirs["unit_dir"] / ("%s.service" % name)),
            str(dirs["env_dir"] / ("%s.env" % name))]
    assert os.listdir(str(tmp_path)) == ["systemd"] and os.listdir(str(dirs["unit_dir"])) == []
    assert host.mutations == [] and host.users == {} and host.groups == {}


def test_check_mode_on_an_installed_site_reports_the_change_and_keeps_the_files(host, dirs):
    old = files_entry(dirs)
    assert not run(host, dirs, [old])[0]
    host.calls = []
    listing = tree(dirs["root"]) + tree(dirs["unit_dir"]) + tree(dirs["env_dir"])
    failed, res = run(host, dirs, [files_entry(dirs, env_extra="X=1\n")], check_mode=True)
    assert not failed and res["changed"] is True
    assert res["sites"]["blog"]["installed"] == [dict(path=str(dirs["env_dir"] / "blog.env"),
                                                      backup=str(dirs["env_dir"] / ".previous" / "blog.env"))]
    assert read(dirs["env_dir"] / "blog.env") == old["env"]
    assert tree(dirs["root"]) + tree(dirs["unit_dir"]) + tree(dirs["env_dir"]) == listing
    assert host.mutations == []


def test_the_environment_is_never_in_the_result(host, dirs):
    seen = {}

    def exit_json(self, **kwargs):
        seen["no_log_values"] = set(self.no_log_values)
        kwargs.setdefault("changed", False)
        raise ExitJson(kwargs)
    entry = files_entry(dirs)
    args = dict(files=[entry], unit_dir=str(dirs["unit_dir"]), env_dir=str(dirs["env_dir"]), marker=MARKER,
                secret_env={"blog": {"DB_KEY": SECRET}}, _ansible_diff=True)
    failed, res = invoke(site_files.main, args, patches={
        "run_command": host.run_command, "exit_json": exit_json,
        "get_bin_path": lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name})[:2]
    assert not failed, res.get("msg")
    text = json.dumps(res)
    assert SECRET not in text
    # the diff shows the units, and the environment file with every secret_env value masked
    env_diff = [d for d in res["diff"] if d["after_header"].endswith("blog.env")]
    assert env_diff and 'DB_KEY="********"\n' in env_diff[0]["after"] and "ONEBOX_VERSION=1.0" in env_diff[0]["after"]
    assert any(d["after"] == entry["service"] for d in res["diff"])
    # and Ansible masks both wherever they would show up (the env file content and secret_env are no_log)
    assert entry["env"] in seen["no_log_values"] and SECRET in seen["no_log_values"]


# --------------------------------------------------------------------------
# verification
# --------------------------------------------------------------------------

def unpacked(dirs, name="blog", version="1.0"):
    """A site whose release is unpacked (stage_releases ran) and that has been installed before."""
    site_dir = dirs["root"] / name
    (site_dir / "releases" / version / "bin").mkdir(parents=True)
    (site_dir / "units").mkdir()
    return site_dir


def test_units_are_verified_as_systemd_loads_them_inside_the_new_release(host, dirs):
    site_dir = unpacked(dirs)
    failed, res = run(host, dirs, [files_entry(dirs)])
    assert not failed, res.get("msg")
    assert res["sites"]["blog"]["verified"] == "ok"
    (checked,) = host.verified
    assert sorted(checked) == ["blog.service", "blog.socket"]
    assert "ExecStart=%s/releases/1.0/bin/app\n" % site_dir in checked["blog.service"]
    assert "/current/" not in checked["blog.service"]
    assert tree(site_dir / "units") == ["previous"]      # the verification copies are gone


def test_a_setting_systemd_would_ignore_fails_naming_the_site_and_the_directive(host, dirs):
    unpacked(dirs)
    host.verify_result = (0, "", "/tmp/x/blog.service:5: Unknown key name 'ProtectSytem' in section 'Service', "
                                 "ignoring.\n")
    entry = files_entry(dirs, service_extra="ProtectSytem=full\n")
    failed, res = run(host, dirs, [entry])
    assert failed
    assert res["msg"].startswith("site blog: field 'service_directives': systemd would ignore ProtectSytem")
    assert "Unknown key name 'ProtectSytem'" in res["msg"]
    # verified before anything was installed
    assert not (dirs["unit_dir"] / "blog.service").exists() and not (dirs["env_dir"] / "blog.env").exists()
    assert host.mutations == []


def test_a_failed_verification_of_the_second_site_installs_nothing_for_the_first(host, dirs):
    unpacked(dirs, "blog")
    unpacked(dirs, "shop")
    host.verify_result = (1, "", "shop.service: Command /srv/x is not executable: No such file or directory\n")
    failed, res = run(host, dirs, [files_entry(dirs), files_entry(dirs, name="shop")])
    assert failed
    assert res["msg"].startswith("site blog: field 'command': systemd-analyze verify failed (rc=1)")
    assert os.listdir(str(dirs["unit_dir"])) == []
    assert host.mutations == []


def test_first_install_with_the_release_unpacked_is_verified(host, dirs):
    # What stage_releases leaves on a new host: the release, no units/ directory yet.
    (dirs["root"] / "blog" / "releases" / "1.0").mkdir(parents=True)
    failed, res = run(host, dirs, [files_entry(dirs)])
    assert not failed, res.get("msg")
    assert res["sites"]["blog"]["verified"] == "ok" and len(host.verified) == 1
    assert tree(dirs["root"] / "blog" / "units") == ["previous"]


# --------------------------------------------------------------------------
# accounts
# --------------------------------------------------------------------------

def test_an_account_of_another_origin_is_never_taken_over(host, dirs):
    host.add_group("blog")
    host.add_user("blog", host.groups["blog"].gr_gid, "/home/blog", "Blog Owner,,,")
    failed, res = run(host, dirs, [files_entry(dirs)])
    assert failed
    assert "site blog: field 'user': the account blog already exists and was not created by onebox.deploy" \
        in res["msg"]
    assert "site blog: field 'group'" in res["msg"]
    assert os.listdir(str(dirs["unit_dir"])) == []
    assert not dirs["env_dir"].exists() and not dirs["root"].exists()
    assert host.mutations == []


def test_a_group_of_another_origin_is_never_taken_over(host, dirs):
    host.add_group("blog")
    host.add_user("alice", host.groups["blog"].gr_gid, "/home/alice", "Alice")     # blog is alice's group
    failed, res = run(host, dirs, [files_entry(dirs)])
    assert failed
    assert res["msg"] == ("site blog: field 'group': the group blog already exists and was not created by "
                          "onebox.deploy; it is never taken over: set the site's group to a name no group has "
                          "(it is created)")
    assert host.mutations == []


def test_an_account_of_ours_is_used_as_it_is(host, dirs):
    host.add_group("blog")
    host.add_user("blog", host.groups["blog"].gr_gid, str(dirs["root"] / "blog"), H.ACCOUNT_MARKER)
    failed, res = run(host, dirs, [files_entry(dirs)])
    assert not failed, res.get("msg")
    assert res["sites"]["blog"]["account_created"] is False
    assert host.commands("useradd") == [] and host.commands("groupadd") == []


def test_a_failing_useradd_names_the_site_and_field(host, dirs):
    host.fail["useradd"] = (9, "", "useradd: user 'blog' already exists\n")
    failed, res = run(host, dirs, [files_entry(dirs)])
    assert failed
    assert res["msg"].startswith("site blog: field 'user': useradd --system")
    assert "(rc=9): useradd: user 'blog' already exists" in res["msg"]
    # the group made for it goes again: groups carry no marker, a lone one would never count as ours
    assert [c[0] for c in host.mutations] == ["groupadd", "useradd", "groupdel"] and "blog" not in host.groups


def test_mask_secrets_hides_only_the_secret_values():
    from ansible_collections.onebox.deploy.plugins.module_utils.sitefiles import mask_secrets
    text = '# DB_KEY=comment\nONEBOX_VERSION=1.0\nLOG_LEVEL="info"\nDB_KEY="s3cr=t"\nDB_KEYS="not secret"\n'
    assert mask_secrets(text, ["DB_KEY"]) == ('# DB_KEY=comment\nONEBOX_VERSION=1.0\nLOG_LEVEL="info"\n'
                                              'DB_KEY="********"\nDB_KEYS="not secret"\n')
    assert mask_secrets(text, []) == text
