# -*- coding: utf-8 -*-
"""A fake host for the modules that read and change units and accounts
(``site_files``, ``preflight``): ``systemctl``, ``systemd-analyze``,
``useradd``/``userdel``/``groupadd``/``groupdel`` through
``AnsibleModule.run_command``, and the account database the modules read
(``pwd``/``grp``) as a stand-in that the fake tools fill.

Use :func:`fake_accounts` (a context manager) to point the modules' ``pwd``
and ``grp`` at the fake, and ``run_command=host.run_command`` in the
``patches`` of ``module_runner.invoke``.
"""

from __future__ import absolute_import, division, print_function

import contextlib
import fnmatch
import os
import types
from unittest import mock

from ansible_collections.onebox.deploy.plugins.module_utils import host as H
from ansible_collections.onebox.deploy.plugins.module_utils import sitefiles as SF


class FakeHost(object):
    def __init__(self):
        self.calls = []
        self.units = {}                  # unit -> {UnitFileState, ActiveState, LoadState, Listen}
        # systemd-analyze verify: (rc, stdout, stderr), or a function of the list of paths verified
        self.verify_result = (0, "", "")
        self.verified = []               # [{file name: content}] per systemd-analyze verify call
        self.verify_paths = []           # [[path, ...]] per systemd-analyze verify call
        self.calendars = []              # [[expression, ...]] per systemd-analyze calendar call
        self.bad_calendars = ()          # the expressions systemd-analyze calendar rejects
        self.users = {}
        self.groups = {}
        self.next_id = 4242
        self.fail = {}                   # program -> (rc, stdout, stderr)
        # Debian's userdel (USERGROUPS_ENAB yes) removes the user's own group with the user.
        self.userdel_removes_group = True

    # account database ------------------------------------------------------
    def add_user(self, name, gid, home, gecos):
        self.users[name] = types.SimpleNamespace(pw_name=name, pw_uid=self.next_id, pw_gid=gid, pw_dir=home,
                                                 pw_gecos=gecos, pw_shell="/usr/sbin/nologin")
        self.next_id += 1

    def add_group(self, name):
        self.groups[name] = types.SimpleNamespace(gr_name=name, gr_gid=self.next_id, gr_mem=[])
        self.next_id += 1

    def getpwnam(self, name):
        try:
            return self.users[name]
        except KeyError:
            raise KeyError("getpwnam(): name not found: %r" % name)

    def getgrnam(self, name):
        try:
            return self.groups[name]
        except KeyError:
            raise KeyError("getgrnam(): name not found: %r" % name)

    # run_command -------------------------------------------------------------
    def run_command(self, args, **kwargs):
        prog = os.path.basename(args[0])
        argv = [str(a) for a in args[1:]]
        self.calls.append([prog] + argv)
        if prog in self.fail:
            return self.fail[prog]
        if prog == "systemctl":
            return self.systemctl(argv)
        if prog == "systemd-analyze" and argv[0] == "calendar":
            self.calendars.append(argv[2:])
            bad = [e for e in argv[2:] if e in self.bad_calendars]
            return (1, "", "".join("Failed to parse calendar specification '%s': Invalid argument\n" % e
                                   for e in bad)) if bad else (0, "", "")
        if prog == "systemd-analyze":
            contents = {}
            for path in argv[1:]:
                with open(path) as handle:
                    contents[os.path.basename(path)] = handle.read()
            self.verified.append(contents)
            self.verify_paths.append(list(argv[1:]))
            if callable(self.verify_result):
                return self.verify_result(list(argv[1:]))
            return self.verify_result
        if prog == "groupadd":
            self.add_group(argv[-1])
            return 0, "", ""
        if prog == "groupdel":
            del self.groups[argv[-1]]
            return 0, "", ""
        if prog == "useradd":
            opts = dict(zip(argv[:-1], argv[1:]))
            self.add_user(argv[-1], self.groups[opts["--gid"]].gr_gid, opts["--home-dir"], opts["--comment"])
            return 0, "", ""
        if prog == "userdel":
            user = self.users.pop(argv[-1])
            own = self.groups.get(argv[-1])
            if self.userdel_removes_group and own is not None and own.gr_gid == user.pw_gid:
                del self.groups[argv[-1]]
            return 0, "", ""
        raise AssertionError("unexpected command %r" % (args,))

    def state(self, unit):
        return dict(dict(Id=unit, LoadState="not-found", ActiveState="inactive", UnitFileState="", Listen=""),
                    **self.units.get(unit, {}))

    def systemctl(self, argv):
        verb = argv[0]
        units = argv[argv.index("--") + 1:] if "--" in argv else []
        if verb == "show":
            props = [argv[i + 1] for i, a in enumerate(argv) if a == "-p"]
            blocks = []
            for unit in units:
                state = self.state(unit)
                blocks.append("".join("%s=%s\n" % (p, state.get(p, "")) for p in props))
            return 0, "\n".join(blocks), ""
        if verb == "list-units":
            patterns = [a for a in argv[1:] if not a.startswith("-")]
            lines = []
            for unit in sorted(self.units):
                state = self.state(unit)
                if state["LoadState"] != "not-found" and any(fnmatch.fnmatch(unit, p) for p in patterns):
                    lines.append("%s %s %s running fake unit\n" % (unit, state["LoadState"], state["ActiveState"]))
            return 0, "".join(lines), ""
        if verb == "enable":
            for unit in units:
                state = self.units.setdefault(unit, {})
                state.update(LoadState="loaded", UnitFileState="enabled")
                if "--now" in argv:
                    state["ActiveState"] = "active"
            return 0, "", ""
        if verb == "stop":
            for unit in units:
                if unit in self.units:
                    self.units[unit]["ActiveState"] = "inactive"
            return 0, "", ""
        if verb == "disable":
            for unit in units:
                if unit in self.units:
                    self.units[unit]["UnitFileState"] = "disabled"
            return 0, "", ""
        if verb == "daemon-reload":
            return 0, "", ""
        if verb == "reset-failed":
            for unit in units:
                if self.units.get(unit, {}).get("ActiveState") == "failed":
                    self.units[unit]["ActiveState"] = "inactive"
            return 0, "", ""
        raise AssertionError("unexpected systemctl %r" % (argv,))

    def commands(self, prog):
        return [c for c in self.calls if c[0] == prog]

    def systemctl_verbs(self):
        """``[verb, unit...]`` of every systemctl call that changes something, in order."""
        return [[c[1]] + (c[c.index("--") + 1:] if "--" in c else [])
                for c in self.commands("systemctl") if c[1] not in ("show", "list-units")]

    @property
    def mutations(self):
        return [c for c in self.calls if c[0] in ("useradd", "groupadd", "userdel", "groupdel")
                or (c[0] == "systemctl" and c[1] not in ("show", "list-units"))]


@contextlib.contextmanager
def fake_accounts(fake):
    """The modules' ``pwd`` and ``grp`` look up *fake*'s accounts."""
    pwd_stub = types.SimpleNamespace(getpwnam=fake.getpwnam, getpwall=lambda: list(fake.users.values()))
    grp_stub = types.SimpleNamespace(getgrnam=fake.getgrnam, getgrall=lambda: list(fake.groups.values()))
    with mock.patch.object(H, "pwd", pwd_stub), mock.patch.object(H, "grp", grp_stub), \
            mock.patch.object(SF, "pwd", pwd_stub), mock.patch.object(SF, "grp", grp_stub):
        yield fake


def tree(path):
    """Every path under *path*, relative, sorted: what a test's directory holds."""
    out = []
    for top, names, files in os.walk(str(path)):
        for entry in names + files:
            out.append(os.path.relpath(os.path.join(top, entry), str(path)))
    return sorted(out)
