# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that plan a run on the controller: the validated, normalised sites
(once per run), the secrets for the environment files, the roll."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.onebox.deploy.plugins.module_utils.artifacts import sha256_of
from ansible_collections.onebox.deploy.plugins.module_utils.plan import plan_sites, roll_plan
from ansible_collections.onebox.deploy.plugins.module_utils.sites import env_value, resolve_artifact


def site_plan(sites, settings):
    """See plan.plan_sites: ``dict(errors, sites, selected, names)``."""
    return plan_sites(sites, settings)


def secret_env(sites):
    """``{site name: {KEY: value as the environment file writes it}}`` of the
    sites' ``secret_env``; for the environment file only, never for display."""
    out = {}
    for site in sites or []:
        if isinstance(site, dict) and isinstance(site.get("secret_env"), dict):
            out[site.get("name")] = dict((str(k), env_value(v)) for k, v in site["secret_env"].items())
    return out


def artifact_sums(sites, artifact_base=None):
    """``{name: sha256}`` of the artifacts of sites (raw or normalised), read on the controller."""
    out = {}
    for site in sites:
        path = site.get("artifact_path") or resolve_artifact(site["artifact"], artifact_base)
        out[site["name"]] = sha256_of(path)
    return out


class FilterModule(object):
    def filters(self):
        return {
            "site_plan": site_plan,
            "secret_env": secret_env,
            "artifact_sums": artifact_sums,
            "roll_plan": roll_plan,
        }
