#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: site_command
short_description: Run a command once in a site's environment
version_added: 0.1.0
description:
  - Runs O(argv) once as a transient service, C(systemd-run --wait --pipe), with the site's user and group, its
    environment file, its C(current) release as working directory and the sandbox of its service (its
    C(service_directives)), and returns its output and exit status. The module itself fails only when the command
    cannot be started; a command that exits non-zero is RV(exit_status).
  - Used by the playbook C(onebox.deploy.run), under the deploy lock. The transient unit's description names the site,
    never the command, so the journal does not show it.
author: onebox.deploy contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: In check mode nothing runs; RV(exit_status) is null.
  diff_mode:
    support: none
    description: Returns no diff.
options:
  site:
    description:
      - The normalised site (from the C(site_plan) filter); read are C(name), C(user), C(group), C(site_dir), C(env_dir)
        and C(service_directives).
    type: dict
    required: true
  argv:
    description: The command and its arguments; the executable absolute (the plan resolves a relative one in C(current)).
    type: list
    elements: str
    required: true
  secrets:
    description: Values replaced by C(********) in RV(stdout), RV(stderr) and RV(command).
    type: list
    elements: str
    default: []
  command:
    description: The command line as given, returned with the secrets masked, for the audit record.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Migrate the database of blog
  onebox.deploy.site_command:
    site: "{{ onebox_site_plan.selected_sites[0] }}"
    argv: [/srv/onebox/blog/current/bin/blog, migrate]
  register: run
"""

RETURN = r"""
exit_status:
  description: The command's exit status (null in check mode).
  returned: always
  type: int
stdout:
  description: What it wrote to its standard output.
  returned: always
  type: str
stderr:
  description: What it wrote to its standard error.
  returned: always
  type: str
seconds:
  description: How long it ran.
  returned: always
  type: float
release:
  description: The release C(current) pointed at.
  returned: always
  type: str
unit:
  description: The transient unit's name.
  returned: always
  type: str
command:
  description: O(command) with the secrets masked.
  returned: always
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.onebox.deploy.plugins.module_utils.siterun import mask, run_once


def main():
    module = AnsibleModule(
        argument_spec=dict(
            site=dict(type="dict", required=True),
            argv=dict(type="list", elements="str", required=True),
            secrets=dict(type="list", elements="str", default=[], no_log=True),
            command=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    site = module.params["site"]
    secrets = module.params["secrets"]
    command = mask(module.params["command"], secrets)
    current = os.path.join(site["site_dir"], "current")
    if not os.path.islink(current):
        module.fail_json(msg="site %s: field 'name': %s does not exist, the site has no release yet; deploy it first"
                         % (site["name"], current), command=command)
    if module.check_mode:
        module.exit_json(changed=False, exit_status=None, stdout="", stderr="", seconds=0.0, unit="",
                         release=os.path.basename(os.readlink(current).rstrip("/")), command=command)
    result = run_once(module, site, module.params["argv"], secrets)
    module.exit_json(changed=True, command=command, **result)


if __name__ == "__main__":
    main()
