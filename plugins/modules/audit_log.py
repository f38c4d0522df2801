#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: audit_log
short_description: Append deploy records to the host's audit log, or read a site's recent ones
version_added: 0.1.0
description:
  - The audit log is a JSON-lines file on the host, one line per site per deploy or rollback (and one per takeover
    of an abandoned deploy lock).
  - With O(entries), appends them (one C(write) per line on a file opened with C(O_APPEND), so concurrent writers
    never interleave within a line). The file is created with mode 0640, owned by root.
  - Without O(entries), returns the last O(limit) records, of O(site) only when given.
author: onebox.deploy contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: In check mode nothing is written; reading works as usual.
  diff_mode:
    support: none
    description: Returns no diff.
options:
  path:
    description: The audit log file.
    type: path
    default: /var/log/onebox/deploy.jsonl
  entries:
    description: Records to append; each gets a C(time) (UTC, ISO 8601) when it has none.
    type: list
    elements: dict
  site:
    description: When reading, only records whose C(site) is this.
    type: str
  limit:
    description: When reading, the number of most recent records to return.
    type: int
    default: 20
"""

EXAMPLES = r"""
- name: Record a deploy
  onebox.deploy.audit_log:
    entries:
      - {action: deploy, site: blog, by: alice@laptop, from_version: 1.4.1, to_version: 1.4.2, outcome: success}

- name: The last 10 deploys of blog
  onebox.deploy.audit_log:
    site: blog
    limit: 10
  register: history
"""

RETURN = r"""
records:
  description: When reading, the matching records, oldest first.
  returned: when O(entries) is not given
  type: list
  elements: dict
  sample:
    - {time: "2026-11-25T17:40:09Z", action: deploy, site: blog, by: alice@laptop, run_id: 5f0c8c7e2a1b4c52,
       from_version: 1.4.1, to_version: 1.4.2, time_to_ready_s: 0.71, outcome: success}
written:
  description: Number of records appended.
  returned: when O(entries) is given
  type: int
"""

import collections
import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.onebox.deploy.plugins.module_utils.files import WriteError, append_json_lines


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/var/log/onebox/deploy.jsonl"),
            entries=dict(type="list", elements="dict"),
            site=dict(type="str"),
            limit=dict(type="int", default=20),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    entries = module.params["entries"]
    if entries is not None:
        if not entries or module.check_mode:
            module.exit_json(changed=bool(entries), written=0)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            append_json_lines(path, [dict(dict(entry), time=entry.get("time") or stamp) for entry in entries])
        except WriteError as exc:
            module.fail_json(msg="audit log %s: cannot append %d record(s): %s" % (path, len(entries), exc))
        module.exit_json(changed=True, written=len(entries))

    if module.params["limit"] < 1:
        module.fail_json(msg="audit log %s: limit must be >= 1, got %d" % (path, module.params["limit"]))
    records = collections.deque(maxlen=module.params["limit"])
    try:
        with open(path, errors="replace") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(record, dict):
                    continue
                if module.params["site"] and record.get("site") != module.params["site"]:
                    continue
                records.append(record)
    except (IOError, OSError) as exc:
        if os.path.exists(path):
            module.fail_json(msg="audit log %s: cannot read: %s" % (path, exc))
    module.exit_json(changed=False, records=list(records))


if __name__ == "__main__":
    main()
