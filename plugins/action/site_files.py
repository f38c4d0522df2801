# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of ``onebox.deploy.site_files``: renders every selected
site's socket unit, service unit, environment file and the units of its
scheduled jobs from the role's
templates on the controller, then runs the module once for all sites.

The environment files travel in the module's ``no_log`` option ``env_files``
(base64), never in an option that the module logs on the host, and the
value of every secret in ``secret_values`` (``no_log``), so Ansible masks
each one in whatever output might show it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64

from ansible.plugins.action import ActionBase
from ansible_collections.onebox.deploy.plugins.plugin_utils._render import SiteRenderer

MODULE = "onebox.deploy.site_files"
FILE_KEYS = ("name", "user", "group", "site_dir", "version", "service_file", "trigger_unit", "retired_file")


class ActionModule(ActionBase):

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        sites = args.pop("sites", None) or []
        secrets = args.pop("secret_env", None) or {}
        host = args.pop("host", None) or {}
        renderer = SiteRenderer.for_action(self, task_vars or {}, args.get("marker"))
        files = []
        env_files = {}
        for site in sites:
            entry = dict((key, site[key]) for key in FILE_KEYS)
            entry["stale_units"] = list((host.get(site["name"]) or {}).get("stale_units") or [])
            entry["secret_keys"] = sorted(secrets.get(site["name"]) or {})
            entry["socket"] = renderer.render("socket", site)
            entry["service"] = renderer.render("service", site)
            entry["jobs"] = renderer.render_jobs(site)
            env = renderer.render("env", site, secrets.get(site["name"]))
            env_files[site["name"]] = base64.b64encode(env.encode("utf-8")).decode("ascii")
            files.append(entry)
        args["files"] = files
        args["env_files"] = env_files
        args["secret_values"] = sorted(set(value for site in sites for value in
                                           (secrets.get(site["name"]) or {}).values() if value))
        result = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
        result.pop("invocation", None)
        return result
