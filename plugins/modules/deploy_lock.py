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

import json
import os
import time
import uuid

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.onebox.deploy.plugins.module_utils.files import (
    append_json_lines,
    create_file,
    write_file,
)


def utc(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def read_lock(path):
    """The lock's JSON content, ``{}`` for an unreadable one, None when absent."""
    try:
        with open(path) as handle:
            data = handle.read()
    except (IOError, OSError):
        return None if not os.path.lexists(path) else {}
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def heartbeat(holder):
    """The holder's last heartbeat; 0 (long abandoned) when it cannot be read."""
    try:
        return float((holder or {}).get("heartbeat") or 0)
    except (TypeError, ValueError):
        return 0.0


def describe(holder, now, ttl):
    if not holder:
        return "an unreadable lock file"
    age = now - heartbeat(holder)
    return "%s since %s (run %s; last heartbeat %ds ago, taken over after %ds)" % (
        holder.get("owner", "unknown"), holder.get("started", "?"), holder.get("run_id", "?"), int(age), ttl)


def lock_text(record):
    return json.dumps(record, sort_keys=True) + "\n"


def write_new(path, record):
    """Create the lock file; False when it already exists."""
    return create_file(path, lock_text(record), mode=0o644, owner=None, group=None)


def replace(path, record):
    write_file(path, lock_text(record), mode=0o644, owner=None, group=None)


def audit(path, entry):
    if path:
        append_json_lines(path, [entry])


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
    path = params["path"]
    ttl = params["ttl"]
    if ttl < 1 or params["wait"] < 0:
        module.fail_json(msg="deploy lock %s: ttl must be >= 1 and wait >= 0 (ttl=%d, wait=%d)"
                         % (path, ttl, params["wait"]))
    run_id = params["run_id"] or uuid.uuid4().hex[:16]
    began = time.time()
    result = dict(changed=False, run_id=run_id, holder=None, taken_over=False, waited=0.0)
    directory = os.path.dirname(path)

    if params["state"] == "released":
        holder = read_lock(path)
        result["holder"] = holder
        if holder is not None and holder.get("run_id") == run_id:
            result["changed"] = True
            if not module.check_mode:
                os.unlink(path)
        module.exit_json(**result)

    if params["state"] == "refreshed":
        holder = read_lock(path)
        result["holder"] = holder
        if holder is None and module.check_mode:
            module.exit_json(**result)  # a check-mode acquire wrote nothing
        if holder is None or holder.get("run_id") != run_id:
            module.fail_json(msg="deploy lock %s is no longer held by run %s: it is now held by %s; "
                             "stopping before anything else changes" % (
                                 path, run_id, describe(holder, time.time(), ttl) if holder is not None
                                 else "nobody (the lock file is gone)"), **result)
        if not module.check_mode:
            replace(path, dict(holder, heartbeat=time.time()))
        module.exit_json(**result)

    # acquired
    if not os.path.isdir(directory):
        if module.check_mode:
            result["changed"] = True
            module.exit_json(**result)
        os.makedirs(directory, 0o755)
    deadline = began + params["wait"]
    while True:
        now = time.time()
        holder = read_lock(path)
        result["holder"] = holder
        if holder is not None and holder.get("run_id") == run_id:
            module.exit_json(**result)  # already ours
        record = dict(owner=params["owner"], run_id=run_id, started=utc(now), heartbeat=now, ttl=ttl)
        if holder is None:
            if module.check_mode:
                result["changed"] = True
                module.exit_json(**result)
            if write_new(path, record):
                result["changed"] = True
                result["waited"] = round(now - began, 3)
                module.exit_json(**result)
            continue  # another run created it just now
        age = now - heartbeat(holder)
        if age > ttl:
            if module.check_mode:
                result.update(changed=True, taken_over=True)
                module.exit_json(**result)
            # Move the abandoned lock aside first: of two runs taking over at
            # once only one rename succeeds, the other loops and finds it held.
            stale = "%s.stale-%s" % (path, run_id)
            try:
                os.rename(path, stale)
            except OSError:
                continue
            abandoned = read_lock(stale) or holder
            os.unlink(stale)
            if not write_new(path, record):
                continue
            note = "deploy lock %s: took over the abandoned lock of %s" % (path, describe(abandoned, now, ttl))
            module.warn(note)
            audit(params["audit_log"], dict(
                event="lock_takeover", time=utc(now), by=params["owner"], run_id=run_id,
                previous_owner=abandoned.get("owner"), previous_run_id=abandoned.get("run_id"),
                previous_started=abandoned.get("started"), heartbeat_age_s=round(age, 1)))
            result.update(changed=True, taken_over=True, holder=abandoned, waited=round(now - began, 3))
            module.exit_json(**result)
        if now >= deadline or module.check_mode:
            result["waited"] = round(now - began, 3)
            module.fail_json(msg="deploy lock %s is held by %s; another deploy is running. Wait for it, or set "
                             "onebox_lock_wait to queue behind it" % (path, describe(holder, now, ttl))
                             + (" (waited %ds)" % params["wait"] if params["wait"] else ""), **result)
        time.sleep(min(1.0, max(0.05, deadline - now)))


if __name__ == "__main__":
    main()
