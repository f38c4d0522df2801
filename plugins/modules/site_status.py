#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: site_status
short_description: Read what each site of a host runs now, changing nothing
version_added: 0.1.0
description:
  - For each site, the release its C(current) link points at, the state of its socket and service units and of its
    scheduled jobs' timer and service units (one C(systemctl show) call for all), since when the service is active, how often systemd restarted it, its memory,
    its newest deploy, rollback or removal in the audit log, and the answer to one C(/readyz) request.
  - Used by the playbook C(onebox.deploy.status). Nothing on the host changes. A site whose service runs no process
    is not asked for C(/readyz), because a request to its socket would start it.
author: onebox.deploy contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Reads the same in check mode.
  diff_mode:
    support: none
    description: Returns no diff.
options:
  sites:
    description:
      - Normalised sites (C(onebox_site_plan.sites) of the site role's C(validate)); read are C(name), C(version),
        C(site_dir), C(service_units), C(strategy), C(readiness_url) and C(jobs).
    type: list
    elements: dict
    required: true
  audit_log:
    description: The audit log of M(onebox.deploy.audit_log); its last 512 KiB are read.
    type: path
    default: /var/log/onebox/deploy.jsonl
  timeout:
    description: Seconds the C(/readyz) request of each running service may take.
    type: float
    default: 2.0
"""

EXAMPLES = r"""
- name: Read the sites' status
  onebox.deploy.site_status:
    sites: "{{ onebox_site_plan.sites }}"
  register: status
"""

RETURN = r"""
sites:
  description: Per site, in the order given.
  returned: always
  type: list
  elements: dict
  sample:
    - site: blog
      release: 1.0.1
      current: 1.0.1
      units:
        - {unit: blog.socket, active: active, sub: listening, since: "Mon 2026-12-07 06:40:01 UTC", restarts: null,
           memory_bytes: null, main_pid: null}
        - {unit: blog.service, active: active, sub: running, since: "Mon 2026-12-07 06:41:12 UTC", restarts: 0,
           memory_bytes: 12156928, main_pid: 4242}
      since: "Mon 2026-12-07 06:41:12 UTC"
      restarts: 0
      memory_bytes: 12156928
      last_deploy: {time: "2026-12-07T06:41:13Z", action: deploy, site: blog, from_version: 1.0.0, to_version: 1.0.1,
                    outcome: success, by: alice@laptop}
      readyz: {blog.service: {url: "http://127.0.0.1:19001/readyz", result: 200, ms: 1.2}}
      jobs:
        - {unit: blog_nightly.timer, active: active, sub: waiting, since: "Mon 2026-12-07 06:41:12 UTC", restarts: null,
           memory_bytes: null, main_pid: null}
        - {unit: blog_nightly.service, active: inactive, sub: dead, since: "Mon 2026-12-07 03:00:01 UTC", restarts: 0,
           memory_bytes: null, main_pid: 0}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.onebox.deploy.plugins.module_utils.status import read_status
from ansible_collections.onebox.deploy.plugins.module_utils.systemd import SystemdError, Systemctl


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sites=dict(type="list", elements="dict", required=True),
            audit_log=dict(type="path", default="/var/log/onebox/deploy.jsonl"),
            timeout=dict(type="float", default=2.0),
        ),
        supports_check_mode=True,
    )
    sites = module.params["sites"]
    try:
        status = read_status(Systemctl(module), sites, module.params["audit_log"], timeout=module.params["timeout"])
    except SystemdError as exc:
        module.fail_json(msg=exc.msg)
    module.exit_json(changed=False, sites=[status[site["name"]] for site in sites])


if __name__ == "__main__":
    main()
