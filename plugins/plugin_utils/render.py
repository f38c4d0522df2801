# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rendering a site's files from the site role's Jinja2 templates, on the
controller; used by the action plugins of ``onebox.deploy.preflight`` (units,
to verify them before anything changes) and ``onebox.deploy.site_files``
(units and environment file, to install them)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible_collections.onebox.deploy.plugins.module_utils.host import HOST_PATHS_SPEC

TEMPLATES = (("socket", "socket.j2"), ("service", "service.j2"), ("env", "env.j2"))
#: The only variables the templates use besides ``site``: copying every
#: variable per template would cost more than the rendering itself.
VARIABLES = ("ansible_search_path", "role_path", "ansible_managed", "inventory_hostname")


class SiteRenderer(object):
    """Renders the templates of sites for one action plugin run."""

    def __init__(self, action, task_vars, marker=None):
        self.lookup = action._shared_loader_obj.lookup_loader.get(
            "ansible.builtin.template", loader=action._loader, templar=action._templar)
        self.paths = dict((key, action._find_needle("templates", name)) for key, name in TEMPLATES)
        self.variables = dict((k, task_vars[k]) for k in VARIABLES if k in task_vars)
        self.marker = marker or HOST_PATHS_SPEC["marker"]["default"]

    def render(self, key, site, secret_env=None):
        """The text of template *key* (socket, service or env) for *site*."""
        extra = dict(site=site, _onebox_marker=self.marker)
        if key == "env":
            extra["secret_env"] = secret_env or {}
        try:
            out = self.lookup.run([self.paths[key]], variables=self.variables, template_vars=extra)[0]
        except AnsibleError as exc:
            raise AnsibleActionFail("site %s: rendering %s failed: %s" % (site["name"], dict(TEMPLATES)[key],
                                                                          exc.message))
        return out if out.endswith("\n") else out + "\n"
