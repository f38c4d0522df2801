# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that validate ``onebox_sites`` for Traefik and build its dynamic configuration."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.onebox.deploy.plugins.module_utils.traefik import (
    traefik_dynamic,
    traefik_errors,
)


class FilterModule(object):
    def filters(self):
        return {
            "traefik_errors": traefik_errors,
            "traefik_dynamic": traefik_dynamic,
        }
