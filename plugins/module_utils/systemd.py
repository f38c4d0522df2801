# -*- coding: utf-8 -*-
# Copyright (c) onebox.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small systemctl/journalctl client shared by the modules.

All commands go through ``module.run_command`` (so unit tests can fake
them); a failing command raises :class:`SystemdError` naming the command.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

SHOW_PROPS = ('LoadState', 'ActiveState', 'SubState', 'MainPID', 'NRestarts', 'Result')
JOURNAL_LINES = 15
#: States in which ``systemctl show`` reports a unit whose process runs.
RUNNING_STATES = ('active', 'reloading', 'activating', 'deactivating')


class SystemdError(Exception):
    """A systemctl command failed."""

    def __init__(self, msg, unit=None, **extra):
        super(SystemdError, self).__init__(msg)
        self.msg = msg
        self.unit = unit
        self.extra = extra


def parse_show(text):
    """Parse ``systemctl show -p A -p B`` output (``Key=value`` lines)."""
    props = {}
    for line in (text or '').splitlines():
        key, sep, value = line.partition('=')
        if sep:
            props[key.strip()] = value.strip()
    return props


def parse_show_many(text):
    """Parse ``systemctl show`` output for several units (blocks separated by
    an empty line, each with an ``Id=`` property) into ``{unit: props}``."""
    units = {}
    block = []
    for line in (text or '').splitlines() + ['']:
        if line.strip():
            block.append(line)
            continue
        if block:
            props = parse_show('\n'.join(block))
            if props.get('Id'):
                units[props['Id']] = props
            block = []
    return units


class Systemctl(object):
    """``systemctl`` on the host through ``module.run_command``."""

    def __init__(self, module):
        self.module = module
        self.systemctl = module.get_bin_path('systemctl', required=True)
        self.journalctl = module.get_bin_path('journalctl')
        self.changed = False

    def run(self, args):
        return self.module.run_command(args)

    def show(self, unit, props=SHOW_PROPS):
        args = [self.systemctl, 'show']
        for prop in props:
            args.extend(['-p', prop])
        args.extend(['--', unit])
        rc, out, err = self.run(args)
        if rc != 0:
            raise SystemdError('systemctl show %s failed' % unit, unit=unit, rc=rc, stdout=out, stderr=err,
                               cmd=' '.join(args))
        return parse_show(out)

    def show_many(self, units, props):
        """``{unit: props}`` for many units in one ``systemctl show`` call."""
        units = list(units)
        if not units:
            return {}
        args = [self.systemctl, 'show']
        for prop in ('Id',) + tuple(p for p in props if p != 'Id'):
            args.extend(['-p', prop])
        args.append('--')
        args.extend(units)
        rc, out, err = self.run(args)
        if rc != 0:
            raise SystemdError('systemctl show failed (rc=%d): %s' % (rc, (err or out).strip()), rc=rc,
                               cmd=' '.join(args))
        found = parse_show_many(out)
        # A unit systemd has never heard of is still listed (LoadState=not-found),
        # with Id set to the name asked for.
        return dict((unit, found.get(unit, {})) for unit in units)

    def mutate(self, verb, *units, **kwargs):
        """``systemctl VERB [--no-block] [--signal=SIG] [--now] [--no-reload] UNIT...``; raises on failure."""
        units = [u for u in units if u]
        if not units:
            return
        args = [self.systemctl, verb]
        if kwargs.get('no_block'):
            args.append('--no-block')
        if kwargs.get('signal'):
            args.append('--signal=%s' % kwargs['signal'])
        if kwargs.get('now'):
            args.append('--now')
        if kwargs.get('no_reload'):
            args.append('--no-reload')
        args.append('--')
        args.extend(units)
        self.changed = True
        rc, out, err = self.run(args)
        if rc != 0:
            raise SystemdError('systemctl %s %s failed (rc=%d): %s' % (verb, ' '.join(units), rc, (err or out).strip()),
                               unit=units[0], rc=rc, stdout=out, stderr=err, cmd=' '.join(args))

    def daemon_reload(self):
        self.changed = True
        rc, out, err = self.run([self.systemctl, 'daemon-reload'])
        if rc != 0:
            raise SystemdError('systemctl daemon-reload failed (rc=%d): %s' % (rc, (err or out).strip()), rc=rc)

    def journal(self, unit, lines=JOURNAL_LINES):
        if not self.journalctl:
            return []
        rc, out, err = self.run([self.journalctl, '-u', unit, '-n', str(lines), '--no-pager', '-o', 'cat'])
        if rc != 0:
            return ['(journalctl rc=%d: %s)' % (rc, (err or out).strip())]
        return out.splitlines()[-lines:]
