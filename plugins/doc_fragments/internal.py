# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The note of every plugin that is plumbing between the collection's roles and playbooks."""

    DOCUMENTATION = r"""
options: {}
notes:
  - Internal. The collection's roles and playbooks use it among themselves; it is documented because every plugin is,
    but it is not part of the collection's interface and may change in any release.
"""
