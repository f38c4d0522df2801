# -*- coding: utf-8 -*-
"""The planning filters (plugins/filter/sites.py): site_plan, secret_env,
artifact_sums, roll_plan; and that the Python side agrees with the role's
interface (roles/*/meta/argument_specs.yml and roles/*/defaults/main.yml):
the same site fields, the same choices, the same defaults.

(tests/unit/test_variable_reference.py checks docs/variables.md against the
argument specs; this file checks the argument specs against the code.)
"""

from __future__ import absolute_import, division, print_function

import hashlib
import json
import os

import pytest
import yaml

from ansible_collections.onebox.deploy.plugins.filter import plan as F
from ansible_collections.onebox.deploy.plugins.plugin_utils import _artifacts as A
from ansible_collections.onebox.deploy.plugins.plugin_utils import _plan as P
from ansible_collections.onebox.deploy.plugins.plugin_utils import _report as R
from ansible_collections.onebox.deploy.plugins.plugin_utils import _sites as S
from conftest import REPO_ROOT, checksum_errors, role_settings, user_site

ROLES = ("site", "traefik")


def _yaml(*parts):
    with open(os.path.join(REPO_ROOT, *parts)) as handle:
        return yaml.safe_load(handle)


def specs(role):
    return _yaml("roles", role, "meta", "argument_specs.yml")["argument_specs"]


def defaults(role):
    return _yaml("roles", role, "defaults", "main.yml")


SITE_OPTIONS = specs("site")["main"]["options"]
SITE_FIELD_SPECS = SITE_OPTIONS["onebox_sites"]["options"]


# --------------------------------------------------------------------------
# the filters
# --------------------------------------------------------------------------

def test_filter_module_exports():
    filters = F.FilterModule().filters()
    assert filters == {"site_plan": P.plan_sites, "secret_env": P.secret_env, "artifact_sums": P.artifact_sums,
                       "roll_plan": P.roll_plan, "rollback_plan": P.rollback_plan, "rollback_units": P.rollback_units,
                       "snapshot_plan": P.snapshot_plan}


def test_site_plan_is_plan_sites():
    site = {"name": "blog", "listen": "127.0.0.1:8001", "version": "1.0", "artifact": "files/reference-app",
            "command": "bin/onebox-app"}
    settings = role_settings(artifact_base=REPO_ROOT)
    assert P.plan_sites([site], settings) == P.plan_sites([site], settings)
    assert P.plan_sites([site], settings)["errors"] == []


def test_secret_env_renders_values_like_the_env_file():
    sites = [{"name": "blog", "secret_env": {"DB_KEY": "hunter2", "ON": True, "OFF": False, "N": 3, 7: "x"}},
             {"name": "shop"}, {"name": "wiki", "secret_env": None}, "not a site"]
    assert P.secret_env(sites) == {"blog": {"DB_KEY": "hunter2", "ON": "true", "OFF": "false", "N": "3", "7": "x"}}
    assert P.secret_env(None) == {} and P.secret_env([]) == {}


def test_artifact_sums_filter(trees, tmp_path):
    a = trees[0]
    tool = tmp_path / "tool"
    tool.write_bytes(b"\x7fELF fake")
    blog = S.normalize_site({"name": "blog", "listen": "8001", "version": "1.4.2", "artifact": "one/blog-1.4.2",
                             "command": "bin/app"}, role_settings(), str(tmp_path))
    cli = S.normalize_site({"name": "tool", "listen": "8002", "version": "1", "artifact": str(tool)}, role_settings(),
                           str(tmp_path))
    assert blog["artifact_path"].endswith("/")
    sums = P.artifact_sums([blog, cli])
    assert sums == {"blog": A.sha256_of(a), "tool": hashlib.sha256(b"\x7fELF fake").hexdigest()}
    assert P.artifact_sums([]) == {}


def test_artifact_sums_filter_of_raw_sites(trees, tmp_path):
    raw = [{"name": "blog", "artifact": "one/blog-1.4.2"}, {"name": "copy", "artifact": trees[1]}]
    assert P.artifact_sums(raw, str(tmp_path)) == {"blog": A.sha256_of(trees[0]),
                                                   "copy": A.sha256_of(trees[0])}


# --------------------------------------------------------------------------
# the checksum field through site_plan (was: the site_errors filter)
# --------------------------------------------------------------------------

def test_checksum_via_site_plan_filter(tree_base):
    digest = A.sha256_of(os.path.join(tree_base, "one", "blog-1.4.2"))
    assert P.plan_sites([user_site(checksum="sha256:" + digest)], role_settings(artifact_base=tree_base))["errors"] == []
    assert len(checksum_errors(P.plan_sites([user_site(checksum="sha256:" + "f" * 64)],
                                            role_settings(artifact_base=tree_base))["errors"])) == 1


def test_checksum_of_a_site_left_out_of_the_run_is_not_compared(tree_base):
    # Only the selected sites' artifacts are hashed (once); the others are still validated otherwise.
    sites = [user_site(checksum="sha256:" + "f" * 64), user_site(name="shop", listen="8002", health_listen="127.0.0.1:19002")]
    assert P.plan_sites(sites, role_settings(artifact_base=tree_base, select="shop"))["errors"] == []
    errors = P.plan_sites(sites, role_settings(artifact_base=tree_base, select="blog"))["errors"]
    assert len(checksum_errors(errors)) == 1 and errors[0].startswith("site 'blog'")


# --------------------------------------------------------------------------
# Python <-> roles/*/meta/argument_specs.yml <-> roles/*/defaults/main.yml
# --------------------------------------------------------------------------

def test_site_fields_are_the_documented_suboptions_of_onebox_sites():
    assert set(SITE_FIELD_SPECS) == set(S.SITE_FIELDS)


@pytest.mark.parametrize("field,choices", [("service_type", S.SERVICE_TYPES), ("strategy", S.STRATEGIES)])
def test_site_field_choices(field, choices):
    assert SITE_FIELD_SPECS[field]["choices"] == list(choices)
    assert SITE_OPTIONS["onebox_" + field]["choices"] == list(choices)


def test_site_state_choices():
    assert SITE_FIELD_SPECS["state"]["choices"] == list(S.STATES)


def test_rollback_scope_choices():
    assert SITE_OPTIONS["onebox_rollback_scope"]["choices"] == list(P.ROLLBACK_SCOPES)


def test_data_writers_choices():
    assert SITE_FIELD_SPECS["data_writers"]["choices"] == list(S.DATA_WRITERS)
    assert SITE_FIELD_SPECS["data_writers"]["default"] == S.DATA_WRITERS[0]


def test_status_format_choices():
    assert specs("site")["status"]["options"]["onebox_status_format"]["choices"] == list(R.STATUS_FORMATS)


def test_every_choice_in_the_site_specs_is_checked_in_python():
    """No other option has choices that the code does not know about."""
    checked = {("onebox_sites", "service_type"), ("onebox_sites", "strategy"), ("onebox_sites", "state"),
               ("onebox_sites", "data_writers"), ("onebox_service_type",),
               ("onebox_strategy",), ("onebox_rollback_scope",), ("onebox_status_format",)}
    found = set()
    for spec in specs("site").values():
        for name, option in (spec.get("options") or {}).items():
            if option.get("choices"):
                found.add((name,))
            for field, sub in (option.get("options") or {}).items():
                if sub.get("choices"):
                    found.add((name, field))
    assert found == checked


def test_site_settings_are_role_options_of_the_same_type():
    """A site field that defaults to a role setting (backlog <- onebox_backlog) has the setting's type."""
    for key in S.SITE_SETTINGS:
        option = SITE_OPTIONS["onebox_" + key]
        assert SITE_FIELD_SPECS[key]["type"] == option["type"], key
        assert SITE_FIELD_SPECS[key].get("choices") == option.get("choices"), key
        assert "default" not in SITE_FIELD_SPECS[key], key      # the role setting is the default


def test_the_planner_gets_every_setting_it_needs():
    settings = role_settings()
    needed = set(S.SITE_SETTINGS) | set(S.PATH_SETTINGS) | set(P.HOST_PATHS)
    assert needed <= set(settings), needed - set(settings)
    for key in needed:
        assert "onebox_" + key in SITE_OPTIONS, key


@pytest.mark.parametrize("role", ROLES)
def test_every_role_default_is_documented_with_the_same_default(role):
    documented = {}
    for entry_point, spec in specs(role).items():
        for name, option in (spec.get("options") or {}).items():
            documented.setdefault(name, []).append((entry_point, option))
    for name, value in defaults(role).items():
        assert name in documented, "%s: %s is in defaults/main.yml but in no entry point of argument_specs.yml" % (
            role, name)
        for entry_point, option in documented[name]:
            assert "default" in option, "%s: %s (entry point %s) has no default" % (role, name, entry_point)
            assert option["default"] == value and type(option["default"]) is type(value), \
                "%s: %s (entry point %s) documents default %r, defaults/main.yml has %r" % (
                    role, name, entry_point, option["default"], value)


@pytest.mark.parametrize("role", ROLES)
def test_every_documented_option_has_a_role_default(role):
    known = dict(defaults("site"), **defaults(role))     # the traefik role also reads onebox_sites
    for entry_point, spec in specs(role).items():
        for name, option in (spec.get("options") or {}).items():
            if option.get("required"):
                # required (onebox_sites): no default anywhere, so a run without it fails naming it
                assert name not in known and "default" not in option, (role, entry_point, name)
                continue
            assert name in known, "%s: %s (entry point %s) has no default in defaults/main.yml" % (
                role, name, entry_point)
            assert option.get("default") == known[name], (role, entry_point, name)


def test_secret_values_are_never_in_a_site_plan(tree_base):
    result = P.plan_sites([user_site(secret_env={"K": "hunter2"})], role_settings(artifact_base=tree_base))
    assert result["errors"] == [] and "hunter2" not in json.dumps(result)
