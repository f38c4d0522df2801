# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that plan a run on the controller: the validated, normalised sites
(once per run), the secrets for the environment files, artifact checksums,
the data snapshots, the roll and the rollback. The logic is ``plugin_utils/_plan.py``'s."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.onebox.deploy.plugins.plugin_utils._plan import (
    artifact_sums,
    plan_sites,
    roll_plan,
    rollback_plan,
    rollback_units,
    secret_env,
    snapshot_plan,
)


class FilterModule(object):
    def filters(self):
        return {
            "site_plan": plan_sites,
            "secret_env": secret_env,
            "artifact_sums": artifact_sums,
            "roll_plan": roll_plan,
            "rollback_plan": rollback_plan,
            "rollback_units": rollback_units,
            "snapshot_plan": snapshot_plan,
        }
