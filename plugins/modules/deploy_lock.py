#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: deploy_lock
short_description: Hold a per-host deploy lock with an owner, a run id and a time to live
version_added: 0.1.0
description:
  - A lock file that serialises deploys on one host. It records who holds it (O(owner)), since when, the run id
    and the time of the last refresh (heartbeat).
  - V(acquired) creates the lock, or fails at once naming the holder when another run holds it. With O(wait) it
    polls for up to that many seconds first.
  - A lock whose last heartbeat is older than O(ttl) seconds belongs to a run that died (interrupted, lost
    connection); it is taken over, the takeover is reported in the result, as a warning and, with O(audit_log),
    as a JSON line there. No manual step is ever needed to clear a lock.
  - V(refreshed) renews the heartbeat of the run's own lock and fails when another run has taken it over.
  - V(released) removes the lock when it belongs to O(run_id); a lock held by another run is left alone.
author: onebox.deploy contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: In check mode the lock is only inspected; an acquire reports whether it would succeed.
  diff_mode:
    support: none
    description: Returns no diff.
options:
  path:
    description: The lock file.
    type: path
    required: true
  state:
    description: What to do with the lock.
    type: str
    choices: [acquired, refreshed, released]
    default: acquired
  owner:
    description: Who deploys, for example C(alice@laptop). Shown to anyone who finds the lock held.
    type: str
    default: unknown
  run_id:
    description:
      - Identifies the run that holds the lock. Generated on V(acquired) when not given (see RV(run_id)); required
        for V(refreshed) and V(released).
    type: str
  ttl:
    description: Seconds after the last heartbeat at which the lock counts as abandoned and may be taken over.
    type: int
    default: 900
  wait:
    description: Seconds to wait for a held lock to be released before failing. V(0) fails at once.
    type: int
    default: 0
  audit_log:
    description: A JSON-lines file that receives a line for every takeover of an abandoned lock.
    type: path
"""

EXAMPLES = r"""
- name: Take the deploy lock of this host
  onebox.deploy.deploy_lock:
    path: /srv/onebox/.deploy.lock
    owner: "{{ lookup('ansible.builtin.env', 'USER') }}@{{ lookup('ansible.builtin.pipe', 'hostname') }}"
    ttl: 900
  register: lock

- name: Release it
  onebox.deploy.deploy_lock:
    path: /srv/onebox/.deploy.lock
    state: released
    run_id: "{{ lock.run_id }}"
"""

RETURN = r"""
run_id:
  description: The run id that holds the lock (generated on acquire when not given).
  returned: always
  type: str
  sample: 5f0c8c7e2a1b4c52
holder:
  description: The lock's content as found before this call (null when there was no lock).
  returned: always
  type: dict
  sample: {owner: alice@laptop, run_id: 5f0c8c7e2a1b4c52, started: "2026-11-25T17:40:02Z", heartbeat: 1795628402.1}
taken_over:
  description: Whether an abandoned lock (heartbeat older than O(ttl)) was taken over.
  returned: always
  type: bool
waited:
  description: Seconds spent waiting for another run's lock.
  returned: always
  type: float
"""

import uuid

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.onebox.deploy.plugins.module_utils.lock import DeployLock, LockError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["acquired", "refreshed", "released"], default="acquired"),
            owner=dict(type="str", default="unknown"),
            run_id=dict(type="str"),
            ttl=dict(type="int", default=900),
            wait=dict(type="int", default=0),
            audit_log=dict(type="path"),
        ),
        required_if=[("state", "refreshed", ["run_id"]), ("state", "released", ["run_id"])],
        supports_check_mode=True,
    )
    params = module.params
    if params["ttl"] < 1 or params["wait"] < 0:
        module.fail_json(msg="deploy lock %s: ttl must be >= 1 and wait >= 0 (ttl=%d, wait=%d)"
                         % (params["path"], params["ttl"], params["wait"]))
    lock = DeployLock(params["path"], params["run_id"] or uuid.uuid4().hex[:16], owner=params["owner"],
                      ttl=params["ttl"], wait=params["wait"], audit_log=params["audit_log"],
                      check_mode=module.check_mode, warn=module.warn)
    step = {"acquired": lock.acquire, "refreshed": lock.refresh, "released": lock.release}[params["state"]]
    try:
        module.exit_json(**step())
    except LockError as exc:
        module.fail_json(msg=exc.msg, **exc.result)


if __name__ == "__main__":
    main()
