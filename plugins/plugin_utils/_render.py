# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rendering a site's files on the controller from the collection's
top-level ``templates/`` (socket unit, service unit, environment file, and
per scheduled job a service and a timer unit), found
by path from this file, never through a role's search path. Used by the
action plugins of ``onebox.deploy.preflight`` (the units, to verify them
before anything changes) and ``onebox.deploy.site_files`` (units and
environment file, to install them), and by the unit tests, the same way.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.loader import lookup_loader
from ansible_collections.onebox.deploy.plugins.module_utils.shared import MARKER

#: The collection's templates/ directory.
TEMPLATE_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "templates"))
TEMPLATES = (("socket", "socket.j2"), ("service", "service.j2"), ("env", "env.j2"),
             ("job_service", "job-service.j2"), ("job_timer", "job-timer.j2"))
#: The only variables the templates use besides ``site``: copying every
#: variable per template would cost more than the rendering itself.
VARIABLES = ("ansible_managed", "inventory_hostname", "onebox_lock_file", "onebox_lock_ttl")


class SiteRenderer(object):
    """Renders the templates of sites with Ansible's own template lookup
    (the ``ansible.builtin.template`` task's engine: ``trim_blocks``, each
    file's ``#jinja2:`` header, Ansible's filters)."""

    def __init__(self, loader, templar, task_vars=None, marker=None):
        self.lookup = lookup_loader.get("template", loader=loader, templar=templar)
        self.variables = dict((k, (task_vars or {})[k]) for k in VARIABLES if k in (task_vars or {}))
        self.marker = marker or MARKER

    @classmethod
    def for_action(cls, action, task_vars, marker=None):
        """The renderer of an action plugin's run."""
        return cls(action._loader, action._templar, task_vars, marker)

    def render(self, key, site, secret_env=None, job=None):
        """The text of template *key* (socket, service, env, or with *job*, one
        of ``site['jobs']``, job_service or job_timer) for *site*."""
        extra = dict(site=site, job=job, _onebox_marker=self.marker)
        if key == "env":
            extra["secret_env"] = secret_env or {}
        path = os.path.join(TEMPLATE_DIR, dict(TEMPLATES)[key])
        try:
            out = self.lookup.run([path], variables=self.variables, template_vars=extra)[0]
        except AnsibleError as exc:
            raise AnsibleActionFail("site %s: rendering %s failed: %s" % (site["name"], dict(TEMPLATES)[key],
                                                                          exc.message))
        return out if out.endswith("\n") else out + "\n"

    def render_jobs(self, site):
        """``[{name, service_unit, timer_unit, service, timer}]``: the units of the site's scheduled jobs."""
        return [dict(name=job["name"], service_unit=job["service_unit"], timer_unit=job["timer_unit"],
                     service=self.render("job_service", site, job=job), timer=self.render("job_timer", site, job=job))
                for job in site.get("jobs") or []]


__all__ = ["TEMPLATE_DIR", "TEMPLATES", "SiteRenderer"]
