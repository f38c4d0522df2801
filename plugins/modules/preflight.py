#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: preflight
short_description: Check a host for conflicts before onebox sites are deployed
version_added: 0.1.0
description:
  - Read-only checks on the target host that must pass before anything is changed.
  - Fails when a unit file at a path a site needs was not written by this collection
    (a package's unit, or a hand-written one), or when a site's C(listen) or
    C(health_listen) port is already taken by something other than the site itself.
  - Reports, per site, whether its socket and service are already active and which
    release C(current) points to.
author: onebox.deploy contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: The module never changes anything.
  diff_mode:
    support: none
    description: Returns no diff.
options:
  sites:
    description:
      - Sites as produced by the P(onebox.deploy.normalize_sites#filter) filter.
      - Only C(name), C(listen), C(listen_port), C(health_port), C(instances) and C(service_units) are read.
    type: list
    elements: dict
    required: true
  unit_dir:
    description: Directory the site units are written to.
    type: path
    default: /etc/systemd/system
  root:
    description: Directory that holds one directory per site.
    type: path
    default: /srv/onebox
  marker:
    description: Text that every unit file written by this collection contains.
    type: str
    default: "Managed by onebox.deploy"
  sums:
    description:
      - SHA-256 of each site's artifact (site name to hex digest, see P(onebox.deploy.artifact_sums#filter)).
      - A site whose the site's C(version) is already installed with a different recorded checksum is an error,
        unless O(force_release) is set. Releases installed without a recorded checksum are not compared.
      - When the site has no C(current) symlink (no release of it ever served, for example a first install that
        was rolled back), such a release is not an error; its C(release_differs) is V(true) so the role replaces it.
    type: dict
    default: {}
  force_release:
    description: Allow replacing an installed release of the same version with different content.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Check for unit and port conflicts
  onebox.deploy.preflight:
    sites: "{{ _onebox_sites }}"
  register: _onebox_preflight
"""

RETURN = r"""
sites:
  description: Per site state found on the host, keyed by site name.
  returned: always
  type: dict
  sample:
    blog:
      socket_active: true
      service_active: true
      active_units: [blog.service]
      stale_units: []
      current_release: "1.4.2"
      previous_release: "1.4.1"
      releases: [{version: 1.4.1, sha256: 9f86d0..., installed_at: 1795628402.1}]
      release_differs: false
      units_present: true
      unit_files: [blog.socket, blog.service]
errors:
  description: The conflicts found; the module fails when this is not empty.
  returned: always
  type: list
  elements: str
"""

import glob
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.onebox.deploy.plugins.module_utils.releases import (
    list_releases,
    previous_version,
)

VENDOR_UNIT_DIRS = ("/usr/lib/systemd/system", "/lib/systemd/system", "/run/systemd/system",
                    "/usr/local/lib/systemd/system")


def listening_ports():
    """Ports with a TCP socket in LISTEN state, from /proc/net/tcp{,6}."""
    ports = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "0A":
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except (IOError, OSError):
            continue
    return ports


def unit_units(site):
    """Unit files the site owns: its socket and both service styles (a site
    may switch between the restart and the overlap strategy)."""
    return ["%s.socket" % site["name"], "%s.service" % site["name"], "%s@.service" % site["name"]]


def stale_units(module, systemctl, site, unit_dir):
    """Service units of the site that its configuration no longer uses.

    With the restart strategy every ``NAME@*.service`` instance; with overlap
    ``NAME.service`` and instances named after a former health port. Found on
    the host (loaded units and boot-time ``.wants`` links), not computed, so a
    changed ``health_listen`` leaves nothing behind.
    """
    name = site["name"]
    found = set(["%s.service" % name])
    rc, out, err = module.run_command([systemctl, "list-units", "--all", "--plain", "--no-legend", "--full",
                                       "%s@*.service" % name])
    if rc == 0:
        for line in out.splitlines():
            fields = line.split()
            if fields and fields[0].startswith(name + "@") and fields[0].endswith(".service"):
                found.add(fields[0])
    for link in glob.glob(os.path.join(unit_dir, "*.wants", "%s@*.service" % name)):
        found.add(os.path.basename(link))
    current = set(site.get("service_units") or ["%s.service" % name])
    return sorted(found - current)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sites=dict(type="list", elements="dict", required=True),
            unit_dir=dict(type="path", default="/etc/systemd/system"),
            root=dict(type="path", default="/srv/onebox"),
            marker=dict(type="str", default="Managed by onebox.deploy"),
            sums=dict(type="dict", default={}),
            force_release=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    sites = module.params["sites"]
    unit_dir = module.params["unit_dir"]
    marker = module.params["marker"]
    systemctl = module.get_bin_path("systemctl", required=True)
    errors = []
    state = {}
    ports = listening_ports()

    def show(unit, prop):
        rc, out, err = module.run_command([systemctl, "show", "-p", prop, "--value", unit])
        return out.strip() if rc == 0 else ""

    for site in sites:
        name = site["name"]
        info = {"units_present": False, "socket_active": False, "service_active": False,
                "current_release": None, "unit_files": [], "active_units": [], "stale_units": []}
        ours = True
        for unit in unit_units(site):
            path = os.path.join(unit_dir, unit)
            if os.path.lexists(path):
                try:
                    with open(path) as handle:
                        content = handle.read()
                except (IOError, OSError) as exc:
                    content = ""
                    errors.append("site %s: field 'name': cannot read existing unit %s: %s" % (name, path, exc))
                if marker not in content:
                    ours = False
                    errors.append("site %s: field 'name': %s exists and was not written by onebox.deploy; "
                                  "rename the site or remove that unit" % (name, path))
                else:
                    info["units_present"] = True
                    info["unit_files"].append(unit)
            for vendor in VENDOR_UNIT_DIRS:
                vpath = os.path.join(vendor, unit)
                if os.path.lexists(vpath):
                    ours = False
                    errors.append("site %s: field 'name': unit %s already exists at %s (a system unit); "
                                  "choose another site name" % (name, unit, vpath))
                    break
        if ours and info["units_present"]:
            info["socket_active"] = show("%s.socket" % name, "ActiveState") == "active"
            stale = stale_units(module, systemctl, site, unit_dir)
            states = dict((unit, show(unit, "ActiveState")) for unit in list(site.get("service_units") or []) + stale)
            info["active_units"] = [unit for unit, st in states.items() if st in ("active", "reloading", "activating")]
            info["stale_units"] = [unit for unit in stale if unit in info["active_units"]
                                   or show(unit, "UnitFileState") in ("enabled", "enabled-runtime")]
            info["service_active"] = bool(info["active_units"])
            socket_listen = show("%s.socket" % name, "Listen")
        else:
            socket_listen = ""
        current = os.path.join(module.params["root"], name, "current")
        if os.path.islink(current):
            info["current_release"] = os.path.basename(os.readlink(current).rstrip("/"))
        releases = list_releases(os.path.join(module.params["root"], name))
        info["releases"] = releases
        info["previous_release"] = previous_version(releases, info["current_release"])
        info["release_differs"] = False
        wanted = (module.params["sums"] or {}).get(name)
        installed = dict((r["version"], r["sha256"]) for r in releases).get(site.get("version"))
        if wanted and installed and installed != wanted:
            info["release_differs"] = True
            # Without a current symlink no release of this site ever served (a
            # first install that was rolled back): replacing it harms nothing.
            never_served = not os.path.islink(current)
            if not (module.params["force_release"] or never_served):
                errors.append("site %s: field 'version': release %s is already installed with different content "
                              "(installed sha256:%s, artifact sha256:%s); bump the version, or set "
                              "onebox_force_release: true to replace it" % (
                                  name, site.get("version"), installed[:12], wanted[:12]))

        # A port already in use is fine only when this site itself holds it:
        # its socket unit for listen (systemd lists the address), its running
        # service for a separate health port.
        if site["listen_port"] in ports:
            held = info["socket_active"] and (site["listen"] + " " in socket_listen + " "
                                              or ":%d " % site["listen_port"] in socket_listen + " "
                                              or socket_listen.startswith("%d " % site["listen_port"]))
            if not held:
                errors.append("site %s: field 'listen': port %d is already in use on the host by "
                              "something other than %s.socket" % (name, site["listen_port"], name))
        health_ports = [int(i) for i in site.get("instances") or []] or [site["health_port"]]
        for port in health_ports:
            if port != site["listen_port"] and port in ports and not info["service_active"]:
                errors.append("site %s: field 'health_listen': port %d is already in use on the host by "
                              "something other than the site's service" % (name, port))
        state[name] = info

    if errors:
        module.fail_json(msg="preflight found %d problem(s): %s" % (len(errors), "; ".join(errors)),
                         errors=errors, sites=state)
    module.exit_json(changed=False, errors=[], sites=state)


if __name__ == "__main__":
    main()
