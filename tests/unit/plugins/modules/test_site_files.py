# -*- coding: utf-8 -*-
"""onebox.deploy.site_files (plugins/modules/site_files.py over
plugins/module_utils/sitefiles.py), run in-process with the files already
rendered (``files``, what the action plugin sends), on real directories
under tmp_path; also the removal of a site (``absent``, ``state: absent``).

``systemctl``, ``useradd``, ``userdel``, ``groupadd`` and ``groupdel`` are faked
through ``AnsibleModule.run_command``; the account database the module reads
(``pwd``/``grp``) is a stand-in that the fake tools fill (tests/unit/fake_host.py).
The units are verified by ``onebox.deploy.preflight`` before this module runs
(tests in test_preflight.py); site_files never runs ``systemd-analyze``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import stat

import pytest

from ansible_collections.onebox.deploy.plugins.module_utils import host as H
from ansible_collections.onebox.deploy.plugins.modules import site_files
from fake_host import FakeHost, fake_accounts, tree
from module_runner import ExitJson, invoke

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="site_files writes root-owned files")

MARKER = "Managed by onebox.deploy"
SECRET = "hunter2-do-not-log"


# --------------------------------------------------------------------------
# fake host: systemd, systemd-analyze, the account tools and database
# --------------------------------------------------------------------------

@pytest.fixture
def host():
    with fake_accounts(FakeHost()) as fake:
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


def as_sent(files, secrets=None):
    """Module arguments for *files* as the action plugin sends them: each
    environment file base64-encoded in ``env_files``, not in its entry."""
    entries = [dict((k, v) for k, v in entry.items() if k != "env") for entry in files]
    env_files = dict((entry["name"], base64.b64encode(entry["env"].encode()).decode()) for entry in files)
    return dict(files=entries, env_files=env_files, secret_values=sorted(secrets or [SECRET]))


def run(host, dirs, files, check_mode=False, diff=False, **kw):
    args = dict(unit_dir=str(dirs["unit_dir"]), env_dir=str(dirs["env_dir"]), marker=MARKER, **as_sent(files))
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
    # the units were verified by preflight: site_files neither verifies nor reports a verification
    assert "verified" not in blog and host.verified == [] and host.commands("systemd-analyze") == []
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
    assert blog["account_created"] is False and "verified" not in blog and host.verified == []
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
    assert "verified" not in res["sites"]["blog"] and host.verified == []   # verification is preflight's
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
    args = dict(unit_dir=str(dirs["unit_dir"]), env_dir=str(dirs["env_dir"]), marker=MARKER,
                secret_env={"blog": {"DB_KEY": SECRET}}, _ansible_diff=True, **as_sent([entry]))
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
    # and Ansible masks the secret wherever it would show up (secret_values and secret_env are no_log), and the
    # environment file only travels in a no_log option: its encoded form is a no_log value, its text is not, so
    # that the diff above shows it
    assert SECRET in seen["no_log_values"] and args["env_files"]["blog"] in seen["no_log_values"]
    assert entry["env"] not in seen["no_log_values"]


def test_no_logged_option_carries_an_environment_file_or_a_secret(host, dirs):
    """The journal's "Invoked with" entry of the module, for three sites with a secret each."""
    logged = []
    secrets = dict(blog="blog-secret-1a", shop="shop-secret-2b", wiki="wiki-secret-3c")
    entries = []
    for port, (name, secret) in enumerate(sorted(secrets.items())):
        entry = files_entry(dirs, name=name, env_extra="PUBLIC_%s=visible-%s\n" % (name.upper(), name))
        entry["env"] = entry["env"].replace(SECRET, secret)
        entries.append(entry)
    args = dict(unit_dir=str(dirs["unit_dir"]), env_dir=str(dirs["env_dir"]), marker=MARKER,
                **as_sent(entries, secrets.values()))
    failed, res = invoke(site_files.main, args, patches={
        "run_command": host.run_command, "log": lambda self, msg, log_args=None: logged.append(msg),
        "get_bin_path": lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name})[:2]
    assert not failed, res.get("msg")
    journal = "\n".join(logged)
    assert "Invoked with" in journal and "NOT_LOGGING_PARAMETER" in journal
    for name, secret in secrets.items():
        assert secret not in journal and "visible-%s" % name not in journal
        assert args["env_files"][name] not in journal
        assert read(dirs["env_dir"] / ("%s.env" % name)).count(secret) == 1


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


def env_diffs(res, dirs, name="blog"):
    return [d for d in res["diff"] if d["after_header"] == str(dirs["env_dir"] / ("%s.env" % name))]


def test_the_env_diff_masks_the_secret_keys_of_the_file_entry_before_and_after(host, dirs):
    assert not run(host, dirs, [files_entry(dirs)])[0]
    new_secret = "correct-horse-battery"
    entry = files_entry(dirs, env_extra="LOG_LEVEL=debug\n")
    entry["env"] = entry["env"].replace(SECRET, new_secret)
    failed, res = run(host, dirs, [entry], diff=True)
    assert not failed, res.get("msg")
    text = json.dumps(res)
    assert SECRET not in text and new_secret not in text
    (env,) = env_diffs(res, dirs)
    assert env["before_header"] == env["after_header"] == str(dirs["env_dir"] / "blog.env")
    assert env["before"] == "# %s: environment of site blog\nONEBOX_VERSION=1.0\nDB_KEY=\"********\"\n" % MARKER
    assert env["after"] == env["before"] + "LOG_LEVEL=debug\n"        # what changed shows, the secret does not
    # only the changed file has a diff: the units are as they were
    assert [d["after_header"] for d in res["diff"]] == [str(dirs["env_dir"] / "blog.env")]


def test_secret_keys_come_from_the_file_entry(host, dirs):
    # The action plugin lists secret_env's names in secret_keys: a key not listed is an ordinary variable.
    entry = files_entry(dirs, secret_keys=["API_TOKEN"], env_extra='API_TOKEN="tok-123"\n')
    failed, res = run(host, dirs, [entry], diff=True)
    assert not failed, res.get("msg")
    (env,) = env_diffs(res, dirs)
    assert env["before_header"] == "(absent)" and env["before"] == ""
    assert 'API_TOKEN="********"\n' in env["after"] and "tok-123" not in json.dumps(res)
    assert 'DB_KEY="%s"\n' % SECRET in env["after"]


def test_a_diff_in_check_mode_writes_nothing_and_shows_no_secret(host, dirs, tmp_path):
    failed, res = run(host, dirs, [files_entry(dirs)], check_mode=True, diff=True)
    assert not failed, res.get("msg")
    assert [d["after_header"] for d in res["diff"]] == [str(dirs["unit_dir"] / "blog.socket"),
                                                        str(dirs["unit_dir"] / "blog.service"),
                                                        str(dirs["env_dir"] / "blog.env")]
    assert SECRET not in json.dumps(res)
    assert os.listdir(str(tmp_path)) == ["systemd"] and host.mutations == []


def test_without_diff_mode_there_is_no_diff(host, dirs):
    failed, res = run(host, dirs, [files_entry(dirs)])
    assert not failed and "diff" not in res


# --------------------------------------------------------------------------
# state: absent
# --------------------------------------------------------------------------

def absent_entry(dirs, name="blog", purge=False, **kw):
    """A site to remove, as site_plan's ``absent`` holds it."""
    out = dict(name=name, state="absent", purge=purge, user=name, group=name, site_dir=str(dirs["root"] / name))
    out.update(kw)
    return out


def installed(host, dirs, **kw):
    """A site installed by an earlier run (its env file replaced once), its service running."""
    entry = files_entry(dirs, **kw)
    assert not run(host, dirs, [entry])[0]
    assert not run(host, dirs, [files_entry(dirs, env_extra="X=1\n", **kw)])[0]
    host.units.setdefault(entry["trigger_unit"], {})["ActiveState"] = "active"
    site_dir = dirs["root"] / entry["name"]
    (site_dir / "releases" / entry["version"]).mkdir(parents=True)
    (site_dir / "shared" / "uploads").mkdir()
    host.calls = []
    return entry


@pytest.mark.parametrize("userdel_removes_group", [True, False])
def test_removing_a_site_stops_and_disables_its_units_and_removes_its_files(host, dirs, userdel_removes_group):
    installed(host, dirs)
    host.userdel_removes_group = userdel_removes_group
    failed, res = run(host, dirs, [], absent=[absent_entry(dirs)])
    assert not failed, res.get("msg")
    socket, service = str(dirs["unit_dir"] / "blog.socket"), str(dirs["unit_dir"] / "blog.service")
    env, env_previous = str(dirs["env_dir"] / "blog.env"), str(dirs["env_dir"] / ".previous" / "blog.env")
    assert res["changed"] is True and res["sites"] == {}
    assert res["removed"] == {"blog": dict(changed=True, stopped=["blog.socket", "blog.service"],
                                           removed=[socket, service, env, env_previous], account_deleted=True,
                                           purged=None)}
    # the socket first, so no connection starts the service again; one disable without a reload, one reload
    # once the files are gone
    assert host.systemctl_verbs() == [["stop", "blog.socket"], ["stop", "blog.service"],
                                      ["disable", "blog.socket", "blog.service"], ["daemon-reload"]]
    (disable,) = [c for c in host.commands("systemctl") if c[1] == "disable"]
    assert "--no-reload" in disable
    assert not any(os.path.lexists(p) for p in (socket, service, env, env_previous))
    # the account it created goes, with its group
    accounts = [c for c in host.mutations if c[0] in ("userdel", "groupdel")]
    assert accounts == [["userdel", "blog"]] + ([] if userdel_removes_group else [["groupdel", "blog"]])
    assert "blog" not in host.users and "blog" not in host.groups
    # releases and shared/ are kept without purge
    site_dir = dirs["root"] / "blog"
    assert (site_dir / "releases" / "1.0").is_dir() and (site_dir / "shared" / "uploads").is_dir()


def test_removing_an_overlap_site_stops_every_instance_systemd_knows(host, dirs):
    installed(host, dirs, service_file="blog@.service", trigger_unit="blog@19001.service",
              retired_file="blog.service")
    host.units["blog@19002.service"] = dict(LoadState="loaded", ActiveState="active", UnitFileState="enabled")
    host.units["blog@19003.service"] = dict(LoadState="not-found")
    host.units["blogs@1.service"] = dict(LoadState="loaded", ActiveState="active")       # another site's
    failed, res = run(host, dirs, [], absent=[absent_entry(dirs)])
    assert not failed, res.get("msg")
    removed = res["removed"]["blog"]
    assert removed["stopped"] == ["blog.socket", "blog@19001.service", "blog@19002.service"]
    assert removed["removed"][:2] == [str(dirs["unit_dir"] / "blog.socket"), str(dirs["unit_dir"] / "blog@.service")]
    (listing,) = [c for c in host.commands("systemctl") if c[1] == "list-units"]
    assert listing[-1] == "blog@*.service"
    stops = [v for v in host.systemctl_verbs() if v[0] == "stop"]
    assert stops == [["stop", "blog.socket"], ["stop"] + removed["stopped"][1:]]
    assert host.units["blogs@1.service"]["ActiveState"] == "active"


def test_purge_also_deletes_the_site_directory(host, dirs):
    installed(host, dirs)
    failed, res = run(host, dirs, [], absent=[absent_entry(dirs, purge=True)])
    assert not failed, res.get("msg")
    assert res["removed"]["blog"]["purged"] == str(dirs["root"] / "blog")
    assert not (dirs["root"] / "blog").exists() and dirs["root"].is_dir()


def test_check_mode_reports_the_removal_and_changes_nothing(host, dirs):
    installed(host, dirs)
    listing = tree(dirs["root"]) + tree(dirs["unit_dir"]) + tree(dirs["env_dir"])
    failed, res = run(host, dirs, [], check_mode=True, absent=[absent_entry(dirs, purge=True)])
    assert not failed, res.get("msg")
    assert res["changed"] is True
    removed = res["removed"]["blog"]
    assert removed["changed"] is True and removed["stopped"] == ["blog.socket", "blog.service"]
    assert len(removed["removed"]) == 4 and removed["account_deleted"] is True
    assert removed["purged"] == str(dirs["root"] / "blog")
    assert tree(dirs["root"]) + tree(dirs["unit_dir"]) + tree(dirs["env_dir"]) == listing
    assert host.mutations == [] and "blog" in host.users
    assert host.units["blog.socket"]["ActiveState"] == "active"


@pytest.mark.parametrize("purge", [False, True])
def test_removing_a_site_that_is_not_on_the_host_changes_nothing(host, dirs, purge):
    failed, res = run(host, dirs, [], absent=[absent_entry(dirs, "ghost", purge=purge)])
    assert not failed, res.get("msg")
    assert res["changed"] is False
    assert res["removed"] == {"ghost": dict(changed=False, stopped=[], removed=[], account_deleted=False,
                                            purged=None)}
    assert host.mutations == []


def test_a_unit_file_of_another_origin_stops_the_removal(host, dirs):
    entry = installed(host, dirs)
    service = dirs["unit_dir"] / "blog.service"
    service.write_text("[Service]\nExecStart=/usr/bin/blog\n")          # replaced by hand, without the marker
    failed, res = run(host, dirs, [], absent=[absent_entry(dirs)])
    assert failed
    assert res["msg"] == ("site blog: field 'name': %s was not written by onebox.deploy; it is left alone and the "
                          "site is not removed" % service)
    assert read(dirs["unit_dir"] / "blog.socket") == entry["socket"] and (dirs["env_dir"] / "blog.env").exists()
    assert host.mutations == [] and "blog" in host.users


def test_an_account_of_another_origin_is_kept(host, dirs):
    # The site's files are ours, its account is not (the site ran as an existing user).
    host.add_group("blog")
    host.add_user("blog", host.groups["blog"].gr_gid, "/home/blog", "Blog Owner,,,")
    (dirs["unit_dir"] / "blog.socket").write_text(files_entry(dirs)["socket"])
    dirs["env_dir"].mkdir()
    (dirs["env_dir"] / "blog.env").write_text("X=1\n")
    failed, res = run(host, dirs, [], absent=[absent_entry(dirs)])
    assert not failed, res.get("msg")
    removed = res["removed"]["blog"]
    assert removed["changed"] is True and removed["account_deleted"] is False
    assert removed["removed"] == [str(dirs["unit_dir"] / "blog.socket"), str(dirs["env_dir"] / "blog.env")]
    assert host.commands("userdel") == [] and host.commands("groupdel") == []
    assert "blog" in host.users and "blog" in host.groups


def test_units_of_that_name_are_stopped_only_when_their_files_are_ours(host, dirs):
    # Only the environment file is left of the site; blog.service is some package's unit.
    host.units["blog.service"] = dict(LoadState="loaded", ActiveState="active", UnitFileState="enabled")
    dirs["env_dir"].mkdir()
    (dirs["env_dir"] / "blog.env").write_text("X=1\n")
    failed, res = run(host, dirs, [], absent=[absent_entry(dirs)])
    assert not failed, res.get("msg")
    assert res["removed"]["blog"] == dict(changed=True, stopped=[], removed=[str(dirs["env_dir"] / "blog.env")],
                                          account_deleted=False, purged=None)
    assert host.systemctl_verbs() == [] and host.units["blog.service"]["ActiveState"] == "active"


def test_several_sites_are_planned_first_then_stopped_together(host, dirs):
    """Removing several sites: every socket stops before any service, the services in one call (they
    drain at once, not one after another: 50 sites took 26 s), one disable without a reload, one reload."""
    for name in ("blog", "shop"):
        installed(host, dirs, name=name)
    host.calls = []
    failed, res = run(host, dirs, [], absent=[absent_entry(dirs, "blog"), absent_entry(dirs, "shop")])
    assert not failed, res.get("msg")
    assert host.systemctl_verbs() == [["stop", "blog.socket", "shop.socket"], ["stop", "blog.service", "shop.service"],
                                      ["disable", "blog.socket", "shop.socket", "blog.service", "shop.service"],
                                      ["daemon-reload"]]
    assert [c for c in host.mutations if c[0] == "userdel"] == [["userdel", "blog"], ["userdel", "shop"]]
    assert not (dirs["unit_dir"] / "blog.socket").exists() and not (dirs["unit_dir"] / "shop.socket").exists()


def test_a_foreign_unit_of_a_later_site_fails_before_an_earlier_site_is_touched(host, dirs):
    installed(host, dirs, name="blog")
    (dirs["unit_dir"] / "shop.service").write_text("[Service]\nExecStart=/bin/true\n")
    host.calls = []
    failed, res = run(host, dirs, [], absent=[absent_entry(dirs, "blog"), absent_entry(dirs, "shop")])
    assert failed
    assert "site shop: field 'name': %s was not written by onebox.deploy" % (dirs["unit_dir"] / "shop.service") \
        in res["msg"]
    assert host.mutations == [] and (dirs["unit_dir"] / "blog.socket").exists()


def test_removals_go_before_installs(host, dirs):
    installed(host, dirs, name="wiki")
    failed, res = run(host, dirs, [files_entry(dirs, name="shop")], absent=[absent_entry(dirs, "wiki")])
    assert not failed, res.get("msg")
    assert res["removed"]["wiki"]["changed"] is True and res["sites"]["shop"]["changed"] is True
    steps = [c[0] if c[0] != "systemctl" else " ".join(c[1:2] + c[-1:]) for c in host.mutations]
    assert steps == ["stop wiki.socket", "stop wiki.service", "disable wiki.service",
                     "userdel", "daemon-reload daemon-reload", "groupadd", "useradd", "daemon-reload daemon-reload",
                     "enable shop.socket", "enable shop.service"]
    assert not (dirs["unit_dir"] / "wiki.socket").exists() and (dirs["unit_dir"] / "shop.socket").exists()


def test_a_failed_removal_installs_nothing(host, dirs):
    installed(host, dirs, name="wiki")
    (dirs["unit_dir"] / "wiki.service").write_text("[Service]\nExecStart=/usr/bin/wiki\n")
    failed, res = run(host, dirs, [files_entry(dirs, name="shop")], absent=[absent_entry(dirs, "wiki")])
    assert failed and res["msg"].startswith("site wiki: field 'name'")
    assert not (dirs["unit_dir"] / "shop.socket").exists() and host.mutations == []


# --------------------------------------------------------------------------
# scheduled jobs (files[].jobs)
# --------------------------------------------------------------------------

def job(name, site="blog", calendar="daily"):
    """One job's rendered units, as the action plugin sends them."""
    unit = "%s_%s" % (site, name)
    head = "# %s: job %s of site %s.\n" % (MARKER, name, site)
    return dict(name=name, service_unit=unit + ".service", timer_unit=unit + ".timer",
                service=head + "[Service]\nType=oneshot\nExecStart=/bin/true\n",
                timer=head + "[Timer]\nOnCalendar=%s\nUnit=%s.service\n" % (calendar, unit))


def test_job_units_are_installed_and_their_timers_enabled_and_started(host, dirs):
    failed, res = run(host, dirs, [files_entry(dirs, jobs=[job("nightly"), job("tick", calendar="*:*:0/20")])])
    assert not failed, res.get("msg")
    jobs = res["sites"]["blog"]["jobs"]
    unit_dir = str(dirs["unit_dir"])
    assert jobs["installed"] == [os.path.join(unit_dir, u) for u in ("blog_nightly.service", "blog_nightly.timer",
                                                                     "blog_tick.service", "blog_tick.timer")]
    assert jobs["started"] == ["blog_nightly.timer", "blog_tick.timer"] and jobs["removed"] == []
    for unit in ("blog_nightly.service", "blog_nightly.timer"):
        assert mode_owner(dirs["unit_dir"] / unit) == (0o644, 0, 0)
    # not kept for a rollback: a change to a job alone restarts nothing
    assert [e["path"] for e in res["sites"]["blog"]["installed"]] == [
        os.path.join(unit_dir, "blog.socket"), os.path.join(unit_dir, "blog.service"),
        str(dirs["env_dir"] / "blog.env")]
    verbs = host.systemctl_verbs()
    assert verbs[0] == ["daemon-reload"] and verbs[-1] == ["enable", "blog_nightly.timer", "blog_tick.timer"]
    assert not any(v[0] in ("start", "restart", "stop") for v in verbs), verbs
    # again: nothing changes
    host.calls = []
    failed, res = run(host, dirs, [files_entry(dirs, jobs=[job("nightly"), job("tick", calendar="*:*:0/20")])])
    assert not failed and res["changed"] is False, res
    assert res["sites"]["blog"]["jobs"] == dict(installed=[], stale=[], removed=[], started=[])
    assert host.mutations == []


def test_a_running_job_is_never_restarted_when_its_unit_changes(host, dirs):
    assert not run(host, dirs, [files_entry(dirs, jobs=[job("nightly")])])[0]
    host.units["blog_nightly.service"] = dict(LoadState="loaded", ActiveState="activating")
    host.calls = []
    failed, res = run(host, dirs, [files_entry(dirs, jobs=[job("nightly", calendar="weekly")])])
    assert not failed, res.get("msg")
    assert res["sites"]["blog"]["jobs"]["installed"] == [str(dirs["unit_dir"] / "blog_nightly.timer")]
    assert host.systemctl_verbs() == [["daemon-reload"]]
    assert host.units["blog_nightly.service"]["ActiveState"] == "activating"


def test_a_dropped_job_has_its_timer_stopped_disabled_and_its_units_removed(host, dirs):
    assert not run(host, dirs, [files_entry(dirs, jobs=[job("nightly"), job("tick")])])[0]
    host.units["blog_tick.service"] = dict(LoadState="loaded", ActiveState="activating")
    foreign = dirs["unit_dir"] / "blog_other.timer"
    foreign.write_text("[Timer]\nOnCalendar=daily\n")
    other_site = dirs["unit_dir"] / "shop_tick.timer"
    other_site.write_text(job("tick", site="shop")["timer"])
    host.calls = []
    failed, res = run(host, dirs, [files_entry(dirs, jobs=[job("nightly")])])
    assert not failed, res.get("msg")
    jobs = res["sites"]["blog"]["jobs"]
    assert jobs["stale"] == ["blog_tick.timer"]
    assert jobs["removed"] == [str(dirs["unit_dir"] / "blog_tick.service"), str(dirs["unit_dir"] / "blog_tick.timer")]
    assert res["sites"]["blog"]["changed"] is True
    # the timer stopped and disabled before its files go; a run under way finishes
    assert host.systemctl_verbs() == [["stop", "blog_tick.timer"], ["disable", "blog_tick.timer"], ["daemon-reload"]]
    assert host.units["blog_tick.service"]["ActiveState"] == "activating"
    assert not (dirs["unit_dir"] / "blog_tick.timer").exists() and not (dirs["unit_dir"] / "blog_tick.service").exists()
    # a unit without our marker, and another site's job, are never touched
    assert foreign.read_text() == "[Timer]\nOnCalendar=daily\n" and other_site.exists()


def test_check_mode_reports_job_changes_and_writes_nothing(host, dirs):
    failed, res = run(host, dirs, [files_entry(dirs, jobs=[job("nightly")])], check_mode=True)
    assert not failed and res["changed"] is True
    assert res["sites"]["blog"]["jobs"]["started"] == ["blog_nightly.timer"]
    assert not (dirs["unit_dir"] / "blog_nightly.timer").exists() and host.mutations == []


def test_removing_a_site_stops_disables_and_removes_its_jobs(host, dirs):
    installed(host, dirs, jobs=[job("nightly")])
    host.units["blog_nightly.timer"] = dict(LoadState="loaded", ActiveState="active", UnitFileState="enabled")
    host.units["blog_nightly.service"] = dict(LoadState="loaded", ActiveState="inactive")
    failed, res = run(host, dirs, [], absent=[absent_entry(dirs)])
    assert not failed, res.get("msg")
    removed = res["removed"]["blog"]
    assert removed["stopped"] == ["blog_nightly.timer", "blog.socket", "blog.service", "blog_nightly.service"]
    for unit in ("blog_nightly.timer", "blog_nightly.service"):
        assert str(dirs["unit_dir"] / unit) in removed["removed"]
        assert not (dirs["unit_dir"] / unit).exists()
    # the timer and the socket first (no job and no connection starts anything), then the services
    assert host.systemctl_verbs()[:2] == [["stop", "blog_nightly.timer", "blog.socket"],
                                          ["stop", "blog.service", "blog_nightly.service"]]


@pytest.mark.parametrize("state,verbs", [
    (dict(ActiveState="activating", SubState="start-pre"), [["stop", "blog_tick.service"]]),
    (dict(ActiveState="failed", SubState="failed"), [["reset-failed", "blog_tick.service"]]),
    (dict(ActiveState="activating", SubState="start"), []),
])
def test_a_dropped_jobs_run_waiting_for_the_lock_is_stopped_one_under_way_finishes(host, dirs, state, verbs):
    assert not run(host, dirs, [files_entry(dirs, jobs=[job("tick")])])[0]
    host.units["blog_tick.service"] = dict(LoadState="loaded", **state)
    host.calls = []
    failed, res = run(host, dirs, [files_entry(dirs, jobs=[])])
    assert not failed, res.get("msg")
    assert host.systemctl_verbs() == [["stop", "blog_tick.timer"], ["disable", "blog_tick.timer"]] + verbs + [
        ["daemon-reload"]]
