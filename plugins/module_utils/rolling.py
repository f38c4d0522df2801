# -*- coding: utf-8 -*-
# Copyright (c) onebox.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roll of ``onebox.deploy.rolling_restart``: strategies, the roller and
the rollback orchestration.

* :class:`RestartStrategy` and :class:`OverlapStrategy` know how one unit is
  replaced: ``plan()`` (check mode), ``apply()`` (replace and wait for
  readiness), ``revert()`` (after a failed ``apply``: leave the old process
  serving) and ``restore()`` (serve the previous release again after a
  rollback put its files back).
* :class:`Roller` rolls the units in order: switches the release symlink,
  runs a unit's preparation (stale units, socket rebind), applies its strategy
  and points the symlink back when the unit does not come ready.
* :class:`Rollback` puts a failed unit (and with scope ``all`` the ones rolled
  before it) back on its previous release; a site installed for the first
  time is stopped, disabled and removed instead.
* A unit with ``data`` (a rollback that restores a site's data) is not
  restarted but stopped, its data swapped and started, with every start held
  meanwhile (:meth:`Roller.swap_data`, ``snapshots.py``); its rollback swaps
  the data back.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible_collections.onebox.deploy.plugins.module_utils.files import (
    WriteError,
    copy_file,
    point_symlink,
    read_bytes,
    remove_file,
)
from ansible_collections.onebox.deploy.plugins.module_utils.readiness import (
    LivenessTracker,
    describe,
    http_get,
    pid_alive,
    same_address,
    substitute_instance,
    wait_ready,
)
from ansible_collections.onebox.deploy.plugins.module_utils.snapshots import DataError, DataSwap
from ansible_collections.onebox.deploy.plugins.module_utils.systemd import (
    RUNNING_STATES,
    SHOW_PROPS,
    SystemdError,
    Systemctl,
)
from ansible_collections.onebox.deploy.plugins.module_utils.workers import WorkerWatch

#: Seconds a health request may wait while its endpoint has never answered
#: (see :meth:`UnitWatch.poll`): the most a poll adds to noticing that the
#: unit came ready or that its workers keep dying (0.5 s made it 0.6 s a poll).
QUEUED_TIMEOUT = 0.25
#: systemd's own stop timeout, for a unit spec that names none.
DEFAULT_STOP_TIMEOUT = 90.0
#: Seconds beyond a unit's stop timeout to wait for its old main process:
#: systemd has sent SIGKILL by then.
STOP_MARGIN = 5.0
#: What a poll reads of the unit: its state, and where its processes are.
WATCH_PROPS = SHOW_PROPS + ('ControlGroup',)
#: The suffixes of the files systemd reads at daemon-reload: unit files, and
#: ``.conf`` drop-ins in a ``<unit>.d/`` directory.
UNIT_SUFFIXES = ('.service', '.socket', '.timer', '.target', '.path', '.mount', '.automount', '.swap',
                 '.slice', '.scope')


def read_at_reload(path):
    """Whether systemd reads *path* at daemon-reload (a unit file or a drop-in);
    an environment file is read at each start instead, and needs none."""
    name = os.path.basename(path)
    if name.endswith(UNIT_SUFFIXES):
        return True
    return name.endswith('.conf') and os.path.basename(os.path.dirname(path)).endswith('.d')


class RollFailed(SystemdError):
    """A unit did not come ready, or a systemctl command failed."""


def instance_unit(base, instance):
    """``blog`` + ``19001`` -> ``blog@19001.service``."""
    return '%s@%s.service' % (base, instance)


def overlap_base(name):
    base = name
    if base.endswith('.service'):
        base = base[:-len('.service')]
    return base.rstrip('@')


def choose_instance(instances, states):
    """Pick the instance to start and the ones to stop afterwards.

    *states* maps instance -> ActiveState. Returns ``(new, olds)``; *new* is
    None when every instance is running.
    """
    running = [i for i in instances if states.get(i) in RUNNING_STATES]
    if not running:
        return instances[0], []
    first = instances.index(running[0])
    for step in range(1, len(instances) + 1):
        cand = instances[(first + step) % len(instances)]
        if cand not in running:
            return cand, running
    return None, running


def job_runs(props):
    """Whether a scheduled job's oneshot service runs its command: active in
    some way, and past its ``ExecStartPre=``, where a run waits while the
    deploy lock is held (a roll that waited for it would wait for itself)."""
    return props.get('ActiveState') in RUNNING_STATES and props.get('SubState') != 'start-pre'


def new_result(spec):
    return dict(name=spec['name'], strategy=spec['strategy'], status='pending',
                time_to_stop=None, time_to_ready=None, passes=0, polls=0)


class UnitWatch(object):
    """The waits of one unit: first until the old main process is gone
    (:meth:`poll_stop`), then until the new one is ready (:meth:`poll`: unit
    state, worker churn, liveness and readiness), for :func:`wait_ready`.

    The ready timeout and the liveness grace count from the moment the old
    process is gone (:attr:`origin`): a slow drain of the release being
    replaced is not the new release's time.
    """

    def __init__(self, roller, unit, readiness_url, liveness_url, started, old_pid=0, grace=None):
        self.roller = roller
        self.unit = unit
        self.readiness_url = readiness_url
        self.liveness_url = liveness_url
        self.started = started
        self.old_pid = old_pid
        self.old_gone = not old_pid
        self.origin = None if old_pid else started
        self.time_to_stop = None
        self.seen_started = False
        self.nrestarts_floor = None
        self.failed_polls = 0
        self.liveness = LivenessTracker(grace=roller.liveness_grace if grace is None else grace)
        self.readiness_last = None
        self.answered = False
        self.ready_seen = False
        self.state = {}
        self.workers = WorkerWatch()
        # liveness and readiness on one address: a request the address did
        # not answer need not be sent twice
        self.one_address = bool(liveness_url) and same_address(liveness_url, readiness_url)

    def poll_stop(self, remaining):
        """Ok once the old main process is gone; fails fast on a unit that fails meanwhile."""
        if pid_alive(self.old_pid):
            self.state = self.roller.show(self.unit)
            return False, self._state_failure()
        self.old_gone = True
        self.origin = self.roller.clock()
        self.time_to_stop = round(self.origin - self.started, 3)
        return True, None

    def poll(self, remaining):
        roller = self.roller
        self.state = roller.show(self.unit, WATCH_PROPS)
        self.workers.update(self.state.get('ControlGroup'), self.state.get('MainPID'))
        failure = self._state_failure()
        if failure:
            return False, failure
        active = self.state.get('ActiveState')
        sub = self.state.get('SubState')
        if self.seen_started and (active == 'inactive' or sub in ('dead', 'exited')):
            # the process it started is gone (Type=exec: exited right after exec)
            return False, 'unit stopped (ActiveState=%s, SubState=%s) before it became ready' % (active, sub)
        if active in ('activating', 'active', 'reloading'):
            self.seen_started = True
        exits, crash_loop = self.workers.count()
        if crash_loop and not self.ready_seen:
            return False, ('its workers keep dying: %d processes forked by main process %s exited before it came '
                           'ready (a crash loop the unit state does not show)' % (exits, self.state.get('MainPID')))
        # Until the endpoint answers at all, a request that gets no answer
        # soon is queued (on the public socket no process accepts yet) or
        # refused: waiting longer for it tells nothing the next poll does not.
        limit = roller.request_timeout if self.answered else min(roller.request_timeout, QUEUED_TIMEOUT)
        req_timeout = max(0.05, min(limit, remaining))
        live = None
        if self.liveness_url:
            live = http_get(self.liveness_url, timeout=req_timeout)[0]
            self.answered = self.answered or isinstance(live, int)
            # A request cut short by the wait's own deadline says nothing of the
            # endpoint (below, the same for readiness): it neither counts as a
            # failure nor replaces the last answer reported.
            if isinstance(live, int) or req_timeout >= limit or self.liveness.last is None:
                dead = self.liveness.update(live, elapsed=roller.clock() - self.origin)
                if dead:
                    return False, dead
        if self.one_address and live is not None and not isinstance(live, int):
            result = live
        else:
            result = http_get(self.readiness_url, timeout=req_timeout)[0]
            self.answered = self.answered or isinstance(result, int)
        # A request cut short by the wait's own deadline says nothing of the
        # endpoint: the last answer it gave stays the one reported.
        if isinstance(result, int) or req_timeout >= limit or self.readiness_last is None:
            self.readiness_last = result
        ok = result == 200 and active in ('active', 'reloading')
        self.ready_seen = self.ready_seen or ok
        return ok, None

    def _state_failure(self):
        state = self.state
        try:
            nrestarts = int(state.get('NRestarts') or 0)
        except ValueError:
            nrestarts = 0
        # NRestarts may be reset by the manual restart: compare with the lowest value seen
        if self.nrestarts_floor is None or nrestarts < self.nrestarts_floor:
            self.nrestarts_floor = nrestarts
        # a restart job whose stop half ended badly shows "failed" for a moment
        # before the start half runs: only believe it on two polls in a row
        if state.get('ActiveState') == 'failed':
            self.failed_polls += 1
            if self.failed_polls >= 2:
                return 'unit entered the failed state (SubState=%s, Result=%s)' % (
                    state.get('SubState'), state.get('Result'))
        else:
            self.failed_polls = 0
        if state.get('SubState') == 'auto-restart':
            return 'unit is crash-looping (SubState=auto-restart, NRestarts=%d)' % nrestarts
        if nrestarts > self.nrestarts_floor:
            return 'unit is crash-looping (systemd restarted it automatically, NRestarts %d -> %d)' % (
                self.nrestarts_floor, nrestarts)
        return None


def never_served(result):
    """A unit given up on as crashed (failed, crash-looping, workers dying,
    exited) whose health endpoint never answered a request: nothing of it
    serves, so it is killed (SIGKILL) rather than stopped with a drain, which a
    server in a crash loop may never finish (gunicorn 20.1 then waits out its
    graceful timeout)."""
    return result.get('status') == 'failed' and result.get('answered') is False


class Strategy(object):
    """How one unit spec is replaced; subclasses implement the four steps."""

    name = None

    def __init__(self, roller, spec):
        self.roller = roller
        self.spec = spec

    def service_units(self):
        """Every service unit this spec manages (for stop/disable)."""
        raise NotImplementedError

    def plan(self, result):
        """Check mode: fill *result* with what :meth:`apply` would do (read-only calls only)."""
        raise NotImplementedError

    def apply(self, result):
        """Replace the running process and wait until the new one is ready; raises RollFailed."""
        raise NotImplementedError

    def revert(self, result, exc):
        """After :meth:`apply` failed: leave what served before serving; amend ``exc.msg``."""

    def restore(self, result, failed_here):
        """After a rollback put the previous files back: serve the previous release and wait for it."""
        raise NotImplementedError


class RestartStrategy(Strategy):
    """``systemctl restart --no-block`` the one service; the socket keeps accepting meanwhile."""

    name = 'restart'

    def service_units(self):
        return [self.spec['name']]

    def plan(self, result):
        result['unit'] = self.spec['name']

    def apply(self, result, restart=None):
        roller = self.roller
        unit = self.spec['name']
        result['unit'] = unit
        before = roller.show(unit)
        roller.require_loaded(unit, before)
        try:
            old_pid = int(before.get('MainPID') or 0)
        except ValueError:
            old_pid = 0
        started = roller.clock()
        if self.spec['restart'] if restart is None else restart:
            roller.mutate('restart', unit, no_block=True)
        else:
            old_pid = 0
        roller.wait(self.spec, unit, None, started, old_pid, result)

    def restore(self, result, failed_here):
        self.apply(result, restart=True)

    def start(self, result):
        """Start the unit after :meth:`Roller.kill_now` took it down (a
        connection may have started it through its socket meanwhile: then
        this start joins that one) and wait until it is ready."""
        unit = self.spec['name']
        result['unit'] = unit
        started = self.roller.clock()
        self.roller.mutate('start', unit, no_block=True)
        self.roller.wait(self.spec, unit, None, started, 0, result)


class OverlapStrategy(Strategy):
    """Start the inactive instance next to the running one (both share the
    socket), wait until it is ready, then stop the old one(s)."""

    name = 'overlap'

    def __init__(self, roller, spec):
        super(OverlapStrategy, self).__init__(roller, spec)
        self.base = overlap_base(spec['name'])
        self.instances = list(spec['instances'])

    def unit(self, instance):
        return instance_unit(self.base, instance)

    def service_units(self):
        return [self.unit(i) for i in self.instances]

    def states(self, require=True):
        states = {}
        for inst in self.instances:
            props = self.roller.show(self.unit(inst))
            if require:
                self.roller.require_loaded(self.unit(inst), props)
            states[inst] = props.get('ActiveState')
        return states

    def plan(self, result):
        new, olds = choose_instance(self.instances, self.states(require=False))
        if self.spec['restart']:
            result.update(unit=self.unit(new) if new else None, instance=new, old_instances=olds)
        else:
            result.update(instance=olds[0] if olds else None, old_instances=[])

    def wait_running(self, result):
        """Only wait until the running instance is ready (``restart: false``)."""
        states = self.states()
        _new, olds = choose_instance(self.instances, states)
        if not olds:
            raise RollFailed('no instance of %s is running (states: %s)' % (self.base, states), unit=self.spec['name'])
        result['instance'] = olds[0]
        result['old_instances'] = []
        self.roller.wait(self.spec, self.unit(olds[0]), olds[0], self.roller.clock(), 0, result)

    def apply(self, result):
        if not self.instances:
            raise RollFailed('overlap strategy needs at least one instance', unit=self.spec['name'])
        if not self.spec['restart']:
            self.wait_running(result)
            return
        roller = self.roller
        new, olds = choose_instance(self.instances, self.states())
        result['old_instances'] = olds
        if new is None:
            raise RollFailed('all instances of %s are running (%s); refusing to start another one'
                             % (self.base, ', '.join(self.instances)), unit=self.spec['name'])
        result['instance'] = new
        new_unit = self.unit(new)
        started = roller.clock()
        try:
            roller.mutate('start', new_unit, no_block=True)
            roller.wait(self.spec, new_unit, new, started, 0, result)
        except RollFailed as exc:
            self.revert(result, exc)
            raise
        stop_start = roller.clock()
        for old in olds:
            try:
                roller.mutate('stop', self.unit(old))
            except RollFailed as exc:
                result['status'] = 'failed'
                result['reason'] = exc.msg
                exc.msg = '%s is ready but stopping the old instance failed: %s' % (new_unit, exc.msg)
                raise
        result['time_to_stop'] = round(roller.clock() - stop_start, 3) if olds else None

    def revert(self, result, exc):
        # never leave two instances running: drop the new one, keep the old
        if result.get('status') == 'pending':
            result['status'] = 'failed'
        result.setdefault('reason', exc.msg)
        new_unit = self.unit(result['instance'])
        try:
            if never_served(result):
                self.roller.kill_now(new_unit)
            else:
                self.roller.mutate('stop', new_unit)
            exc.msg += '; stopped %s' % new_unit
        except RollFailed as stop_exc:
            exc.msg += '; stopping %s failed too: %s' % (new_unit, stop_exc.msg)
        olds = result.get('old_instances') or []
        if olds:
            exc.msg += ', left %s running' % ', '.join(self.unit(o) for o in olds)

    def restore(self, result, failed_here):
        if failed_here:
            # the new instance was stopped again; the old one serves
            self.wait_running(result)
        else:
            # start the instance that is not running (now on the previous release), stop the other
            self.apply(result)


STRATEGIES = {'restart': RestartStrategy, 'overlap': OverlapStrategy}


class Roller(object):
    """Rolls unit specs (``rolling_restart``'s ``units``) one at a time."""

    def __init__(self, module, clock=time.monotonic):
        self.module = module
        self.clock = clock
        params = module.params
        self.interval = params['interval']
        self.passes = params['passes']
        self.timeout = params['timeout']
        self.request_timeout = params['request_timeout']
        self.liveness_grace = params['liveness_grace']
        self.systemd = Systemctl(module)
        self._changed = False
        self.results = []
        self.rolled = []
        # id(result) -> the clock when its restart/start command went out
        self.began = {}

    @property
    def changed(self):
        return self._changed or self.systemd.changed

    @changed.setter
    def changed(self, value):
        self._changed = value

    def strategy(self, spec):
        return STRATEGIES[spec['strategy']](self, spec)

    # --- systemd -----------------------------------------------------------
    def show(self, unit, props=SHOW_PROPS):
        try:
            return self.systemd.show(unit, props)
        except SystemdError as exc:
            raise RollFailed(exc.msg, unit=exc.unit, **exc.extra)

    def mutate(self, verb, unit, no_block=False, signal=None):
        try:
            self.systemd.mutate(verb, unit, no_block=no_block, signal=signal)
        except SystemdError as exc:
            raise RollFailed(exc.msg, unit=exc.unit, **exc.extra)

    def journal(self, unit):
        return self.systemd.journal(unit)

    def kill_now(self, unit, timeout=10.0):
        """Take *unit* down at once, without a drain: a stop job (so that
        systemd schedules no automatic restart), SIGKILL to every process of
        the unit, a wait until its main process is gone, its failed state
        reset. For a release that never served (:func:`never_served`). A
        connection that waits on the socket may start the unit again at once:
        that start runs the files the rollback put back."""
        try:
            main = int(self.show(unit).get('MainPID') or 0)
        except ValueError:
            main = 0
        self.mutate('stop', unit, no_block=True)
        self.mutate('kill', unit, signal='SIGKILL')
        deadline = self.clock() + timeout
        while main and pid_alive(main) and self.clock() < deadline:
            time.sleep(self.interval)
        self.mutate('reset-failed', unit)

    def require_loaded(self, unit, state):
        if state.get('LoadState') == 'not-found':
            raise RollFailed('unit %s not found (LoadState=not-found)' % unit, unit=unit)

    # --- waiting -----------------------------------------------------------
    def wait(self, spec, unit, instance, started, old_pid, result):
        """Wait until the old main process *old_pid* (0: none) is gone, within
        the unit's stop timeout, then until the unit is ready, within its
        ready timeout; raises RollFailed."""
        timeout = spec['timeout'] if spec['timeout'] is not None else self.timeout
        self.began.setdefault(id(result), started)
        watch = UnitWatch(self, unit,
                          substitute_instance(spec['readiness_url'], instance),
                          substitute_instance(spec['liveness_url'], instance),
                          started, old_pid, grace=spec.get('liveness_grace'))
        outcome = None
        try:
            if old_pid:
                stop_timeout = spec.get('stop_timeout') or DEFAULT_STOP_TIMEOUT
                outcome = wait_ready(watch.poll_stop, passes=1, interval=self.interval,
                                     timeout=stop_timeout + STOP_MARGIN, clock=self.clock)
                if outcome.status == 'timeout':
                    outcome.reason = 'old main process %d still runs %gs after the restart' % (
                        old_pid, stop_timeout + STOP_MARGIN)
            if outcome is None or outcome.ready:
                outcome = wait_ready(watch.poll, passes=self.passes, interval=self.interval, timeout=timeout,
                                     clock=self.clock)
        finally:
            watch.workers.stop()
        result.update(
            unit=unit,
            answered=watch.answered,
            passes=outcome.passes,
            polls=outcome.polls,
            readiness=watch.readiness_last,
            liveness=watch.liveness.last,
            state=dict((k, v) for k, v in watch.state.items() if k not in ('LoadState', 'ControlGroup')),
        )
        if spec['strategy'] == 'restart':
            result['time_to_stop'] = watch.time_to_stop
        if outcome.ready:
            result['status'] = 'ready'
            result['time_to_ready'] = round(self.clock() - started, 3)
            return
        result['status'] = 'failed' if outcome.status == 'aborted' else 'timeout'
        result['elapsed'] = round(self.clock() - started, 3)
        result['reason'] = outcome.reason
        raise RollFailed(outcome.reason, unit=unit)

    # --- the release symlink -------------------------------------------------
    def link_plan(self, spec, check=False):
        """``dict(path, from, to, changed)`` for a unit with ``link``, else None.

        In check mode the target may not exist yet (the release it names is
        only unpacked by a real run).
        """
        path = spec['link']
        if not path:
            return None
        target = spec['link_target']
        if not check and not os.path.isdir(target):
            raise RollFailed('%s: link_target %s is not a directory' % (spec['name'], target), unit=None)
        current = os.readlink(path) if os.path.islink(path) else None
        if current is None and os.path.lexists(path):
            raise RollFailed('%s: link %s exists and is not a symlink' % (spec['name'], path), unit=None)
        same = current is not None and os.path.normpath(current) == os.path.normpath(target)
        return {'path': path, 'from': current, 'to': target, 'changed': not same, 'reverted': False}

    def point(self, path, target):
        try:
            point_symlink(path, target)
        except WriteError as exc:
            raise RollFailed(str(exc), unit=None)
        self.changed = True

    # --- one unit ------------------------------------------------------------
    def prepare(self, spec, strategy):
        """Before the unit is replaced: stop the service units the site no longer
        uses (a strategy switch), and rebind a socket whose settings changed
        (its services stop first; connections wait for the new process)."""
        for unit in spec.get('stop_units') or []:
            # Its unit file may be gone already (site_files removed it): only a loaded, running unit is stopped.
            if self.show(unit).get('ActiveState') in RUNNING_STATES:
                self.mutate('stop', unit)
        if spec.get('restart_socket') and spec.get('socket'):
            for unit in strategy.service_units():
                self.mutate('stop', unit)
            self.mutate('restart', spec['socket'])

    def swap_data(self, spec, strategy, result, undo=None, kill=False):
        """Restore a site's data (the unit's ``data``): with every start of
        its service held, stop it (*kill*: take it down at once), swap its
        data files for the snapshot's (with *undo*, the result of that swap:
        put the files it moved aside back), then start it and wait until it is
        ready; raises RollFailed."""
        swap = DataSwap(self.systemd, spec['data'], flock=self.module.get_bin_path('flock', required=True))
        try:
            if not undo:
                swap.check()   # a snapshot that cannot be restored never stops the site
            with swap.held():
                for unit in strategy.service_units():
                    if kill:
                        self.kill_now(unit)
                    else:
                        self.mutate('stop', unit)
                self.changed = True
                if undo:
                    result['data_undone'] = swap.undo(undo)
                else:
                    result['data'] = swap.apply()
        except RollFailed:
            raise
        except (DataError, WriteError, OSError, SystemdError) as exc:
            raise RollFailed('%s: data: %s' % (spec['name'], exc), unit=spec['name'])
        if strategy.name == 'restart':
            strategy.start(result)
        else:
            strategy.apply(result)

    def wait_jobs(self, spec, result):
        """Wait until no scheduled job of the site runs (``spec['jobs']``),
        before its release switches: a run ends on the release it started
        with and is never stopped. Each job gets its timeout plus the site's
        stop timeout and :data:`STOP_MARGIN` (systemd has killed it by then);
        one that still runs fails the roll before anything of the site
        changed. The timer starts no run of a job that runs already, so a job
        never overlaps itself; a run the timer starts during the deploy waits
        in its ``ExecStartPre=`` until the deploy lock is released
        (:func:`job_runs` leaves it out), then runs the release it finds."""
        jobs = spec.get('jobs') or []
        if not jobs:
            return
        began = self.clock()
        stop = (spec.get('stop_timeout') or DEFAULT_STOP_TIMEOUT) + STOP_MARGIN
        deadline = dict((job['unit'], began + job['timeout'] + stop) for job in jobs)
        waited = {}
        while True:
            running = [u for u in sorted(deadline) if job_runs(self.show(u, ('ActiveState', 'SubState')))]
            now = self.clock()
            for unit in running:
                waited[unit] = None
            for unit in waited:
                if unit not in running and waited[unit] is None:
                    waited[unit] = round(now - began, 3)  # seen ended: the time this roll waited for it
            if not running:
                break
            late = [u for u in running if now >= deadline[u]]
            if late:
                result['jobs_waited'] = dict((u, round(now - began, 3) if w is None else w) for u, w in waited.items())
                raise RollFailed('%s: job %s still runs after %gs; the site was not switched to its new release' % (
                    spec['name'], ', '.join(late), round(now - began, 1)), unit=late[0])
            time.sleep(max(self.interval, 0.2))
        if waited:
            result['jobs_waited'] = waited

    def roll(self, spec):
        result = new_result(spec)
        self.results.append(result)
        strategy = self.strategy(spec)
        link = None
        try:
            self.wait_jobs(spec, result)
            link = self.link_plan(spec)
            if link is not None:
                result['link'] = link
                if link['changed']:
                    self.point(link['path'], link['to'])
            self.prepare(spec, strategy)
            if spec.get('data'):
                self.swap_data(spec, strategy, result)
            else:
                strategy.apply(result)
        except RollFailed as exc:
            if result['status'] == 'pending':
                result['status'] = 'failed'
                result['reason'] = exc.msg
            if link is not None and link['changed'] and link['from'] is not None:
                try:
                    self.point(link['path'], link['from'])
                    link['reverted'] = True
                    exc.msg += '; %s points back to %s' % (link['path'], link['from'])
                except RollFailed as back:
                    exc.msg += '; pointing %s back failed too: %s' % (link['path'], back.msg)
            raise
        self.rolled.append(spec['name'])

    def plan(self, spec):
        """Check mode: what would happen, using read-only systemctl calls only."""
        result = dict(name=spec['name'], strategy=spec['strategy'],
                      status='would_restart' if spec['restart'] else 'would_wait')
        self.strategy(spec).plan(result)
        link = self.link_plan(spec, check=True)
        if link is not None:
            result['link'] = link
            if link['changed']:
                self.changed = True
        if spec['restart']:
            self.changed = True
        self.results.append(result)


class Rollback(object):
    """Puts units back on their previous release after a failed roll."""

    def __init__(self, roller):
        self.roller = roller

    def restore_files(self, spec):
        restored = []
        for entry in spec.get('restore') or []:
            path, backup = entry['path'], entry.get('backup')
            try:
                if backup:
                    if read_bytes(backup) is None:
                        raise WriteError('backup %s is missing' % backup)
                    copy_file(backup, path, mode=os.stat(backup).st_mode & 0o7777)
                elif not remove_file(path):
                    continue
            except (WriteError, IOError, OSError) as exc:
                raise RollFailed('cannot restore %s from %s: %s' % (path, backup, exc), unit=spec['name'])
            self.roller.changed = True
            restored.append(path)
        return restored

    def retire(self, spec, kill=False):
        """Stop, then disable, the socket and service unit(s) of a fresh site
        (one that had no release serving before this run); returns them. With
        *kill*, its service units are killed first (:func:`never_served`)."""
        services = self.roller.strategy(spec).service_units()
        if kill:
            for unit in services:
                if self.roller.show(unit).get('ActiveState') in RUNNING_STATES:
                    self.roller.kill_now(unit)
        units = ([spec['socket']] if spec.get('socket') else []) + services
        for verb in ('stop', 'disable'):
            for unit in units:   # the socket first, so no connection starts the service again
                self.roller.mutate(verb, unit)
        return units

    def unlink_fresh(self, spec):
        """Remove the ``link`` of a fresh site when it points at its new release."""
        path, target = spec.get('link'), spec.get('link_target')
        if not path or not os.path.islink(path):
            return None
        if os.path.normpath(os.readlink(path)) != os.path.normpath(target):
            return None
        try:
            os.unlink(path)
        except OSError as exc:
            raise RollFailed('cannot remove %s: %s' % (path, exc), unit=None)
        self.roller.changed = True
        return path

    def run(self, units, failed_index, scope):
        """Put the failed unit (and with scope ``all`` the ones rolled before
        it) back on its previous release; returns one entry per unit.

        A unit marked ``fresh`` has no previous release: it is stopped and
        disabled (with its socket) before its files are removed, and its
        ``link`` is removed afterwards (status ``removed``).
        """
        roller = self.roller
        rolled_back = [(units[failed_index], roller.results[failed_index])]
        if scope == 'all':
            rolled_back += [(units[i], roller.results[i]) for i in range(failed_index - 1, -1, -1)]
        entries = []
        restored = {}
        removed = []
        # Files first, for every unit whose new files are installed but whose
        # new release does not serve: the failed one, the untouched ones after
        # it and, with scope all, the rolled ones. One daemon-reload for all.
        reload_needed = False
        for spec in [pair[0] for pair in rolled_back] + units[failed_index + 1:]:
            stopped = None
            if spec.get('fresh'):
                try:
                    stopped = self.retire(spec, kill=spec is units[failed_index]
                                          and never_served(roller.results[failed_index]))
                except RollFailed as exc:
                    # its files stay, so what still runs keeps a unit file
                    restored[spec['name']] = []
                    entries.append(dict(name=spec['name'], status='failed', reason=exc.msg, restored=[]))
                    continue
            try:
                restored[spec['name']] = self.restore_files(spec)
            except RollFailed as exc:
                restored[spec['name']] = []
                entries.append(dict(name=spec['name'], status='failed', reason=exc.msg, restored=[]))
                stopped = None
            # systemd rereads unit files at a daemon-reload, which takes seconds on a
            # loaded host; an environment file is read at the start anyway
            reload_needed = reload_needed or any(read_at_reload(p) for p in restored[spec['name']])
            if stopped is not None:
                entry = dict(name=spec['name'], status='removed', version=None, time_to_ready=None,
                             restored=restored[spec['name']], stopped=stopped, link_removed=None,
                             release=spec.get('link_target'),
                             put_back=[e['path'] for e in spec.get('restore') or []
                                       if e.get('backup') and e['path'] in restored[spec['name']]])
                entries.append(entry)
                removed.append((spec, entry))
        reload_failed = None
        if reload_needed:
            try:
                roller.systemd.daemon_reload()
            except SystemdError as exc:
                reload_failed = dict(name='daemon-reload', status='failed', reason=exc.msg)
        for spec, entry in removed:
            try:
                entry['link_removed'] = self.unlink_fresh(spec)
            except RollFailed as exc:
                entry.update(status='failed', reason=exc.msg)
        if reload_failed is not None:
            entries.append(reload_failed)
            return entries
        for spec, result in rolled_back:
            if any(e['name'] == spec['name'] for e in entries):
                continue
            entries.append(self.restart_previous(spec, result, restored.get(spec['name'], []),
                                                 failed_here=result is roller.results[failed_index]))
        return entries

    def still_runs_never_served(self, unit, result):
        """The failed release never served (:func:`never_served`) and its main
        process is the one that still runs: not gone already, and not replaced
        by a start of systemd's own (``Restart=``) with the files put back."""
        if not never_served(result):
            return False
        try:
            failed_pid = int((result.get('state') or {}).get('MainPID') or 0)
            now = int(self.roller.show(unit).get('MainPID') or 0)
        except ValueError:
            return False
        return bool(failed_pid) and now == failed_pid and pid_alive(failed_pid)

    def restart_previous(self, spec, result, restored, failed_here):
        entry = dict(name=spec['name'], status='pending', version=None, time_to_ready=None, restored=restored)
        link = result.get('link')
        if link is not None and link['changed']:
            if link['from'] is None:
                entry.update(status='skipped', reason='no previous release: %s pointed nowhere before' % link['path'])
                return entry
            if not link['reverted']:
                try:
                    self.roller.point(link['path'], link['from'])
                    link['reverted'] = True
                except RollFailed as exc:
                    entry.update(status='failed', reason=exc.msg)
                    return entry
            entry['version'] = os.path.basename(link['from'].rstrip('/'))
        elif link is not None:
            entry['version'] = os.path.basename(link['to'].rstrip('/'))
        attempt = new_result(spec)
        try:
            strategy = self.roller.strategy(dict(spec, restart=True))
            if spec.get('data') and result.get('data'):
                # the data this roll restored goes aside; the files it replaced come back
                self.roller.swap_data(spec, strategy, attempt, undo=result['data'],
                                      kill=failed_here and self.still_runs_never_served(spec['name'], result))
                entry['data'] = attempt.get('data_undone')
            elif failed_here and spec['strategy'] == 'restart' and self.still_runs_never_served(spec['name'], result):
                self.roller.kill_now(spec['name'])
                entry['killed'] = True
                strategy.start(attempt)
            else:
                strategy.restore(attempt, failed_here)
        except RollFailed as exc:
            entry.update(status=attempt['status'] if attempt['status'] != 'pending' else 'failed', reason=exc.msg)
            return entry
        entry.update(status='ready', time_to_stop=attempt.get('time_to_stop'), time_to_ready=attempt['time_to_ready'])
        began = self.roller.began.get(id(result))
        if began is not None:
            # what a request that arrived as the failed release took over waited
            entry['time_to_recover'] = round(self.roller.clock() - began, 3)
        return entry


def failure_message(exc, result, journal):
    parts = ['%s did not become ready: %s' % (exc.unit or result.get('name'), exc.msg)]
    if 'readiness' in result:
        parts.append('readiness last=%s (polls=%s, passes=%s)' % (
            describe(result['readiness']) if result['readiness'] is not None else 'none',
            result.get('polls'), result.get('passes')))
    if result.get('liveness') is not None:
        parts.append('liveness last=%s' % describe(result['liveness']))
    state = result.get('state') or {}
    if state:
        parts.append('ActiveState=%s SubState=%s NRestarts=%s' % (
            state.get('ActiveState'), state.get('SubState'), state.get('NRestarts')))
    msg = '; '.join(parts)
    if journal:
        msg += '\njournal (last %d lines):\n%s' % (len(journal), '\n'.join(journal))
    return msg


def _and(items):
    items = list(items)
    return ', '.join(items[:-1]) + ' and ' + items[-1] if len(items) > 1 else ''.join(items)


def removed_message(entry):
    """What the rollback of a fresh unit (status ``removed``) did."""
    put_back = entry.get('put_back') or []
    gone = [p for p in entry.get('restored') or [] if p not in put_back]
    if entry.get('link_removed'):
        gone.append(entry['link_removed'])
    msg = '%s had no previous release: stopped and disabled %s' % (entry['name'], _and(entry['stopped']))
    if gone:
        msg += ', removed %s' % _and(gone)
    if put_back:
        msg += ', put back %s' % _and(put_back)
    if entry.get('release'):
        msg += '; release %s is kept' % entry['release']
    return msg + '; fix the input and run the deploy again'


def rollback_message(entries):
    parts = []
    for entry in entries:
        if entry['status'] == 'removed':
            parts.append(removed_message(entry))
        elif entry['status'] == 'ready':
            stopping = ''
            if entry.get('killed'):
                stopping = '; the failed release never answered a request and was killed, not drained'
            elif entry.get('time_to_stop') is not None:
                stopping = ', %.2f s of it waiting for the failed release to stop' % entry['time_to_stop']
            parts.append('rolled back %s to %s, which is serving again (ready in %.2f s%s)' % (
                entry['name'], entry.get('version') or 'its previous release', entry['time_to_ready'], stopping))
            if entry.get('data'):
                parts[-1] += ' with its own data files back (the restored ones are kept in %s)' % entry['data']['aside']
        elif entry['status'] == 'skipped':
            parts.append('did not roll back %s: %s' % (entry['name'], entry.get('reason')))
        else:
            parts.append('ROLLBACK OF %s FAILED: %s' % (entry['name'], entry.get('reason')))
    return '; '.join(parts)
