# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that say what a run did: audit records and their lines, what each
host serves, the message of a failed roll, the playbooks' report, a host's status. The logic
is ``plugin_utils/_report.py``'s."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.onebox.deploy.plugins.plugin_utils._report import (
    audit_line,
    audit_records,
    deploy_failure,
    failed_hosts,
    removal_records,
    rollback_data_notes,
    run_record,
    run_report,
    serving,
    serving_report,
    status_report,
)


class FilterModule(object):
    def filters(self):
        return {
            "audit_records": audit_records,
            "audit_line": audit_line,
            "removal_records": removal_records,
            "serving": serving,
            "serving_report": serving_report,
            "deploy_failure": deploy_failure,
            "failed_hosts": failed_hosts,
            "rollback_data_notes": rollback_data_notes,
            "status_report": status_report,
            "run_record": run_record,
            "run_report": run_report,
        }
