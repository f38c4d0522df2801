# -*- coding: utf-8 -*-
"""The run's plan (plugins/module_utils/plan.py): which sites, the role
settings, the validated and normalised sites (plan_sites, the ``site_plan``
filter), what rolls (roll_plan), what is staged (stage_plan) and what a
rollback does (rollback_plan)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tarfile
import time
from unittest import mock

import pytest

from ansible_collections.onebox.deploy.plugins.plugin_utils import _artifacts as A
from ansible_collections.onebox.deploy.plugins.plugin_utils import _plan as P
from ansible_collections.onebox.deploy.plugins.plugin_utils import _sites as S
from conftest import REPO_ROOT, normalized_site, role_settings, sample_preflight, user_site

APP = "files/reference-app"   # a directory artifact of this repository, relative to REPO_ROOT


def raw_site(name="blog", port=8001, **kw):
    out = {"name": name, "listen": "127.0.0.1:%d" % port, "health_listen": "127.0.0.1:%d" % (port + 10000),
           "version": "1.0.0", "artifact": APP, "command": "bin/onebox-app"}
    out.update(kw)
    return out


def plan_of(sites, **settings):
    return P.plan_sites(sites, role_settings(artifact_base=REPO_ROOT, **settings))


BLOG = normalized_site("blog", 8001, "1.4.2")
SHOP = normalized_site("shop", 8002, "2.1.0")
WIKI = normalized_site("wiki", 8003, "3.0.0", strategy="overlap")
PREFLIGHT = sample_preflight()


# --------------------------------------------------------------------------
# select_sites
# --------------------------------------------------------------------------

NAMES = ["blog", "shop", "wiki"]


@pytest.mark.parametrize("selection,expected", [
    (["shop", "blog"], ["blog", "shop"]),            # input order, not selection order
    (("wiki",), ["wiki"]),
    ("blog", ["blog"]),
    ("blog,shop", ["blog", "shop"]),
    ("blog shop", ["blog", "shop"]),
    (" shop ,  blog,", ["blog", "shop"]),
    ("wiki\tblog", ["blog", "wiki"]),
    (None, NAMES),
    ("", NAMES),
    ([], NAMES),
])
def test_select_sites(selection, expected):
    assert P.select_sites(NAMES, selection) == (expected, [])


def test_select_sites_unknown_names_name_the_variable():
    selected, errors = P.select_sites(NAMES, "blog,nope,gone")
    assert selected == []
    assert errors == ["onebox_deploy_sites names unknown sites: nope, gone (known: blog, shop, wiki)"]
    selected, errors = P.select_sites(NAMES, ["nope"], "onebox_rollback_sites")
    assert selected == [] and errors[0].startswith("onebox_rollback_sites names unknown sites: nope")


def test_select_sites_refuses_other_types():
    selected, errors = P.select_sites(NAMES, {"blog": True})
    assert selected == [] and len(errors) == 1
    assert errors[0].startswith("onebox_deploy_sites must be a list of site names or a comma-separated string")


# --------------------------------------------------------------------------
# settings_errors
# --------------------------------------------------------------------------

def test_role_defaults_are_valid_settings():
    assert P.settings_errors(role_settings()) == []


@pytest.mark.parametrize("root", ["/", "/etc", "/etc/onebox", "/usr/local", "/srv", "/var/lib", "/usr", "/home",
                                  "/var/lib/", "/opt", "/run/onebox", "/tmp/onebox", "/srv/../etc"])
def test_onebox_root_may_not_be_a_system_directory(root):
    errors = P.settings_errors(role_settings(root=root))
    assert len(errors) == 1, errors
    assert errors[0].startswith("onebox_root"), errors
    assert repr(root) in errors[0] or root in errors[0]


@pytest.mark.parametrize("root", ["/srv/onebox", "/opt/apps", "/var/lib/onebox", "/data/web"])
def test_onebox_root_of_its_own_is_fine(root):
    assert P.settings_errors(role_settings(root=root)) == []


@pytest.mark.parametrize("root", ["//etc", "//"])
def test_onebox_root_with_a_double_leading_slash_is_still_checked(root):
    assert P.settings_errors(role_settings(root=root)) != []


@pytest.mark.parametrize("key,value,needle", [
    ("env_dir", "etc/onebox", "onebox_env_dir must be an absolute path without '..'"),
    ("unit_dir", "/etc/../tmp", "onebox_unit_dir must be an absolute path without '..'"),
    ("audit_log", None, "onebox_audit_log must be an absolute path"),
    ("strategy", "blue-green", "onebox_strategy must be one of restart, overlap, got 'blue-green'"),
    ("service_type", "forking", "onebox_service_type must be one of exec, notify, simple"),
    ("drain_timeout", 0, "onebox_drain_timeout must be a number greater than 0"),
    ("ready_timeout", "soon", "onebox_ready_timeout must be a number greater than 0"),
    ("backlog", True, "onebox_backlog must be a whole number greater than 0"),
    ("readiness_path", "readyz", "onebox_readiness_path must be a URL path starting with '/'"),
    ("keep_releases", 1, "onebox_keep_releases must be >= 2"),
    ("lock_ttl", 0, "onebox_lock_ttl must be a whole number >= 1"),
    ("lock_wait", -1, "onebox_lock_wait must be a whole number >= 0"),
    ("rollback_scope", "everything", "onebox_rollback_scope must be one of site, all, none"),
    ("hooks", [], "onebox_hooks must be a mapping"),
    ("hooks", {"before_rol": []}, "onebox_hooks: unknown hook point 'before_rol'"),
    ("hooks", {"before_roll": "migrate.yml"}, "onebox_hooks.before_roll must be a list of task files"),
])
def test_bad_settings_name_the_variable(key, value, needle):
    errors = P.settings_errors(role_settings(**{key: value}))
    assert any(needle in e for e in errors), errors


# --------------------------------------------------------------------------
# plan_sites (the site_plan filter)
# --------------------------------------------------------------------------

def test_plan_sites_normalises_and_selects():
    result = plan_of([raw_site(), raw_site("shop", 8002)], select="shop")
    assert result["errors"] == []
    assert result["names"] == ["blog", "shop"] and result["selected"] == ["shop"]
    assert [s["name"] for s in result["sites"]] == ["blog", "shop"]     # every site, normalised
    blog, shop = result["sites"]
    assert shop["sha256"] == A.sha256_of(os.path.join(REPO_ROOT, APP))
    assert shop["artifact_strip"] == ""
    assert "sha256" not in blog                                            # not selected: not hashed
    assert shop["site_dir"] == "/srv/onebox/shop" and shop["exec_start"] == "/srv/onebox/shop/current/bin/onebox-app"


def test_plan_sites_hashes_each_selected_artifact_once():
    with mock.patch.object(P, "sha256_of", wraps=P.sha256_of) as sha:
        result = plan_of([raw_site(), raw_site("shop", 8002), raw_site("wiki", 8003)], select=["blog", "wiki"])
    assert result["errors"] == []
    assert sha.call_count == 2


def test_plan_sites_listen_must_be_an_ip_address():
    result = plan_of([raw_site(listen="localhost:8101")])
    assert result["sites"] == []
    assert len(result["errors"]) == 1
    err = result["errors"][0]
    assert err.startswith("site 'blog' (onebox_sites[0]): field 'listen'")
    assert "'localhost' is not an IP address" in err and "localhost:8101" in err
    # parse_listen itself still reads a name; only validation refuses it
    assert S.parse_listen("localhost:8101") == ("localhost", 8101)


def test_plan_sites_health_listen_must_be_an_ip_address():
    errors = plan_of([raw_site(health_listen="localhost:18001")])["errors"]
    assert len(errors) == 1 and "field 'health_listen'" in errors[0] and "not an IP address" in errors[0]


def test_plan_sites_renders_env_values_as_the_env_file_writes_them():
    result = plan_of([raw_site(env={"DEBUG": True, "QUIET": False, "WORKERS": 4, "RATIO": 0.5, "NAME": "x y"})])
    assert result["errors"] == []
    assert result["sites"][0]["env"] == {"DEBUG": "true", "QUIET": "false", "WORKERS": "4", "RATIO": "0.5",
                                         "NAME": "x y"}


@pytest.mark.parametrize("value,kind", [([1, 2], "list"), ({"a": 1}, "dict"), (None, "null")])
def test_plan_sites_refuses_env_values_without_a_text_form(value, kind):
    errors = plan_of([raw_site(env={"OK": "1", "BAD": value})])["errors"]
    assert errors == ["site 'blog' (onebox_sites[0]): field 'env' value of BAD must be a string, a number or a "
                      "boolean, got %s" % kind]


@pytest.mark.parametrize("value", [None, ["hunter2"], {"password": "hunter2"}])
def test_plan_sites_refuses_a_secret_value_without_echoing_it(value):
    result = plan_of([raw_site(secret_env={"TOKEN": value, "OTHER": "hunter2"})])
    assert len(result["errors"]) == 1
    err = result["errors"][0]
    assert err.startswith("site 'blog' (onebox_sites[0]): field 'secret_env' value of TOKEN")
    assert "hunter2" not in json.dumps(result)


def test_plan_sites_refuses_a_key_in_env_and_secret_env():
    result = plan_of([raw_site(env={"DB_URL": "postgres://x", "A": "1"}, secret_env={"DB_URL": "s3cr3t-value"})])
    assert result["errors"] == ["site 'blog' (onebox_sites[0]): field 'secret_env' DB_URL is also set in env; "
                                "set it in one of them"]
    assert "s3cr3t-value" not in json.dumps(result)


def test_plan_sites_never_carries_secret_values():
    result = plan_of([raw_site(secret_env={"DB_KEY": "hunter2", "N": 1})])
    assert result["errors"] == []
    assert result["sites"][0]["secret_env_keys"] == ["DB_KEY", "N"]
    assert "hunter2" not in json.dumps(result)


def test_plan_sites_accepts_50_valid_sites():
    sites = [raw_site("site-%02d" % i, 8100 + i, env={"INDEX": i}) for i in range(50)]
    started = time.monotonic()
    result = plan_of(sites)
    assert result["errors"] == []
    assert len(result["sites"]) == 50 and result["selected"] == [s["name"] for s in sites]
    assert len(set(s["sha256"] for s in result["sites"])) == 1
    assert time.monotonic() - started < 10


def test_plan_sites_reports_settings_and_site_errors_together():
    result = plan_of([raw_site(listen="localhost:1")], root="/etc", select="nope")
    errors = result["errors"]
    assert any(e.startswith("onebox_root") for e in errors), errors
    assert any(e.startswith("onebox_deploy_sites names unknown sites: nope") for e in errors), errors
    assert any("field 'listen'" in e for e in errors), errors
    assert result["sites"] == [] and result["selected"] == []


def test_plan_sites_names_the_selection_variable():
    result = P.plan_sites([raw_site()], role_settings(artifact_base=REPO_ROOT, select="nope",
                                                      select_field="onebox_rollback_sites"))
    assert result["errors"][0].startswith("onebox_rollback_sites names unknown sites: nope")


def test_plan_sites_of_a_non_list():
    result = plan_of({"name": "blog"})
    assert result["errors"] == ["onebox_sites must be a list of site mappings, got dict"]


def test_plan_sites_strips_the_top_directory_of_a_tarball(tmp_path):
    app = tmp_path / "blog-1.0" / "bin"
    app.mkdir(parents=True)
    (app / "blog").write_text("#!/bin/sh\n")
    (app / "blog").chmod(0o755)
    with tarfile.open(str(tmp_path / "blog-1.0.tar.gz"), "w:gz") as tar:
        tar.add(str(tmp_path / "blog-1.0"), arcname="blog-1.0")
    result = P.plan_sites([raw_site(artifact="blog-1.0.tar.gz", command="bin/blog")],
                          role_settings(artifact_base=str(tmp_path)))
    assert result["errors"] == []
    site = result["sites"][0]
    assert site["artifact_kind"] == "tarball" and site["artifact_strip"] == "blog-1.0"


# --------------------------------------------------------------------------
# roll_plan
# --------------------------------------------------------------------------

def serving(version, **kw):
    """A preflight ``sites`` entry of a site that serves *version*."""
    out = {"units_present": True, "socket_active": True, "service_active": True, "current_release": version,
           "stale_units": []}
    out.update(kw)
    return out


def test_roll_plan_rolls_only_changed_sites():
    host = {"blog": serving("1.4.2"), "shop": serving("2.1.0"), "wiki": serving("3.0.0")}
    staged = {"blog": {"changed": False}, "shop": {"changed": True}, "wiki": {"changed": False}}
    files = {"wiki": {"installed": [{"path": "/etc/onebox/wiki.env", "backup": "/etc/onebox/.previous/wiki.env"}],
                      "socket_path": "/etc/systemd/system/wiki.socket"}}
    roll = P.roll_plan([BLOG, SHOP, WIKI], host, staged, files)
    assert roll["names"] == ["shop", "wiki"]
    assert [u["name"] for u in roll["units"]] == ["shop.service", "wiki"]
    assert P.roll_plan([BLOG], host, staged, files) == dict(names=[], units=[], probe_timeout=0.0)


@pytest.mark.parametrize("state", [
    serving("1.4.1"),                                   # current names another release
    serving("1.4.2", service_active=False),             # nothing runs
    {},                                                 # never seen on the host
])
def test_roll_plan_rolls_a_site_that_does_not_serve_its_release(state):
    assert P.roll_plan([BLOG], {"blog": state})["names"] == ["blog"]


def test_roll_plan_marks_fresh_sites():
    host = {"blog": serving("1.4.1"), "shop": {"units_present": False, "current_release": None}}
    units = dict((u["socket"], u) for u in P.roll_plan([BLOG, SHOP], host)["units"])
    assert "fresh" not in units["blog.socket"]
    assert units["shop.socket"]["fresh"] is True


def test_roll_plan_switches_current_and_restores_files_but_the_socket():
    socket = "/etc/systemd/system/blog.socket"
    installed = [{"path": socket, "backup": "/srv/onebox/blog/units/previous/blog.socket"},
                 {"path": "/etc/systemd/system/blog.service", "backup": None},
                 {"path": "/etc/onebox/blog.env", "backup": "/etc/onebox/.previous/blog.env"}]
    files = {"blog": {"installed": installed, "socket_path": socket, "socket_changed": True}}
    unit = P.roll_plan([BLOG], {"blog": serving("1.4.1")}, {}, files)["units"][0]
    assert unit["link"] == "/srv/onebox/blog/current"
    assert unit["link_target"] == "/srv/onebox/blog/releases/1.4.2"
    assert unit["restore"] == installed[1:]
    assert "restore" not in P.roll_plan([BLOG], {"blog": serving("1.4.1")}, {}, files, restore=False)["units"][0]


def test_roll_plan_stop_units_and_restart_socket():
    files = {"blog": {"installed": [], "socket_changed": True}, "shop": {"installed": [], "socket_changed": True},
             "wiki": {"installed": [], "socket_changed": False}}
    host = {"blog": serving("1.4.1", stale_units=["blog@19001.service", "blog@19002.service"],
                            active_units=["blog@19001.service"]),     # 19002 only enabled: disabled, not stopped
            "shop": serving("2.0.0", socket_active=False),
            "wiki": serving("2.9.0")}
    units = dict((u["socket"], u) for u in P.roll_plan([BLOG, SHOP, WIKI], host, {}, files)["units"])
    assert units["blog.socket"]["stop_units"] == ["blog@19001.service"]
    assert units["shop.socket"]["stop_units"] == [] and units["wiki.socket"]["stop_units"] == []
    assert units["blog.socket"]["restart_socket"] is True       # changed and listening: rebind
    assert units["shop.socket"]["restart_socket"] is False      # changed, but not active
    assert units["wiki.socket"]["restart_socket"] is False      # not changed


def test_roll_plan_probe_timeout_is_the_longest_wait_of_the_rolling_sites():
    slow = dict(SHOP, ready_timeout=100, stop_timeout=20.0)
    roll = P.roll_plan([BLOG, slow], {"blog": serving("1.4.1"), "shop": serving("2.0.0")})
    assert roll["probe_timeout"] == pytest.approx(120.0)
    roll = P.roll_plan([BLOG, slow], {"blog": serving("1.4.1"), "shop": serving("2.1.0")})
    assert roll["names"] == ["blog"]
    # drain_timeout 10 + 5 before SIGKILL, plus ready_timeout 60 (the role defaults)
    assert roll["probe_timeout"] == pytest.approx(75.0)


# --------------------------------------------------------------------------
# stage_plan
# --------------------------------------------------------------------------

def test_stage_plan_sends_what_the_host_lacks_and_points_current_when_nothing_serves():
    blog, shop, wiki, tool = (dict(BLOG, sha256="a" * 64), dict(SHOP, sha256="b" * 64), dict(WIKI, sha256="c" * 64),
                              dict(normalized_site("tool", 8004, "1"), sha256="d" * 64))
    host = {
        "blog": serving("1.4.1", release_installed=False),                                  # new release
        "shop": serving("2.1.0", release_installed=True, release_differs=False),            # already there
        "wiki": dict(serving("3.0.0", release_installed=True, release_differs=True),        # replaced
                     socket_active=False, service_active=False),
        "tool": serving(None, release_installed=True, release_differs=False),               # serving, no current
    }
    plan = dict((r["name"], r) for r in P.stage_plan([blog, shop, wiki, tool], host, by="alice@laptop"))
    assert [plan[n]["stage"] for n in ("blog", "shop", "wiki", "tool")] == [True, False, True, False]
    # wiki: current already names 3.0.0, whose directory the staging replaces; the link needs no change
    assert [plan[n]["point_current"] for n in ("blog", "shop", "wiki", "tool")] == [False, False, False, True]
    assert plan["blog"] == dict(name="blog", version="1.4.2", site_dir="/srv/onebox/blog", stage=True,
                                point_current=False,
                                meta=dict(sha256="a" * 64, artifact=BLOG["artifact_path"], by="alice@laptop"))


def test_stage_plan_of_a_new_host_stages_and_points_everything():
    plan = P.stage_plan([BLOG, SHOP], {})
    assert [(r["stage"], r["point_current"]) for r in plan] == [(True, True), (True, True)]
    assert plan[0]["meta"]["by"] == "unknown"


# --------------------------------------------------------------------------
# rollback_plan (also the onebox.deploy.rollback_plan filter)
# --------------------------------------------------------------------------

def test_rollback_plan_chooses_previous_release():
    plan = P.rollback_plan([BLOG], PREFLIGHT)
    assert plan["errors"] == []
    assert plan["targets"] == {"blog": "1.4.0"}
    # the site as it is rolled back: its version is the release it returns to
    assert plan["sites"] == [dict(BLOG, version="1.4.0")]
    assert plan["unchanged"] == []
    unit = plan["units"][0]
    assert unit["name"] == "blog.service"
    assert unit["link"] == "/srv/onebox/blog/current"
    assert unit["link_target"] == "/srv/onebox/blog/releases/1.4.0"
    assert unit["readiness_url"] == BLOG["readiness_url"]


def test_rollback_plan_named_release():
    plan = P.rollback_plan([BLOG], PREFLIGHT, "1.3.9")
    assert plan["errors"] == []
    assert plan["targets"] == {"blog": "1.3.9"}
    assert plan["units"][0]["link_target"] == "/srv/onebox/blog/releases/1.3.9"


def test_rollback_plan_overlap_unit():
    plan = P.rollback_plan([WIKI], PREFLIGHT)
    assert plan["targets"] == {"wiki": "2.8.0"}
    unit = plan["units"][0]
    assert unit["name"] == "wiki"
    assert unit["strategy"] == "overlap"
    assert unit["instances"] == WIKI["instances"]
    assert unit["link_target"] == "/srv/onebox/wiki/releases/2.8.0"


def test_rollback_plan_nothing_deployed():
    preflight = {"blog": {"current_release": None, "previous_release": None, "releases": []}}
    plan = P.rollback_plan([BLOG], preflight)
    assert len(plan["errors"]) == 1
    err = plan["errors"][0]
    assert err.startswith("site blog: field 'onebox_rollback_sites'")
    assert "nothing is deployed" in err
    assert "/srv/onebox/blog" in err
    assert plan["targets"] == {} and plan["units"] == [] and plan["sites"] == []


def test_rollback_plan_site_missing_from_preflight():
    plan = P.rollback_plan([BLOG], {})
    assert len(plan["errors"]) == 1
    assert "site blog: field 'onebox_rollback_sites'" in plan["errors"][0]


def test_rollback_plan_no_earlier_release():
    plan = P.rollback_plan([SHOP], PREFLIGHT)
    assert len(plan["errors"]) == 1
    err = plan["errors"][0]
    assert err.startswith("site shop: field 'onebox_rollback_to'")
    assert "no release was installed before 2.0.0" in err
    assert "installed: 2.0.0" in err
    assert plan["targets"] == {} and plan["units"] == []


def test_rollback_plan_release_not_installed():
    plan = P.rollback_plan([BLOG], PREFLIGHT, "0.9.0")
    assert len(plan["errors"]) == 1
    err = plan["errors"][0]
    assert err.startswith("site blog: field 'onebox_rollback_to'")
    assert "release 0.9.0 is not installed" in err
    assert "1.3.9, 1.4.0, 1.4.1" in err
    assert plan["targets"] == {} and plan["units"] == []


def test_rollback_plan_target_is_current_is_unchanged():
    plan = P.rollback_plan([BLOG], PREFLIGHT, "1.4.1")
    assert plan["errors"] == []
    assert plan["unchanged"] == ["blog"]
    assert plan["targets"] == {} and plan["units"] == [] and plan["sites"] == []


def test_rollback_plan_mixed_sites():
    plan = P.rollback_plan([BLOG, SHOP, WIKI], PREFLIGHT)
    assert plan["targets"] == {"blog": "1.4.0", "wiki": "2.8.0"}
    assert [s["name"] for s in plan["sites"]] == ["blog", "wiki"]
    assert [u["name"] for u in plan["units"]] == ["blog.service", "wiki"]
    assert len(plan["errors"]) == 1 and plan["errors"][0].startswith("site shop:")


def test_rollback_plan_restores_the_files_of_a_site_files_result():
    installed = [{"path": "/etc/systemd/system/blog.service", "backup": "/srv/onebox/blog/units/previous/blog.service"},
                 {"path": "/etc/onebox/blog.env", "backup": None}]
    result = {"changed": True, "installed": installed, "socket_changed": False, "verified": "ok"}
    unit = P.rollback_plan([BLOG], PREFLIGHT, None, {"blog": result})["units"][0]
    assert unit["restore"] == installed
    # the plain form: a list of {path, backup} per site
    assert P.rollback_plan([BLOG], PREFLIGHT, None, {"blog": installed})["units"][0]["restore"] == installed
    # a site without files to restore, and no restore at all
    assert P.rollback_plan([BLOG], PREFLIGHT, None, {"shop": result})["units"][0]["restore"] == []
    assert P.rollback_plan([BLOG], PREFLIGHT, None, {"blog": {"changed": False}})["units"][0]["restore"] == []
    assert "restore" not in P.rollback_plan([BLOG], PREFLIGHT)["units"][0]
    assert "restore" not in P.rollback_plan([BLOG], PREFLIGHT, None, {})["units"][0]


def test_rollback_plan_sites_carry_the_target_version():
    plan = P.rollback_plan([BLOG, WIKI], PREFLIGHT, None)
    assert [(s["name"], s["version"]) for s in plan["sites"]] == [("blog", "1.4.0"), ("wiki", "2.8.0")]
    assert BLOG["version"] == "1.4.2"      # the input is left alone


# --------------------------------------------------------------------------
# plan_sites: state: absent
# --------------------------------------------------------------------------

def test_plan_sites_separates_the_sites_to_remove():
    result = plan_of([raw_site(), {"name": "wiki", "state": "absent", "purge": True}, raw_site("shop", 8002)])
    assert result["errors"] == []
    assert result["names"] == ["blog", "shop"] and result["selected"] == ["blog", "shop"]
    assert [s["name"] for s in result["sites"]] == ["blog", "shop"]
    assert result["absent"] == [dict(name="wiki", state="absent", purge=True, user="wiki", group="wiki",
                                     site_dir="/srv/onebox/wiki")]


def test_plan_sites_removes_an_absent_site_only_when_selected():
    sites = [raw_site(), {"name": "wiki", "state": "absent", "user": "wiki-app"}]
    only_wiki = plan_of(sites, select="wiki")
    assert only_wiki["errors"] == [] and only_wiki["selected"] == []
    assert [a["name"] for a in only_wiki["absent"]] == ["wiki"] and only_wiki["absent"][0]["user"] == "wiki-app"
    only_blog = plan_of(sites, select="blog")
    assert only_blog["errors"] == [] and only_blog["selected"] == ["blog"] and only_blog["absent"] == []


def test_plan_sites_never_touches_a_site_missing_from_the_list():
    # wiki was deployed before and is simply no longer listed: nothing removes it
    result = plan_of([raw_site()])
    assert result["errors"] == [] and result["absent"] == [] and result["names"] == ["blog"]
    assert P.plan_sites([], role_settings(artifact_base=REPO_ROOT))["absent"] == []


def test_plan_sites_selection_knows_the_names_of_absent_entries():
    errors = plan_of([raw_site(), {"name": "wiki", "state": "absent"}], select="nope")["errors"]
    assert errors == ["onebox_deploy_sites names unknown sites: nope (known: blog, wiki)"]


def test_plan_sites_an_absent_entry_needs_only_a_name_and_reads_no_artifact():
    with mock.patch.object(P, "sha256_of", wraps=P.sha256_of) as sha:
        result = plan_of([raw_site(), {"name": "wiki", "state": "absent", "artifact": "files/missing"}])
    assert result["errors"] == [] and sha.call_count == 1
    assert "wiki" not in [s["name"] for s in result["sites"]]


def test_plan_sites_with_errors_removes_nothing():
    result = plan_of([raw_site(listen="nowhere"), {"name": "wiki", "state": "absent"}])
    assert result["errors"] and result["absent"] == [] and result["sites"] == []
    result = plan_of([raw_site(purge=True)])
    assert result["errors"] == ["site 'blog' (onebox_sites[0]): field 'purge' only goes with state: absent"]
    assert result["absent"] == []


# --------------------------------------------------------------------------
# plan_sites: check_artifacts=False (a rollback)
# --------------------------------------------------------------------------

def _never(*args, **kwargs):
    raise AssertionError("an artifact was read: %r" % (args,))


@pytest.mark.parametrize("check_artifacts", [False, "false", "False"])
def test_plan_sites_without_artifact_checks_reads_and_hashes_no_artifact(tmp_path, check_artifacts):
    with tarfile.open(str(tmp_path / "shop.tar.gz"), "w:gz") as tar:
        tar.add(os.path.join(REPO_ROOT, APP), arcname="shop")
    sites = [raw_site(),                                                          # a directory that exists
             raw_site("shop", 8002, artifact=str(tmp_path / "shop.tar.gz"), command="bin/onebox-app",
                      checksum="sha256:" + "0" * 64),                                # a tarball, wrong checksum
             raw_site("wiki", 8003, artifact="files/gone.tar.gz"),                   # no longer on the controller
             raw_site("tool", 8004, artifact="files/gone")]
    with mock.patch.object(P, "sha256_of", _never), mock.patch.object(S, "sha256_of", _never), \
            mock.patch.object(S, "inspect_tarball", _never), mock.patch.object(S, "directory_problem", _never):
        result = plan_of(sites, check_artifacts=check_artifacts)
    assert result["errors"] == []
    assert result["selected"] == ["blog", "shop", "wiki", "tool"]
    for site in result["sites"]:
        assert "sha256" not in site and "artifact_strip" not in site, site["name"]
    assert [s["artifact_kind"] for s in result["sites"]] == ["dir", "tarball", "tarball", "file"]


def test_plan_sites_with_artifact_checks_refuses_a_missing_artifact():
    errors = plan_of([raw_site("wiki", 8003, artifact="files/gone.tar.gz")])["errors"]
    assert len(errors) == 1 and "field 'artifact'" in errors[0] and "does not exist on the controller" in errors[0]


# --------------------------------------------------------------------------
# roll_plan: stop_units
# --------------------------------------------------------------------------

def test_roll_plan_stops_only_stale_units_that_run():
    host = {"blog": serving("1.4.1", stale_units=["blog@19001.service", "blog@19002.service"],
                            active_units=["blog.service", "blog@19002.service"])}
    (unit,) = P.roll_plan([BLOG], host)["units"]
    assert unit["stop_units"] == ["blog@19002.service"]           # not the running current unit, not 19001
    host = {"blog": serving("1.4.1", stale_units=["blog@19001.service"])}          # active_units unknown
    assert P.roll_plan([BLOG], host)["units"][0]["stop_units"] == []


def test_roll_plan_removes_the_socket_unit_of_a_failed_first_install_only():
    socket = "/etc/systemd/system/blog.socket"
    installed = [dict(path=socket, backup=None), dict(path="/etc/systemd/system/blog.service", backup=None),
                 dict(path="/etc/onebox/blog.env", backup=None)]
    files = {"blog": {"installed": installed, "socket_path": socket, "socket_changed": True}}
    fresh = P.roll_plan([BLOG], {"blog": {"units_present": False}}, {}, files)["units"][0]
    assert fresh["fresh"] is True and [e["path"] for e in fresh["restore"]] == [e["path"] for e in installed]
    served = P.roll_plan([BLOG], {"blog": serving("1.4.1")}, {}, files)["units"][0]
    assert "fresh" not in served and socket not in [e["path"] for e in served["restore"]]


def test_start_grace_follows_the_site_history():
    # no history: the 10 s of old
    assert P.start_grace([], 60) == 10.0 and P.start_grace(None, 60) == 10.0
    # twice the usual start (the median, its stop time taken off), within floor and ready timeout
    assert P.start_grace([[1.6, 0.1], [1.4, 0.1], [9.0, 0.2]], 60) == pytest.approx(3.0)
    assert P.start_grace([[2.1, 0.1], [2.5, None]], 60) == pytest.approx(4.5)
    assert P.start_grace([[0.3, 0.1]], 60) == P.START_GRACE_FLOOR
    assert P.start_grace([[40.0, 0.0]], 60) == 60.0


def test_roll_and_rollback_units_carry_the_grace_and_the_stop_timeout():
    site = normalized_site("blog", 8001, "2.0.0")
    state = {"blog": {"current_release": "1.0.0", "previous_release": "0.9.0", "service_active": True,
                      "units_present": True, "releases": [{"version": "0.9.0"}, {"version": "1.0.0"}],
                      "ready_history": [[2.0, 0.5], [2.5, 0.5]]}}
    unit = P.roll_plan([site], state)["units"][0]
    assert unit["liveness_grace"] == pytest.approx(3.5)
    assert unit["stop_timeout"] == float(site["drain_timeout"]) + 5
    back = P.rollback_plan([site], state)["units"][0]
    assert back["liveness_grace"] == pytest.approx(3.5) and back["stop_timeout"] == unit["stop_timeout"]
    fresh = P.roll_plan([site], {})["units"][0]
    assert fresh["liveness_grace"] == P.START_GRACE_DEFAULT


def test_a_run_without_onebox_sites_fails_naming_it_and_a_misspelling():
    plan = plan_of(None, variables=["onebox_site", "onebox_root", "onebox_deploy_sites", "onebox_run_site",
                                    "onebox_rollback_sites", "onebox_history_site", "_onebox_marker"])
    assert plan["sites"] == [] and plan["selected"] == []
    assert plan["errors"] == [
        "onebox_sites is not defined: set it to the list of sites of these hosts (onebox_sites: [] for none), "
        "in the inventory or with -e; did you mean it where you set onebox_site?"]
    assert P.undefined_sites([]).endswith("in the inventory or with -e")
    for typo in ("onebox_stes", "oneboxsites", "onebox_sties", "onebox-sites", "onebox_sitess"):
        assert P.undefined_sites([typo, "onebox_run_site"]).endswith("did you mean it where you set %s?" % typo)
    # an explicit empty list is a run without sites, not an error
    assert plan_of([])["errors"] == [] and plan_of([])["sites"] == []


# --------------------------------------------------------------------------
# data: snapshot_plan, and rollback_plan with data
# --------------------------------------------------------------------------

NOTES = S.normalize_site({"name": "notes", "listen": "127.0.0.1:8201", "version": "2.0.0", "artifact": "/opt/n/",
                          "command": "bin/app", "data": ["shared/notes.db"]}, role_settings(), "/opt")
SNAPSHOTS = [
    dict(name="20261201T100000Z-0.9.0-to-1.0.0", path="/srv/onebox/notes/snapshots/20261201T100000Z-0.9.0-to-1.0.0",
         from_version="0.9.0", to_version="1.0.0", time="20261201T100000Z", bytes=10, taken_at=1.0),
    dict(name="20261202T100000Z-1.0.0-to-2.0.0", path="/srv/onebox/notes/snapshots/20261202T100000Z-1.0.0-to-2.0.0",
         from_version="1.0.0", to_version="2.0.0", time="20261202T100000Z", bytes=20, taken_at=2.0),
    dict(name="20261203T100000Z-1.0.0-to-2.0.0", path="/srv/onebox/notes/snapshots/20261203T100000Z-1.0.0-to-2.0.0",
         from_version="1.0.0", to_version="2.0.0", time="20261203T100000Z", bytes=30, taken_at=3.0),
]
NOTES_HOST = {"current_release": "2.0.0", "previous_release": "1.0.0", "snapshots": SNAPSHOTS,
              "releases": [{"version": "0.9.0"}, {"version": "1.0.0"}, {"version": "2.0.0"}]}


@pytest.mark.parametrize("state,expected", [
    (serving("1.0.0"), "1.0.0"),                                  # a new release: from the serving one
    ({"current_release": None}, None),                            # a first release
    ({}, None),                                                   # never seen on the host
    (serving("2.0.0", release_differs=True), "2.0.0"),            # the same version with other content
])
def test_snapshot_plan_takes_the_data_of_sites_whose_release_changes(state, expected):
    plan = P.snapshot_plan([NOTES, BLOG], {"notes": state, "blog": serving("1.4.1")})
    assert plan == [dict(name="notes", site_dir="/srv/onebox/notes", user="notes", group="notes",
                         data=["shared/notes.db"], from_version=expected, to_version="2.0.0")]


def test_snapshot_plan_leaves_out_sites_without_data_or_a_new_release():
    assert P.snapshot_plan([NOTES], {"notes": serving("2.0.0")}) == []
    assert P.snapshot_plan([BLOG], {"blog": serving("1.4.1")}) == []


def test_rollback_plan_without_data_says_who_wrote_it_and_which_snapshot_would_restore_it():
    plan = P.rollback_plan([NOTES], {"notes": NOTES_HOST})
    assert plan["errors"] == [] and plan["targets"] == {"notes": "1.0.0"}
    assert "data" not in plan["units"][0]
    data = plan["data"]["notes"]
    assert data["requested"] is False and data["last_written_by"] == "2.0.0" and data["target"] == "1.0.0"
    assert data["snapshot"]["name"] == "20261203T100000Z-1.0.0-to-2.0.0"     # the newest taken when 1.0.0 left
    assert data["command"] == ("ansible-playbook onebox.deploy.rollback -e '{\"onebox_rollback_sites\": [\"notes\"]}' "
                               "-e onebox_rollback_to=1.0.0 -e onebox_rollback_data=true")


def test_rollback_plan_with_data_restores_the_newest_snapshot_taken_when_the_target_was_replaced():
    plan = P.rollback_plan([NOTES], {"notes": NOTES_HOST}, None, None, True)
    assert plan["errors"] == []
    unit = plan["units"][0]
    assert unit["link_target"] == "/srv/onebox/notes/releases/1.0.0"
    assert unit["data"] == dict(site="notes", site_dir="/srv/onebox/notes", user="notes", group="notes",
                                unit_file="notes.service", files=["shared/notes.db"],
                                snapshot="/srv/onebox/notes/snapshots/20261203T100000Z-1.0.0-to-2.0.0",
                                written_by="2.0.0", target="1.0.0")
    assert plan["data"]["notes"]["requested"] is True
    # a named release: the snapshot taken when that one was replaced
    plan = P.rollback_plan([NOTES], {"notes": NOTES_HOST}, "0.9.0", None, True)
    assert plan["units"][0]["data"]["snapshot"].endswith("20261201T100000Z-0.9.0-to-1.0.0")


def test_rollback_plan_with_data_to_the_serving_release_restores_only_the_data():
    host = dict(NOTES_HOST, current_release="1.0.0", previous_release="0.9.0")
    assert P.rollback_plan([NOTES], {"notes": host}, "1.0.0")["unchanged"] == ["notes"]
    plan = P.rollback_plan([NOTES], {"notes": host}, "1.0.0", None, True)
    assert plan["unchanged"] == [] and plan["targets"] == {"notes": "1.0.0"}
    unit = plan["units"][0]
    assert unit["link_target"] == "/srv/onebox/notes/releases/1.0.0"
    assert unit["data"]["written_by"] == "1.0.0" and unit["data"]["snapshot"].endswith("-1.0.0-to-2.0.0")


def test_rollback_plan_with_data_but_no_snapshot_is_an_error_naming_the_field():
    host = dict(NOTES_HOST, snapshots=SNAPSHOTS[:1])
    plan = P.rollback_plan([NOTES], {"notes": host}, None, None, True)
    assert plan["units"] == [] and plan["errors"] == [
        "site notes: field 'onebox_rollback_data': no snapshot of its data was taken when release 1.0.0 was replaced "
        "(snapshots: 20261201T100000Z-0.9.0-to-1.0.0); roll back without onebox_rollback_data"]
    # without data the same rollback goes on, and says there is nothing to restore
    plan = P.rollback_plan([NOTES], {"notes": host})
    assert plan["errors"] == [] and plan["data"]["notes"]["snapshot"] is None


def test_rollback_plan_with_data_leaves_sites_without_data_as_they_were():
    plan = P.rollback_plan([BLOG], PREFLIGHT, None, None, True)
    assert plan["errors"] == [] and "data" not in plan["units"][0] and plan["data"] == {}


# --------------------------------------------------------------------------
# onebox.deploy.run: one site and its command, checked with the sites
# --------------------------------------------------------------------------

def run_settings(site="blog", command="bin/app migrate --all", **kw):
    return role_settings(select=site, select_field="onebox_run_site", check_artifacts=False, run=True,
                         run_command=command, **kw)


def test_run_plans_the_command_inside_current():
    sites = [user_site(), user_site(name="shop", listen="127.0.0.1:8002", health_listen="127.0.0.1:19002")]
    plan = P.plan_sites(sites, run_settings("shop"))
    assert plan["errors"] == []
    assert [s["name"] for s in plan["selected_sites"]] == ["shop"]
    assert plan["run"] == dict(site="shop", argv=["/srv/onebox/shop/current/bin/app", "migrate", "--all"],
                               command="bin/app migrate --all")
    absolute = P.plan_sites(sites, run_settings(command="/usr/bin/env 'A B'"))["run"]
    assert absolute["argv"] == ["/usr/bin/env", "A B"]
    assert "run" not in P.plan_sites(sites, role_settings(check_artifacts=False))


@pytest.mark.parametrize("site,command,error", [
    ("nope", "bin/app", "onebox_run_site names unknown sites: nope (known: blog, gone)"),
    ("", "bin/app", "onebox_run_site is required: the site to run the command for"),
    ("blog,gone", "bin/app", "onebox_run_site names 2 sites (blog, gone); give one"),
    ("gone", "bin/app", "onebox_run_site names gone, which has state: absent"),
    ("blog", "", "onebox_run_command is required"),
    ("blog", "   ", "onebox_run_command is required"),
    ("blog", "bin/../../../usr/bin/id", "onebox_run_command: the argument 'bin/../../../usr/bin/id' has a '..' path"),
    ("blog", "bin/app --db ../shared/x", "onebox_run_command: the argument '../shared/x' has a '..' path part"),
    ("blog", "bin/app 'unclosed", "onebox_run_command cannot be parsed: No closing quotation"),
    ("blog", "bin/app\nrm -rf /", "onebox_run_command must be one line without NUL"),
])
def test_run_refuses_bad_input_naming_the_field(site, command, error):
    sites = [user_site(), dict(name="gone", state="absent")]
    plan = P.plan_sites(sites, run_settings(site, command))
    assert len(plan["errors"]) == 1 and plan["errors"][0].startswith(error), plan["errors"]
    assert "run" not in plan and plan["sites"] == []


def test_run_refuses_what_key_value_extra_vars_left_over():
    plan = P.plan_sites([user_site()], run_settings(command="bin/app", run_leftover="migrate --all"))
    assert plan["errors"] == ["onebox_run_command: -e key=value ends a value at a space, and 'migrate --all' was left "
                              "over; quote the command: -e 'onebox_run_command=\"bin/app migrate --all\"'"]


def test_run_errors_come_with_the_site_errors():
    plan = P.plan_sites([user_site(listen="nowhere")], run_settings(command="../x"))
    assert any("field 'listen'" in e for e in plan["errors"])
    assert any(e.startswith("onebox_run_command:") for e in plan["errors"])
