# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-host deploy lock of ``onebox.deploy.deploy_lock``: one JSON file
naming its holder (owner, run id, start, heartbeat), created atomically,
renewed before the roll, released by its run, and taken over once its
heartbeat is older than its TTL (the takeover goes to the audit log).

Standard library only; runs on the host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

from ansible_collections.onebox.deploy.plugins.module_utils.files import (
    append_json_lines,
    create_file,
    write_file,
)


class LockError(Exception):
    """The lock cannot be had; ``msg`` says who holds it, ``result`` is the module's result."""

    def __init__(self, msg, result):
        super(LockError, self).__init__(msg)
        self.msg = msg
        self.result = result


def utc(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def read_lock(path):
    """The lock's JSON content, ``{}`` for an unreadable one, None when absent."""
    try:
        with open(path) as handle:
            data = handle.read()
    except (IOError, OSError):
        return None if not os.path.lexists(path) else {}
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def heartbeat(holder):
    """The holder's last heartbeat; 0 (long abandoned) when it cannot be read."""
    try:
        return float((holder or {}).get("heartbeat") or 0)
    except (TypeError, ValueError):
        return 0.0


def describe(holder, now, ttl):
    if not holder:
        return "an unreadable lock file"
    age = now - heartbeat(holder)
    return "%s since %s (run %s; last heartbeat %ds ago, taken over after %ds)" % (
        holder.get("owner", "unknown"), holder.get("started", "?"), holder.get("run_id", "?"), int(age), ttl)


def lock_text(record):
    return json.dumps(record, sort_keys=True) + "\n"


def write_new(path, record):
    """Create the lock file; False when it already exists."""
    return create_file(path, lock_text(record), mode=0o644, owner=None, group=None)


def replace(path, record):
    write_file(path, lock_text(record), mode=0o644, owner=None, group=None)


def audit(path, entry):
    if path:
        append_json_lines(path, [entry])


class DeployLock(object):
    """The lock file *path* for the run *run_id*; :meth:`acquire`,
    :meth:`refresh` and :meth:`release` return the module's result or raise
    :class:`LockError`. *warn* reports a takeover."""

    def __init__(self, path, run_id, owner="unknown", ttl=900, wait=0, audit_log=None, check_mode=False,
                 warn=None):
        self.path = path
        self.run_id = run_id
        self.owner = owner
        self.ttl = ttl
        self.wait = wait
        self.audit_log = audit_log
        self.check_mode = check_mode
        self.warn = warn or (lambda note: None)
        self.result = dict(changed=False, run_id=run_id, holder=None, taken_over=False, waited=0.0)

    def release(self):
        holder = read_lock(self.path)
        self.result["holder"] = holder
        if holder is not None and holder.get("run_id") == self.run_id:
            self.result["changed"] = True
            if not self.check_mode:
                os.unlink(self.path)
        return self.result

    def refresh(self):
        holder = read_lock(self.path)
        self.result["holder"] = holder
        if holder is None and self.check_mode:
            return self.result  # a check-mode acquire wrote nothing
        if holder is None or holder.get("run_id") != self.run_id:
            raise LockError("deploy lock %s is no longer held by run %s: it is now held by %s; stopping before "
                            "anything else changes" % (
                                self.path, self.run_id, describe(holder, time.time(), self.ttl)
                                if holder is not None else "nobody (the lock file is gone)"), self.result)
        if not self.check_mode:
            replace(self.path, dict(holder, heartbeat=time.time()))
        return self.result

    def acquire(self):
        result = self.result
        began = time.time()
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            if self.check_mode:
                result["changed"] = True
                return result
            os.makedirs(directory, 0o755)
        deadline = began + self.wait
        while True:
            now = time.time()
            holder = read_lock(self.path)
            result["holder"] = holder
            if holder is not None and holder.get("run_id") == self.run_id:
                return result  # already ours
            record = dict(owner=self.owner, run_id=self.run_id, started=utc(now), heartbeat=now, ttl=self.ttl)
            if holder is None:
                if self.check_mode:
                    result["changed"] = True
                    return result
                if write_new(self.path, record):
                    result.update(changed=True, waited=round(now - began, 3))
                    return result
                continue  # another run created it just now
            age = now - heartbeat(holder)
            if age > self.ttl:
                if self.check_mode:
                    result.update(changed=True, taken_over=True)
                    return result
                abandoned = self._take_over(holder, record, now, age)
                if abandoned is None:
                    continue
                result.update(changed=True, taken_over=True, holder=abandoned, waited=round(now - began, 3))
                return result
            if now >= deadline or self.check_mode:
                result["waited"] = round(now - began, 3)
                raise LockError("deploy lock %s is held by %s; another deploy is running. Wait for it, or set "
                                "onebox_lock_wait to queue behind it" % (self.path, describe(holder, now, self.ttl))
                                + (" (waited %ds)" % self.wait if self.wait else ""), result)
            time.sleep(min(1.0, max(0.05, deadline - now)))

    def _take_over(self, holder, record, now, age):
        """Replace an abandoned lock with ours; the abandoned holder, or None
        when another run was faster. The abandoned lock is moved aside first:
        of two runs taking over at once only one rename succeeds, the other
        loops and finds it held."""
        stale = "%s.stale-%s" % (self.path, self.run_id)
        try:
            os.rename(self.path, stale)
        except OSError:
            return None
        abandoned = read_lock(stale) or holder
        os.unlink(stale)
        if not write_new(self.path, record):
            return None
        self.warn("deploy lock %s: took over the abandoned lock of %s"
                  % (self.path, describe(abandoned, now, self.ttl)))
        audit(self.audit_log, dict(
            event="lock_takeover", time=utc(now), by=self.owner, run_id=self.run_id,
            previous_owner=abandoned.get("owner"), previous_run_id=abandoned.get("run_id"),
            previous_started=abandoned.get("started"), heartbeat_age_s=round(age, 1)))
        return abandoned


__all__ = ["DeployLock", "LockError", "describe", "heartbeat", "read_lock"]
