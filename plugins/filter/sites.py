# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that validate and normalise ``onebox_sites`` on the controller."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.onebox.deploy.plugins.module_utils.sites import (
    artifact_sha256,
    normalize_site,
    roll_unit,
    validate_sites,
)


def _base(artifact_base):
    # Relative artifacts resolve against the directory ansible-playbook was run
    # from, also when the playbook itself lives in an installed collection.
    return artifact_base or os.getcwd()


def site_errors(sites, artifact_base=None, default_strategy="restart"):
    """List of problems in ``onebox_sites``; empty when all sites are valid."""
    return validate_sites(sites, _base(artifact_base), default_strategy=default_strategy)


def normalize_sites(sites, defaults=None, artifact_base=None):
    """Sites with defaults filled in and derived fields (URLs, ports, paths)."""
    return [normalize_site(site, defaults or {}, _base(artifact_base)) for site in sites]


def artifact_sums(sites):
    """``{name: sha256}`` of the artifacts of normalised sites, read on the controller."""
    return dict((site["name"], artifact_sha256(site["artifact_path"])) for site in sites)


class FilterModule(object):
    def filters(self):
        return {
            "site_errors": site_errors,
            "normalize_sites": normalize_sites,
            "roll_unit": roll_unit,
            "artifact_sums": artifact_sums,
        }
