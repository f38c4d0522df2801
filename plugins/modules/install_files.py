#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: install_files
short_description: Install staged files on the host, keeping a copy of each file they replace
version_added: 0.1.0
description:
  - Copies each O(files[].src) (a file already on the host, for example a rendered and verified unit) to
    O(files[].dest) when their contents differ, through a temporary file and a rename, so C(dest) is always
    either the old or the new file.
  - Before a file is replaced, the old one is copied to O(files[].backup). The result lists every installed file with
    its backup (null when C(dest) did not exist), which is what M(onebox.deploy.rolling_restart) needs to restore
    the previous files when a site is rolled back.
  - Files that are already up to date are left alone and their backups are not touched.
  - Contents never appear in the result, so the module is safe for files holding secrets.
author: onebox.deploy contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Reports which files would change without writing anything.
  diff_mode:
    support: none
    description: Returns no diff.
options:
  files:
    description: The files to install.
    type: list
    elements: dict
    required: true
    suboptions:
      src:
        description: The staged file on the host.
        type: path
        required: true
      dest:
        description: Where it is installed.
        type: path
        required: true
      backup:
        description: Where the replaced C(dest) is kept; its directory is created (mode 0700) when missing.
        type: path
        required: true
      mode:
        description: Mode of C(dest) (and of the backup), as an octal string. Owner and group are root.
        type: str
        default: "0644"
"""

EXAMPLES = r"""
- name: Install the units of blog, keeping the replaced ones
  onebox.deploy.install_files:
    files:
      - {src: /srv/onebox/blog/units/blog.service, dest: /etc/systemd/system/blog.service,
         backup: /srv/onebox/blog/units/previous/blog.service}
  register: installed
"""

RETURN = r"""
installed:
  description:
    - The files that were (or in check mode would be) installed, each with the path of its kept old version
      (null when it is new). The entries fit O(onebox.deploy.rolling_restart#module:units[].restore).
  returned: always
  type: list
  elements: dict
  sample: [{path: /etc/systemd/system/blog.service, backup: /srv/onebox/blog/units/previous/blog.service}]
"""

import filecmp
import os
import shutil

from ansible.module_utils.basic import AnsibleModule


def place(src, dest, mode):
    """Copy src to dest through a temporary file in dest's directory and a rename."""
    tmp = "%s.onebox-%d.tmp" % (dest, os.getpid())
    try:
        shutil.copyfile(src, tmp)
        os.chown(tmp, 0, 0)
        os.chmod(tmp, mode)
        os.rename(tmp, dest)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type="list", elements="dict", required=True, options=dict(
                src=dict(type="path", required=True),
                dest=dict(type="path", required=True),
                backup=dict(type="path", required=True),
                mode=dict(type="str", default="0644"),
            )),
        ),
        supports_check_mode=True,
    )
    installed = []
    for spec in module.params["files"]:
        src, dest, backup = spec["src"], spec["dest"], spec["backup"]
        try:
            mode = int(spec["mode"], 8)
        except ValueError:
            module.fail_json(msg="install_files: mode of %s must be an octal string, got %r" % (dest, spec["mode"]),
                             installed=installed)
        if not os.path.isfile(src):
            module.fail_json(msg="install_files: staged file %s for %s does not exist" % (src, dest),
                             installed=installed)
        exists = os.path.isfile(dest)
        if exists and filecmp.cmp(src, dest, shallow=False):
            continue
        entry = dict(path=dest, backup=backup if exists else None)
        installed.append(entry)
        if module.check_mode:
            continue
        try:
            if exists:
                directory = os.path.dirname(backup)
                if not os.path.isdir(directory):
                    os.makedirs(directory, 0o700)
                place(dest, backup, mode)
            place(src, dest, mode)
        except (IOError, OSError) as exc:
            module.fail_json(msg="install_files: cannot install %s from %s: %s" % (dest, src, exc),
                             installed=installed)
    module.exit_json(changed=bool(installed), installed=installed)


if __name__ == "__main__":
    main()
