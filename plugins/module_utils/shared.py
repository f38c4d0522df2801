# -*- coding: utf-8 -*-
# Copyright (c) onebox.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one module both sides import: the controller's plugins
(``plugin_utils``) and the modules on the host (``module_utils``).

Constants, which data snapshot a rollback restores (the controller picks it,
the host's pruning keeps it), and the rules an artifact's members follow. Artifacts are
untrusted, so the same rules apply on both sides: the controller refuses an
artifact before anything on a host changes (``plugin_utils/_artifacts.py``),
and the host checks every member again as it unpacks (``artifacts.py``):

* no member with an absolute path or ``..``; no link that points outside the
  release; no device, FIFO or socket;
* set-user-ID, set-group-ID and sticky bits are dropped, and so is write
  permission for group and others (:data:`MODE_MASK`); every unpacked file
  belongs to root (the archive's own owners are never used).

Standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import posixpath

#: The line every file this collection writes carries (units, environment
#: files, Traefik's files); a unit file without it is never touched.
MARKER = "Managed by onebox.deploy"

#: Mode bits kept from an artifact: no set-id/sticky bit, no group/other write.
MODE_MASK = 0o755


def restore_source(snapshots, target):
    """The data snapshot to restore when the release *target* serves again:
    the newest of *snapshots* (oldest first, each with ``from_version``)
    taken when *target* was replaced, so the data as *target* left it; None
    when there is none."""
    found = [s for s in snapshots or [] if s.get("from_version") == target]
    return found[-1] if found else None


class ArtifactError(ValueError):
    """An artifact breaks a rule; ``str()`` says which member and why."""


def norm_member(name):
    """An archive member's name without a leading ``./`` or a trailing ``/``."""
    name = name[2:] if name.startswith("./") else name
    return name.rstrip("/")


def member_kind(member):
    """``dir``, ``symlink``, ``hardlink``, ``file`` or ``other`` for a ``tarfile`` member."""
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.isfile():
        return "file"
    return "other"


def member_problem(name, kind, linkname=None):
    """Why one archive member may not be unpacked (None when it may).

    *kind* is ``file``, ``dir``, ``symlink``, ``hardlink`` or ``other``.
    """
    if name.startswith("/"):
        return "member %r has an absolute path" % name
    if ".." in name.split("/"):
        return "member %r contains '..'" % name
    if kind == "other":
        return "member %r is a device, FIFO or socket" % name
    if kind in ("symlink", "hardlink"):
        target = linkname or ""
        base = posixpath.dirname(name) if kind == "symlink" else ""
        resolved = posixpath.normpath(posixpath.join(base, target))
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            return "link %r points outside the release (%r)" % (name, target)
    return None


def escapes(links, name, max_hops=40):
    """Whether the path *name*, followed inside the release with the release's
    own symlinks (*links*: path -> target), ever leaves the release. Checking
    each link's text alone is not enough: ``s -> .`` and ``e -> s/..`` are
    each harmless, but ``e`` is the directory above the release."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    stack = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if not stack:
                return True
            stack.pop()
            continue
        stack.append(part)
        target = links.get("/".join(stack))
        if target is not None:
            hops += 1
            if hops > max_hops or target.startswith("/"):
                return True
            stack.pop()
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
    return False


__all__ = ["MARKER", "MODE_MASK", "ArtifactError", "escapes", "member_kind", "member_problem", "norm_member",
           "restore_source"]
