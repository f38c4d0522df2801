# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of ``onebox.deploy.preflight``: renders the selected sites'
units on the controller so the module can verify those that would change,
with every other read-only check, before anything on the host changes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase
from ansible_collections.onebox.deploy.plugins.plugin_utils._render import SiteRenderer

MODULE = "onebox.deploy.preflight"


class ActionModule(ActionBase):

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        if args.get("verify_units", True) and args.get("sites"):
            renderer = SiteRenderer.for_action(self, task_vars or {}, args.get("marker"))
            args["units"] = [dict(name=site["name"], socket=renderer.render("socket", site),
                                  service=renderer.render("service", site), jobs=renderer.render_jobs(site))
                             for site in args["sites"]]
        return self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
