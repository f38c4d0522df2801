# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that validate the Traefik input, build its dynamic configuration and its unit's sandboxing.
The logic is ``plugin_utils/_traefik.py``'s."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.onebox.deploy.plugins.plugin_utils._traefik import (
    backends,
    gate_config,
    maintenance_ends,
    maintenance_left_out,
    maintenance_socket,
    readiness_services,
    rejoin_urls,
    routers_match,
    servers_match,
    tag_runs,
    static_entrypoints,
    traefik_dynamic,
    traefik_errors,
    traefik_sockets,
    traefik_unit_directives,
    unit_changes,
)


class FilterModule(object):
    def filters(self):
        return {
            "traefik_errors": traefik_errors,
            "traefik_dynamic": traefik_dynamic,
            "traefik_unit_directives": traefik_unit_directives,
            "traefik_routers_match": routers_match,
            "traefik_servers_match": servers_match,
            "traefik_backends": backends,
            "traefik_readiness_services": readiness_services,
            "traefik_sockets": traefik_sockets,
            "traefik_static_entrypoints": static_entrypoints,
            "traefik_gate": gate_config,
            "traefik_unit_changes": unit_changes,
            "traefik_rejoin_urls": rejoin_urls,
            "traefik_maintenance_ends": maintenance_ends,
            "traefik_maintenance_socket": maintenance_socket,
            "traefik_maintenance_left_out": maintenance_left_out,
            "traefik_tag_runs": tag_runs,
        }
