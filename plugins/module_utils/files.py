# -*- coding: utf-8 -*-
# Copyright (c) onebox.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where onebox.deploy's modules write files on the host.

Every file is written the same way: a temporary file is created next to the
destination with :func:`tempfile.mkstemp` (mode 0600), its owner and final
mode are set with ``fchown``/``fchmod`` *before the first byte is written*,
the content is written and synced, and the file is renamed over the
destination. So a reader sees the old file or the complete new one, and a
secret never sits in a file with a wider mode, not even the temporary one.

``AnsibleModule.atomic_move`` is not used for this on purpose: when it
creates a new destination it chmods it to ``0666 & ~umask`` after the rename
(0644 under the usual umask), which would leave an environment file with
secrets world-readable until a later chmod.

The same discipline streams a large file (:func:`write_stream`, a restored
database). Also here: appending JSON lines (audit log) and switching a symlink.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile


class WriteError(Exception):
    """A file could not be written; ``str()`` names the path and the cause."""


def _prefix(path):
    return ".%s.onebox-" % os.path.basename(path)


def _write_atomically(path, fill, mode, owner, group, makedirs_mode):
    """Create a temporary file next to ``path`` (0600), set its owner and
    ``mode``, let ``fill(fd)`` write the content, sync it and rename it over
    ``path``."""
    directory = os.path.dirname(path) or "."
    if makedirs_mode is not None and not os.path.isdir(directory):
        os.makedirs(directory, makedirs_mode)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_prefix(path), dir=directory)
    except OSError as exc:
        raise WriteError("cannot create a temporary file next to %s: %s" % (path, exc))
    try:
        try:
            if owner is not None or group is not None:
                os.fchown(fd, -1 if owner is None else owner, -1 if group is None else group)
            os.fchmod(fd, mode)
            fill(fd)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except (OSError, IOError) as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise WriteError("cannot write %s: %s" % (path, exc))
    return True


def write_file(path, content, mode=0o644, owner=0, group=0, makedirs_mode=None):
    """Atomically replace ``path`` with ``content`` (bytes or text).

    ``mode`` and ``owner``/``group`` are applied to the temporary file before
    anything is written to it. With ``makedirs_mode`` a missing parent
    directory is created with that mode. Returns True.
    """
    if not isinstance(content, bytes):
        content = content.encode("utf-8")

    def fill(fd):
        view = memoryview(content)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    return _write_atomically(path, fill, mode, owner, group, makedirs_mode)


def write_stream(path, source_fd, mode=0o644, owner=0, group=0, makedirs_mode=None, chunk=1 << 20):
    """Like :func:`write_file`, with the content read from the open file
    descriptor ``source_fd`` (from its current offset to its end), a chunk at
    a time: a database file is never held in memory. Returns the bytes written."""
    count = [0]

    def fill(fd):
        while True:
            block = os.read(source_fd, chunk)
            if not block:
                return
            view = memoryview(block)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            count[0] += len(block)

    _write_atomically(path, fill, mode, owner, group, makedirs_mode)
    return count[0]


def create_file(path, content, mode=0o644, owner=0, group=0):
    """Create ``path`` with ``content`` only when it does not exist yet,
    atomically (a complete temporary file hard-linked into place); returns
    False when ``path`` already exists."""
    tmp = "%s.%d.new" % (path, os.getpid())
    write_file(tmp, content, mode=mode, owner=owner, group=group)
    try:
        os.link(tmp, path)  # atomic: fails when path exists
        return True
    except OSError:
        if os.path.lexists(path):
            return False
        raise WriteError("cannot create %s" % path)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def read_bytes(path):
    """The content of ``path``, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def file_matches(path, content, mode=None, owner=None, group=None):
    """True when ``path`` holds exactly ``content`` (and, when given, mode and owner)."""
    if not isinstance(content, bytes):
        content = content.encode("utf-8")
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not os.path.isfile(path) or os.path.islink(path):
        return False
    if mode is not None and (st.st_mode & 0o7777) != mode:
        return False
    if owner is not None and st.st_uid != owner:
        return False
    if group is not None and st.st_gid != group:
        return False
    return read_bytes(path) == content


def copy_file(src, dest, mode, owner=0, group=0, makedirs_mode=None):
    """Copy ``src`` to ``dest`` through :func:`write_file` (the backup of a replaced file)."""
    content = read_bytes(src)
    if content is None:
        raise WriteError("cannot read %s" % src)
    return write_file(dest, content, mode=mode, owner=owner, group=group, makedirs_mode=makedirs_mode)


def append_json_lines(path, records, mode=0o640, dir_mode=0o750):
    """Append one JSON line per record to ``path`` (created with ``mode``).

    One ``write()`` for all records, on a file opened with ``O_APPEND``, so
    lines of concurrent writers never interleave.
    """
    if not records:
        return 0
    directory = os.path.dirname(path)
    try:
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, dir_mode)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
        try:
            data = "".join(json.dumps(record, sort_keys=True) + "\n" for record in records)
            os.write(fd, data.encode("utf-8"))
        finally:
            os.close(fd)
    except OSError as exc:
        raise WriteError("cannot append %d record(s) to %s: %s" % (len(records), path, exc))
    return len(records)


def point_symlink(path, target):
    """Make ``path`` a symlink to ``target`` atomically (a new link renamed over the old one)."""
    tmp = "%s.onebox-%d" % (path, os.getpid())
    try:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.rename(tmp, path)
    except OSError as exc:
        try:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        except OSError:
            pass
        raise WriteError("cannot point %s at %s: %s" % (path, target, exc))


def link_target(path):
    """The target of the symlink ``path``, None when it is not a symlink."""
    return os.readlink(path) if os.path.islink(path) else None


def remove_file(path):
    """Remove ``path`` when it exists; True when something was removed."""
    try:
        os.unlink(path)
        return True
    except OSError:
        if os.path.lexists(path):
            raise
        return False


def read_json_object(path):
    """The JSON object in the file *path*; None when it cannot be read or holds no object."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (IOError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def tail_json_records(path, tail):
    """The JSON objects, one a line, in the last *tail* bytes of the file *path* (an
    append-only log), oldest first; a line cut by the tail or not a JSON object is
    skipped; none when the file cannot be read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - tail))
            data = handle.read()
    except (IOError, OSError):
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    if size > tail:
        lines = lines[1:]  # the first line may be cut
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def subdirectories(base):
    """(name, path) of each directory in *base* that is neither hidden nor a symlink, in no order;
    none when *base* cannot be read."""
    try:
        names = os.listdir(base)
    except (IOError, OSError):
        return []
    out = []
    for name in names:
        path = os.path.join(base, name)
        if not name.startswith(".") and not os.path.islink(path) and os.path.isdir(path):
            out.append((name, path))
    return out
