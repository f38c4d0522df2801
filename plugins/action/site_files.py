# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of ``onebox.deploy.site_files``: renders every selected
site's socket unit, service unit and environment file from the role's
templates on the controller, then runs the module once for all sites."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase

MODULE = "onebox.deploy.site_files"
TEMPLATES = (("socket", "socket.j2"), ("service", "service.j2"), ("env", "env.j2"))
FILE_KEYS = ("name", "user", "group", "site_dir", "version", "service_file", "trigger_unit", "retired_file")


class ActionModule(ActionBase):

    TRANSFERS_FILES = False

    def render(self, lookup, path, variables, site, extra):
        try:
            out = lookup.run([path], variables=variables, template_vars=dict(extra, site=site))[0]
        except AnsibleError as exc:
            raise AnsibleActionFail("site %s: rendering %s failed: %s" % (site["name"], path.rsplit("/", 1)[-1],
                                                                          exc.message))
        return out if out.endswith("\n") else out + "\n"

    def run(self, tmp=None, task_vars=None):
        super(ActionModule, self).run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        args = dict(self._task.args)
        sites = args.pop("sites", None) or []
        secrets = args.pop("secret_env", None) or {}
        host = args.pop("host", None) or {}
        marker = args.get("marker") or "Managed by onebox.deploy"
        lookup = self._shared_loader_obj.lookup_loader.get("ansible.builtin.template", loader=self._loader,
                                                           templar=self._templar)
        paths = dict((key, self._find_needle("templates", name)) for key, name in TEMPLATES)
        # Only what the templates use: copying every variable per template would cost more than the rendering.
        variables = dict((k, task_vars[k]) for k in ("ansible_search_path", "role_path", "ansible_managed",
                                                     "inventory_hostname") if k in task_vars)
        files = []
        for site in sites:
            entry = dict((key, site[key]) for key in FILE_KEYS)
            entry["stale_units"] = list((host.get(site["name"]) or {}).get("stale_units") or [])
            entry["secret_keys"] = sorted(secrets.get(site["name"]) or {})
            extra = dict(_onebox_marker=marker, secret_env=secrets.get(site["name"]) or {})
            for key, _name in TEMPLATES:
                entry[key] = self.render(lookup, paths[key], variables, site, extra if key == "env" else
                                         dict(_onebox_marker=marker))
            files.append(entry)
        args["files"] = files
        result = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
        result.pop("invocation", None)
        return result
