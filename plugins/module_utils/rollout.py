# -*- coding: utf-8 -*-
# Copyright (c) onebox.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run of ``onebox.deploy.rolling_restart``: the parameters checked, the
units planned (check mode) or rolled one at a time under the optional load
probe, the rollback of a unit that did not come ready, and the result and
message. The strategies, the roller and the rollback are ``rolling.py``'s.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.onebox.deploy.plugins.module_utils.readiness import (
    Probe,
    probe_failures,
    validate_url,
)
from ansible_collections.onebox.deploy.plugins.module_utils.rolling import (
    RollFailed,
    Rollback,
    Roller,
    failure_message,
    rollback_message,
)


def parameter_problem(params):
    """Why the module's parameters cannot be used (None when they can)."""
    if not params['units']:
        return 'units must not be empty'
    if params['interval'] <= 0 or params['passes'] < 1 or params['timeout'] < 0 or params['request_timeout'] <= 0:
        return 'interval and request_timeout must be > 0, passes >= 1, timeout >= 0'
    if params['liveness_grace'] < 0:
        return 'liveness_grace must be >= 0'
    for spec in params['units']:
        for key in ('readiness_url', 'liveness_url'):
            problem = validate_url(spec[key], spec['instances'] if spec['strategy'] == 'overlap' else None)
            if problem:
                return 'units[%s].%s: %s' % (spec['name'], key, problem)
    probe = params['probe']
    if probe:
        for url in probe['urls'] or []:
            problem = validate_url(url)
            if problem:
                return 'probe.urls: %s' % problem
        labels = probe['labels']
        if labels is not None and len(labels) != len(probe['urls'] or []):
            return 'probe.labels must name each of probe.urls (%d labels for %d URLs)' % (
                len(labels), len(probe['urls'] or []))
        if probe['request_timeout'] is not None and probe['request_timeout'] <= 0:
            return 'probe.request_timeout must be > 0'
    return None


class RollingRestart(object):
    """The module's run: :meth:`run` exits or fails the module."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.began = time.monotonic()
        self.roller = Roller(module)

    def finish(self, **extra):
        roller = self.roller
        out = dict(changed=roller.changed, results=roller.results, rolled=roller.rolled,
                   duration=round(time.monotonic() - self.began, 3))
        out.update(extra)
        return out

    def run(self):
        module = self.module
        problem = parameter_problem(self.params)
        if problem:
            module.fail_json(msg=problem)
        if module.check_mode:
            self.plan()
        probe = self.start_probe()
        try:
            failure, rollback = self.roll()
        finally:
            summary = probe.stop() if probe is not None else None
        extra = {} if summary is None else dict(probe=summary)
        if failure is not None:
            self.fail(failure, rollback, extra)
        max_failed = (self.params['probe'] or {}).get('max_failed')
        if summary is not None and summary['failed'] > max_failed:
            module.fail_json(msg='probe saw %d failed of %d requests (max_failed=%d): %s' % (
                summary['failed'], summary['sent'], max_failed, probe_failures(summary)), **self.finish(**extra))
        module.exit_json(**self.finish(**extra))

    def plan(self):
        """Check mode: what would happen, with read-only calls only."""
        try:
            for spec in self.params['units']:
                self.roller.plan(spec)
        except RollFailed as exc:
            self.module.fail_json(msg=exc.msg, **self.finish(**exc.extra))
        self.module.exit_json(**self.finish())

    def start_probe(self):
        cfg = self.params['probe']
        if not cfg or not cfg['urls']:
            return None
        timeout = cfg['request_timeout'] if cfg['request_timeout'] is not None else self.params['request_timeout']
        try:
            probe = Probe(cfg['urls'], concurrency=cfg['concurrency'], headers=cfg['headers'],
                          request_timeout=timeout, labels=cfg['labels'])
        except ValueError as exc:
            self.module.fail_json(msg='probe: %s' % exc)
        return probe.start()

    def roll(self):
        """Roll every unit; ``(the RollFailed of the unit that failed, or None,
        the rollback's entries, or None)``."""
        try:
            for spec in self.params['units']:
                self.roller.roll(spec)
        except RollFailed as exc:
            rollback = None
            if self.params['rollback'] != 'none' and self.roller.results:
                rollback = Rollback(self.roller).run(self.params['units'], len(self.roller.results) - 1,
                                                     self.params['rollback'])
            return exc, rollback
        return None, None

    def fail(self, failure, rollback, extra):
        result = self.roller.results[-1] if self.roller.results else {}
        journal = self.roller.journal(failure.unit) if failure.unit else []
        extra.update(failure.extra)
        extra['journal'] = journal
        msg = failure_message(failure, result, journal)
        if rollback is not None:
            extra['rollback'] = rollback
            msg = rollback_message(rollback) + '\n' + msg
        self.module.fail_json(msg=msg, **self.finish(**extra))


__all__ = ['RollingRestart', 'parameter_problem']
