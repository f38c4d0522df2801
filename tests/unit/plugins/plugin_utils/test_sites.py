# -*- coding: utf-8 -*-
"""Validation and normalisation of onebox_sites (plugins/module_utils/sites.py), including the ``checksum`` site field."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import io
import os
import stat
import tarfile

import pytest

from ansible_collections.onebox.deploy.plugins.plugin_utils import _artifacts as A
from ansible_collections.onebox.deploy.plugins.plugin_utils import _plan as P
from ansible_collections.onebox.deploy.plugins.plugin_utils import _sites as S
from ansible_collections.onebox.deploy.plugins.plugin_utils import _units as U
from conftest import checksum_errors, role_settings, user_site


@pytest.fixture
def base(tmp_path):
    app = tmp_path / "files" / "blog-1.4.2" / "bin"
    app.mkdir(parents=True)
    exe = app / "blog"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    single = tmp_path / "files" / "tool"
    single.write_text("#!/bin/sh\n")
    single.chmod(0o755)
    (tmp_path / "files" / "plain").write_text("data")
    with tarfile.open(str(tmp_path / "files" / "shop.tar.gz"), "w:gz") as tar:
        tar.add(str(app.parent), arcname=".")
    return str(tmp_path)


def site(**kw):
    return user_site(**dict(dict(artifact="files/blog-1.4.2/", command="bin/blog serve"), **kw))


def errors(sites, base):
    return S.validate_sites(sites, base)


def test_valid_site_has_no_errors(base):
    assert errors([site(), site(name="shop", listen="8002", health_listen="127.0.0.1:19002",
                                artifact="files/shop.tar.gz", command="/usr/bin/gunicorn app:app")], base) == []


@pytest.mark.parametrize("value,ok", [
    ("127.0.0.1:8001", True), ("[::1]:8001", True), ("8001", True), (8001, True),
    ("localhost:80", True), ("0", False), ("70000", False), ("::1:80", False), ("[127.0.0.1]:80", False),
    ("host:", False), (":80", False), ("", False), (True, False),
])
def test_parse_listen(value, ok):
    if ok:
        S.parse_listen(value)
    else:
        with pytest.raises(ValueError):
            S.parse_listen(value)


@pytest.mark.parametrize("name", ["Blog", "1blog", "blog_1", "b" * 32, "", None, "blog.x"])
def test_bad_name_names_site_and_field(base, name):
    errs = errors([site(name=name)], base)
    assert any("field 'name'" in e and repr(name) in e for e in errs), errs


@pytest.mark.parametrize("version,ok", [("1.4.2", True), ("v2", True), ("3f9c2e1", True), ("1.0+b1", True),
                                        ("../1", False), (".hidden", False), ("a b", False), (142, False)])
def test_version_pattern(base, version, ok):
    errs = errors([site(version=version)], base)
    assert (errs == []) is ok, errs
    if not ok:
        assert "site 'blog'" in errs[0] and "field 'version'" in errs[0]


def test_duplicate_name(base):
    errs = errors([site(), site(listen="8002", health_listen="127.0.0.1:19002")], base)
    assert any("field 'name'" in e and "already used" in e for e in errs), errs


@pytest.mark.parametrize("other,field", [
    ({"listen": "127.0.0.1:8001", "health_listen": "127.0.0.1:19009"}, "listen"),
    ({"listen": "8001", "health_listen": "127.0.0.1:19009"}, "listen"),   # wildcard overlaps
    ({"listen": "127.0.0.1:8009", "health_listen": "127.0.0.1:19001"}, "health_listen"),
    ({"listen": "127.0.0.1:19001"}, "listen"),                             # listen on another's health port
])
def test_port_collisions_name_site_and_field(base, other, field):
    second = site(name="shop", **other)
    if "health_listen" not in other:
        second.pop("health_listen")
    errs = errors([site(), second], base)
    assert any(e.startswith("site 'shop'") and "field '%s'" % field in e and "collides" in e for e in errs), errs


def test_health_may_share_its_own_listen(base):
    assert errors([site(health_listen="127.0.0.1:8001")], base) == []


def test_missing_artifact(base):
    errs = errors([site(artifact="files/nope/")], base)
    assert any("field 'artifact'" in e and "does not exist" in e for e in errs), errs


def test_artifact_not_executable(base):
    errs = errors([site(artifact="files/plain", command=None)], base)
    assert any("field 'artifact'" in e and "not executable" in e for e in errs), errs


def test_command_not_in_artifact(base):
    errs = errors([site(command="bin/other")], base)
    assert any("field 'command'" in e for e in errs), errs


def test_command_with_dotdot(base):
    errs = errors([site(command="../../bin/sh")], base)
    assert any("field 'command'" in e and ".." in e for e in errs), errs


def test_secret_value_never_in_message(base):
    errs = errors([site(secret_env={"bad key": "hunter2", "OK": "line\nbreak-hunter2"})], base)
    assert errs and all("hunter2" not in e for e in errs)


def test_unknown_field_and_bad_numbers(base):
    errs = errors([site(listn="x", backlog=-1, drain_timeout="soon", service_type="forking")], base)
    for field in ("listn", "backlog", "drain_timeout", "service_type"):
        assert any("field '%s'" % field in e for e in errs), (field, errs)


def test_not_a_list():
    assert "must be a list" in S.validate_sites({"name": "x"})[0]


def test_normalize_derives_urls_paths_and_hides_secrets(base):
    out = S.normalize_site(site(listen="8001", secret_env={"DB_KEY": "hunter2"}, env={"A": 1}),
                           role_settings(root="/srv/onebox", drain_timeout=7), base)
    assert out["listen"] == "8001"
    assert out["readiness_url"] == "http://127.0.0.1:19001/readyz"
    assert out["liveness_url"] == "http://127.0.0.1:19001/livez"
    assert out["public_url"] == "http://127.0.0.1:8001/"
    assert out["exec_start"] == "/srv/onebox/blog/current/bin/blog serve"
    assert out["stop_timeout"] == 12
    assert out["artifact_kind"] == "dir" and out["artifact_path"] == os.path.join(base, "files/blog-1.4.2/")
    assert "secret_env" not in out and out["secret_env_keys"] == ["DB_KEY"]
    assert "hunter2" not in repr(out)
    assert out["env"] == {"A": "1"}
    assert out["user"] == "blog" and out["group"] == "blog"


def test_normalize_absolute_command_and_single_file(base):
    out = S.normalize_site(site(command="/usr/bin/gunicorn --bind 'fd://3' app:app"), role_settings(), base)
    assert out["exec_start"] == "/usr/bin/gunicorn --bind fd://3 app:app"
    out = S.normalize_site(site(artifact="files/tool", command=None), role_settings(root="/r"), base)
    assert out["artifact_kind"] == "file" and out["exec_start"] == "/r/blog/current/tool"


def test_systemd_quote():
    assert U.systemd_quote("a b") == '"a b"'
    assert U.systemd_quote("100%") == "100%%"
    assert U.systemd_quote("$HOME") == "$$HOME"
    assert U.systemd_quote('say "hi"') == '"say \\"hi\\""'


def test_ipv6_and_wildcard_urls(base):
    out = S.normalize_site(site(listen="[::1]:8001", health_listen="[::]:19001"), role_settings(), base)
    assert out["listen"] == "[::1]:8001"
    assert out["readiness_url"] == "http://[::1]:19001/readyz"
    assert stat.S_ISDIR(os.stat(base).st_mode)


@pytest.mark.parametrize("kw,default,field,text", [
    ({"strategy": "overlap", "health_listen": None}, "restart", "health_listen", "required with strategy overlap"),
    ({"health_listen": None}, "overlap", "health_listen", "required with strategy overlap"),
    ({"strategy": "overlap", "health_listen": "127.0.0.1:8001"}, "restart", "health_listen", "must differ"),
    ({"strategy": "overlap", "health_listen": "127.0.0.1:65535"}, "restart", "health_listen", "no next port"),
    ({"strategy": "overlap", "health_listen": "127.0.0.1:8000"}, "restart", "health_listen", "second overlap"),
    ({"strategy": "blue-green"}, "restart", "strategy", "must be one of restart, overlap"),
])
def test_overlap_needs_two_health_ports(base, kw, default, field, text):
    errs = S.validate_sites([site(**kw)], base, default_strategy=default)
    assert any("'blog'" in e and "field '%s'" % field in e and text in e for e in errs), errs


def test_overlap_second_health_port_collides_with_another_site(base):
    errs = errors([site(strategy="overlap"), site(name="shop", listen="8002", health_listen="127.0.0.1:19002")], base)
    assert any("'shop'" in e and "field 'health_listen'" in e and "collides" in e for e in errs), errs
    assert errors([site(strategy="overlap"), site(name="shop", listen="8002", health_listen="127.0.0.1:19003")],
                  base) == []


def test_normalize_overlap_names_instances_after_health_ports(base):
    out = S.normalize_site(site(strategy="overlap", health_listen="[::1]:19001"), role_settings(), base)
    assert out["instances"] == ["19001", "19002"]
    assert out["service_file"] == "blog@.service"
    assert out["service_units"] == ["blog@19001.service", "blog@19002.service"]
    assert out["trigger_unit"] == "blog@19001.service"
    assert out["retired_file"] == "blog.service"
    assert out["readiness_url"] == "http://[::1]:{instance}/readyz"
    unit = P.roll_unit(out, True)
    assert unit["name"] == "blog" and unit["strategy"] == "overlap" and unit["instances"] == ["19001", "19002"]
    assert unit["link"] == "/srv/onebox/blog/current" and unit["link_target"] == "/srv/onebox/blog/releases/1.4.2"


def test_normalize_restart_retires_the_overlap_template(base):
    out = S.normalize_site(site(), role_settings(strategy="restart"), base)
    assert out["service_units"] == ["blog.service"] and out["trigger_unit"] == "blog.service"
    assert out["retired_file"] == "blog@.service"
    assert "link" not in P.roll_unit(out) and P.roll_unit(out)["name"] == "blog.service"


def test_roll_unit_names_the_socket_and_marks_a_fresh_site(base):
    for strategy in ("restart", "overlap"):
        out = S.normalize_site(site(strategy=strategy), role_settings(), base)
        unit = P.roll_unit(out)
        assert unit["socket"] == "blog.socket" and "fresh" not in unit
        assert "fresh" not in P.roll_unit(out, True, None, {"blog": []}, fresh=False)
        fresh = P.roll_unit(out, True, None, {"blog": [{"path": "/x", "backup": None}]}, fresh=True)
        assert fresh["fresh"] is True and fresh["socket"] == "blog.socket"
        assert fresh["link_target"] == "/srv/onebox/blog/releases/1.4.2"     # positionals still work
        assert fresh["restore"] == [{"path": "/x", "backup": None}]


@pytest.mark.parametrize("member,link,problem", [
    ("/etc/evil", None, "has an absolute path"),
    ("bin/../../evil", None, "contains '..'"),
    ("bin/up", "../../etc", "points outside the release"),
    ("bin/abs", "/etc/passwd", "points outside the release"),
])
def test_tarball_members_that_would_escape_the_release_are_refused(base, member, link, problem):
    path = os.path.join(base, "files", "bad.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        if link:
            info.type, info.linkname = tarfile.SYMTYPE, link
        tar.addfile(info, io.BytesIO(b"") if not link else None)
    errs = errors([site(artifact="files/bad.tar.gz", command="/usr/bin/true")], base)
    assert len(errs) == 1 and "field 'artifact'" in errs[0] and problem in errs[0], errs


def test_a_link_inside_the_release_is_fine(base):
    path = os.path.join(base, "files", "ok.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("bin/current")
        info.type, info.linkname = tarfile.SYMTYPE, "../lib/app"
        tar.addfile(info)
        # a second top-level entry: a lone top directory would be the release itself (and lib/ outside it)
        tar.addfile(tarfile.TarInfo("lib/app"), io.BytesIO(b""))
    assert errors([site(artifact="files/ok.tar.gz", command="/usr/bin/true")], base) == []


# --------------------------------------------------------------------------
# validate_sites: checksum
# --------------------------------------------------------------------------

def test_valid_site_without_checksum(tree_base):
    assert S.validate_sites([user_site()], tree_base) == []


def test_checksum_match_has_no_error(tree_base):
    digest = A.sha256_of(os.path.join(tree_base, "one", "blog-1.4.2"))
    assert S.validate_sites([user_site(checksum="sha256:" + digest)], tree_base) == []


def test_checksum_match_for_file_artifact(tree_base):
    digest = hashlib.sha256(b"#!/bin/sh\nexit 0\n").hexdigest()
    assert S.validate_sites([user_site(name="tool", artifact="tool", command=None, checksum="sha256:" + digest)],
                            tree_base) == []


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
def test_checksum_wrong_format(tree_base, value):
    errs = S.validate_sites([user_site(checksum=value)], tree_base)
    assert len(errs) == 1, errs
    assert errs[0].startswith("site 'blog' (onebox_sites[0]): field 'checksum'")
    assert "must be sha256:<64 lowercase hex digits>" in errs[0]


def test_checksum_mismatch_names_site_field_and_actual_sum(tree_base):
    digest = A.sha256_of(os.path.join(tree_base, "one", "blog-1.4.2"))
    wrong = "sha256:" + "0" * 64
    errs = S.validate_sites([user_site(checksum=wrong)], tree_base)
    assert len(errs) == 1, errs
    err = errs[0]
    assert err.startswith("site 'blog' (onebox_sites[0]): field 'checksum'")
    assert digest in err
    assert wrong in err
    assert os.path.join(tree_base, "one", "blog-1.4.2") in err


def test_checksum_mismatch_after_content_change(tree_base):
    path = os.path.join(tree_base, "one", "blog-1.4.2")
    pinned = "sha256:" + A.sha256_of(path)
    with open(os.path.join(path, "README"), "a") as handle:
        handle.write("changed\n")
    errs = checksum_errors(S.validate_sites([user_site(checksum=pinned)], tree_base))
    assert len(errs) == 1
    assert "site 'blog'" in errs[0]


def test_checksum_mismatch_in_second_site_names_that_site(tree_base):
    digest = A.sha256_of(os.path.join(tree_base, "one", "blog-1.4.2"))
    sites = [user_site(checksum="sha256:" + digest),
             user_site(name="shop", listen="8002", health_listen="127.0.0.1:19002", checksum="sha256:" + "1" * 64)]
    errs = S.validate_sites(sites, tree_base)
    assert len(errs) == 1, errs
    assert errs[0].startswith("site 'shop' (onebox_sites[1]): field 'checksum'")


def test_checksum_not_compared_without_artifact_checks(tree_base):
    assert S.validate_sites([user_site(checksum="sha256:" + "0" * 64)], tree_base, check_artifacts=False) == []
    errs = S.validate_sites([user_site(checksum="nope")], tree_base, check_artifacts=False)
    assert len(checksum_errors(errs)) == 1


def test_checksum_of_missing_artifact_reports_only_artifact(tree_base):
    errs = S.validate_sites([user_site(artifact="one/missing", checksum="sha256:" + "0" * 64)], tree_base)
    assert checksum_errors(errs) == []
    assert any("field 'artifact'" in e and "does not exist" in e for e in errs)


# --------------------------------------------------------------------------
# state: absent
# --------------------------------------------------------------------------

def test_site_states():
    assert S.STATES == ("present", "absent")
    assert {"state", "purge"} <= S.SITE_FIELDS


@pytest.mark.parametrize("entry", [
    {"name": "wiki", "state": "absent"},
    {"name": "wiki", "state": "absent", "purge": True},
    {"name": "wiki", "state": "absent", "purge": False, "user": "wiki-app", "group": "www-data"},
])
def test_an_absent_entry_needs_only_a_name(base, entry):
    assert errors([entry], base) == []


def test_an_absent_entry_skips_the_other_checks(base):
    # what a present site must have (a version, a listen, an artifact on the controller) is not needed to remove it
    entry = site(name="wiki", state="absent", version="not a version!", listen="nowhere", artifact="files/missing")
    assert errors([entry], base) == []


def test_an_absent_entry_frees_its_port_for_another_site(base):
    # a new site may take over the port of one removed in the same run
    assert errors([site(name="wiki", state="absent"), site()], base) == []
    assert errors([site(name="wiki"), site()], base) != []


def test_a_present_site_is_checked_as_before(base):
    assert errors([site(state="present")], base) == []
    assert any("field 'listen'" in e for e in errors([site(state="present", listen="nowhere")], base))


@pytest.mark.parametrize("entry,field,message", [
    ({"name": "wiki", "state": "absent", "purge": "yes"}, "purge", "must be true or false, got 'yes'"),
    ({"name": "wiki", "state": "absent", "user": "Wiki App"}, "user", "must be a valid user/group name"),
    ({"name": "wiki", "state": "absent", "group": 7}, "group", "must be a valid user/group name, got 7"),
    ({"name": "Wiki", "state": "absent"}, "name", "must match"),
    ({"name": "wiki", "state": "absent", "prune": True}, "prune", "is not a known site field"),
])
def test_an_absent_entry_checks_its_own_fields(base, entry, field, message):
    errs = errors([entry], base)
    assert len(errs) == 1, errs
    assert "field '%s'" % field in errs[0] and message in errs[0]


def test_an_unknown_state_is_an_error(base):
    errs = errors([site(state="gone")], base)
    assert errs == ["site 'blog' (onebox_sites[0]): field 'state' must be one of present, absent, got 'gone'"]


@pytest.mark.parametrize("state", [None, "present"])
def test_purge_only_goes_with_state_absent(base, state):
    entry = site(purge=True)
    if state:
        entry["state"] = state
    assert errors([entry], base) == ["site 'blog' (onebox_sites[0]): field 'purge' only goes with state: absent"]


def test_an_absent_entry_may_not_reuse_the_name_of_another_site(base):
    errs = errors([site(), {"name": "blog", "state": "absent"}], base)
    assert len(errs) == 1 and "field 'name'" in errs[0] and "already used by onebox_sites[0]" in errs[0]


def test_normalize_absent():
    defaults = role_settings(root="/srv/apps")
    assert S.normalize_absent({"name": "wiki", "state": "absent"}, defaults) == dict(
        name="wiki", state="absent", purge=False, user="wiki", group="wiki", site_dir="/srv/apps/wiki")
    assert S.normalize_absent({"name": "wiki", "state": "absent", "purge": True, "user": "app"}, defaults) == dict(
        name="wiki", state="absent", purge=True, user="app", group="app", site_dir="/srv/apps/wiki")
    assert S.normalize_absent({"name": "wiki", "user": "app", "group": "www"}, defaults)["group"] == "www"


# --------------------------------------------------------------------------
# data and data_writers
# --------------------------------------------------------------------------

def test_data_paths_inside_shared_are_fine_and_normalised(base):
    sites = [site(data=["shared/app.db", "shared/db/queue.sqlite3"])]
    assert errors(sites, base) == []
    norm = S.normalize_site(sites[0], role_settings(), base)
    assert norm["data"] == ["shared/app.db", "shared/db/queue.sqlite3"] and norm["data_writers"] == "one"
    assert S.normalize_site(site(), role_settings(), base)["data"] == []


@pytest.mark.parametrize("value,needle", [
    ("shared/app.db", "must be a list of paths inside the site's shared/ directory, such as [shared/app.db], got str"),
    ({"path": "shared/app.db"}, "got dict"),
    (["app.db"], "'app.db' is not a path inside shared/"),
    (["/srv/onebox/blog/shared/app.db"], "is not a path inside shared/"),
    (["shared"], "'shared' is not a path inside shared/"),
    (["shared/"], "is not a path inside shared/"),
    (["shared/../etc/passwd"], "'shared/../etc/passwd' is not a path inside shared/"),
    (["shared/./app.db"], "is not a path inside shared/"),
    (["shared//app.db"], "is not a path inside shared/"),
    (["shared/.hidden.db"], "no part that starts with '.'"),
    (["shared/my app.db"], "is not a path inside shared/"),
    (["releases/1.0/app.db"], "is not a path inside shared/"),
    ([42], "42 is not a path inside shared/"),
    (["shared/app.db-wal"], "'shared/app.db-wal' is a file SQLite keeps next to a database"),
    (["shared/app.db", "shared/app.db"], "names shared/app.db twice"),
])
def test_bad_data_names_the_site_and_the_field(base, value, needle):
    errs = errors([site(data=value)], base)
    assert len(errs) == 1 and errs[0].startswith("site 'blog' (onebox_sites[0]): field 'data' "), errs
    assert needle in errs[0], errs


def test_data_writers_choices(base):
    assert errors([site(data_writers="many")], base) == []
    errs = errors([site(data_writers="two")], base)
    assert errs == ["site 'blog' (onebox_sites[0]): field 'data_writers' must be one of one, many, got 'two'"]


@pytest.mark.parametrize("default_strategy", ["restart", "overlap"])
def test_overlap_with_data_of_one_writer_is_refused_with_the_reason(base, default_strategy):
    entry = site(data=["shared/app.db"], strategy="overlap")
    errs = S.validate_sites([entry], base, default_strategy=default_strategy)
    assert errs == ["site 'blog' (onebox_sites[0]): field 'strategy' overlap runs the old and the new release at once "
                    "for a moment, so two processes would write shared/app.db; a SQLite file allows one writer process "
                    "at a time. Use strategy restart, or set data_writers: many if the app allows two writers"]
    # the default strategy counts as the site's own
    assert S.validate_sites([site(data=["shared/app.db"])], base, default_strategy="overlap")[0].startswith(
        "site 'blog' (onebox_sites[0]): field 'strategy' overlap runs")
    assert S.validate_sites([dict(entry, data_writers="many")], base, default_strategy=default_strategy) == []
    assert S.validate_sites([site(strategy="overlap")], base) == []          # no data, no question


# --------------------------------------------------------------------------
# timers: scheduled jobs
# --------------------------------------------------------------------------

NIGHTLY = {"name": "nightly", "on_calendar": "*-*-* 03:00:00", "command": "bin/blog cleanup --days 30"}


def test_valid_timers_have_no_errors(base):
    assert errors([site(timers=[NIGHTLY, {"name": "tick-2", "on_calendar": "*:*:0/20", "command": "/bin/true",
                                          "timeout": 30}])], base) == []
    assert errors([site(timers=[]), site(name="shop", listen="8002", health_listen="127.0.0.1:19002",
                                         timers=None)], base) == []


PREFIX = "site 'blog' (onebox_sites[0]): field "


@pytest.mark.parametrize("timers,message", [
    ({"nightly": NIGHTLY}, "'timers' must be a list of jobs, each with name, on_calendar and command, got dict"),
    (["nightly"], "'timers[0]' must be a mapping with name, on_calendar and command, got str"),
    ([dict(NIGHTLY, name=None)], "'timers[0].name' is required"),
    ([dict(NIGHTLY, name="Nightly")], "'timers[0].name' must match ^[a-z0-9][a-z0-9-]{0,31}$"),
    ([dict(NIGHTLY, name="a_b")], "'timers[0].name' must match"),
    ([dict(NIGHTLY, name="a.timer")], "'timers[0].name' must match"),
    ([dict(NIGHTLY, name="x" * 33)], "'timers[0].name' must match"),
    ([NIGHTLY, dict(NIGHTLY)], "'timers[nightly].name' is already used by timers[0]"),
    ([dict(NIGHTLY, on_calendar="")], "'timers[nightly].on_calendar' is required: a calendar in systemd's syntax"),
    ([dict(NIGHTLY, on_calendar=None)], "'timers[nightly].on_calendar' is required"),
    ([dict(NIGHTLY, on_calendar="daily\nhourly")], "'timers[nightly].on_calendar' must be one line"),
    ([dict(NIGHTLY, command="")], "'timers[nightly].command' is required"),
    ([dict(NIGHTLY, command="bin/../../x")],
     "'timers[nightly].command' has the argument 'bin/../../x' with a '..' path part"),
    ([dict(NIGHTLY, command="bin/blog --out ../x")], "'timers[nightly].command' has the argument '../x'"),
    ([dict(NIGHTLY, command="bin/blog 'open")], "'timers[nightly].command' cannot be parsed"),
    ([dict(NIGHTLY, command="a\nb")], "'timers[nightly].command' must be one line"),
    ([dict(NIGHTLY, timeout=0)], "'timers[nightly].timeout' must be a number of seconds greater than 0"),
    ([dict(NIGHTLY, timeout=-5)], "'timers[nightly].timeout' must be"),
    ([dict(NIGHTLY, timeout="10m")], "'timers[nightly].timeout' must be"),
    ([dict(NIGHTLY, timeout=True)], "'timers[nightly].timeout' must be"),
    ([dict(NIGHTLY, timeout=86401)], "'timers[nightly].timeout' must be"),
    ([dict(NIGHTLY, every="day")], "'timers[nightly].every' is not a known field of a job"),
])
def test_bad_timers_name_the_site_and_the_field(base, timers, message):
    errs = errors([site(timers=timers)], base)
    assert any(e.startswith(PREFIX + message) for e in errs), errs


def test_normalized_jobs_carry_their_units_exec_start_and_timeout(base):
    out = S.normalize_site(site(timers=[NIGHTLY, {"name": "tick", "on_calendar": " *:*:0/20 ",
                                                  "command": "/bin/sh -c 'echo $HOME 100%'", "timeout": 5}]),
                           role_settings(root="/srv/onebox"), base)
    assert "timers" not in out
    assert out["jobs"] == [
        dict(name="nightly", on_calendar="*-*-* 03:00:00", command=NIGHTLY["command"],
             exec_start="/srv/onebox/blog/current/bin/blog cleanup --days 30", timeout=600.0,
             service_unit="blog_nightly.service", timer_unit="blog_nightly.timer"),
        dict(name="tick", on_calendar="*:*:0/20", command="/bin/sh -c 'echo $HOME 100%'",
             exec_start='/bin/sh -c "echo $$HOME 100%%"', timeout=5.0,
             service_unit="blog_tick.service", timer_unit="blog_tick.timer")]
    assert S.normalize_site(site(), role_settings(root="/srv/onebox"), base)["jobs"] == []


def test_the_roll_unit_of_a_site_names_its_jobs(base):
    out = S.normalize_site(site(timers=[NIGHTLY]), role_settings(root="/srv/onebox"), base)
    assert P.roll_unit(out)["jobs"] == [dict(unit="blog_nightly.service", timeout=600.0)]
    assert "jobs" not in P.roll_unit(S.normalize_site(site(), role_settings(root="/srv/onebox"), base))
