# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Where the site role keeps units and environment files, and how it marks its files."""

    DOCUMENTATION = r"""
options:
  unit_dir:
    description: Directory the site units are installed into (the role's C(onebox_unit_dir)).
    type: path
    default: /etc/systemd/system
  env_dir:
    description:
      - Directory of the sites' environment files, C(<name>.env), mode 0600 (the role's C(onebox_env_dir)).
      - The health port of a site removed in the same run is read from its file there.
    type: path
    default: /etc/onebox
  marker:
    description:
      - Text every unit and environment file written by this collection contains. A unit file at a site's path
        without it was written by someone else and is never touched.
    type: str
    default: Managed by onebox.deploy
"""
