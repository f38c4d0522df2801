# -*- coding: utf-8 -*-
"""Unit tests for onebox.deploy.rolling_restart.

Readiness / liveness / probe endpoints are REAL http.server instances on
127.0.0.1 (port 0) whose answers each test scripts. systemctl/journalctl are
faked in-process by patching ``AnsibleModule.run_command``: the fake keeps a
per-unit state machine driven by timed events, so the module sees realistic
``activating -> active`` / ``failed`` / ``auto-restart`` transitions.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.onebox.deploy.plugins.module_utils import readiness
from ansible_collections.onebox.deploy.plugins.module_utils import rolling
from ansible_collections.onebox.deploy.plugins.modules import rolling_restart
from module_runner import invoke


# --------------------------------------------------------------------------
# module invocation
# --------------------------------------------------------------------------

def run_module(args, fake):
    """Run the module in-process; returns (failed, result, seconds)."""
    return invoke(rolling_restart.main, args, patches={
        'run_command': fake.run_command,
        'get_bin_path': lambda self, name, required=False, opt_dirs=None: '/usr/bin/' + name})


# --------------------------------------------------------------------------
# real HTTP endpoints
# --------------------------------------------------------------------------

def seq(*statuses, **kw):
    """Answer statuses[n] for the n-th request (since reset), then ``then``."""
    then = kw.get('then', 200)
    return lambda n: statuses[n] if n < len(statuses) else then


def const(status):
    return lambda n: status


class HealthApp(object):
    """Path -> behaviour(n) with per-path request counters and 200 streaks."""

    def __init__(self):
        self.lock = threading.Lock()
        self.routes = {}
        self.counts = {}
        self.streak = {}   # consecutive 200s currently served per path
        self.total = 0

    def route(self, path, behaviour):
        with self.lock:
            self.routes[path] = behaviour
            self.counts[path] = 0
            self.streak[path] = 0

    def reset(self, path):
        with self.lock:
            self.counts[path] = 0
            self.streak[path] = 0

    def handle(self, path):
        with self.lock:
            self.total += 1
            n = self.counts.get(path, 0)
            self.counts[path] = n + 1
            behaviour = self.routes.get(path)
            status = behaviour(n) if behaviour else 404
            self.streak[path] = self.streak.get(path, 0) + 1 if status == 200 else 0
            return status


class HealthServer(object):
    def __init__(self, app, port=0):
        self.app = app

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def do_GET(self):
                status = app.handle(self.path)
                body = b'ok\n' if status == 200 else b'nope\n'
                self.send_response(status)
                self.send_header('Content-Type', 'text/plain')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(('127.0.0.1', port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.closed = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={'poll_interval': 0.02})
        self.thread.daemon = True
        self.thread.start()

    def url(self, path):
        return 'http://127.0.0.1:%d%s' % (self.port, path)

    def close(self):
        if not self.closed:
            self.closed = True
            self.httpd.shutdown()
            self.httpd.server_close()


@pytest.fixture
def servers():
    made = []

    def make(app=None, port=0):
        srv = HealthServer(app or HealthApp(), port)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.close()


# --------------------------------------------------------------------------
# fake systemd
# --------------------------------------------------------------------------

class FakeUnit(object):
    def __init__(self, name, ActiveState='inactive', SubState='dead', MainPID=0, NRestarts=0,
                 LoadState='loaded'):
        self.name = name
        self.lock = threading.Lock()
        self.props = dict(LoadState=LoadState, ActiveState=ActiveState, SubState=SubState,
                          MainPID=str(MainPID), NRestarts=str(NRestarts), Result='success')
        self.events = []
        self.proc = None

    def at(self, delay, **props):
        """Schedule property changes *delay* seconds from now."""
        with self.lock:
            self.events.append((time.monotonic() + delay, props))
            self.events.sort(key=lambda e: e[0])

    def set(self, **props):
        with self.lock:
            self.events = []
            self.props.update((k, str(v)) for k, v in props.items())

    def current(self):
        with self.lock:
            now = time.monotonic()
            while self.events and self.events[0][0] <= now:
                self.props.update((k, str(v)) for k, v in self.events.pop(0)[1].items())
            return dict(self.props)


class FakeSystemd(object):
    """Stands in for systemctl/journalctl via AnsibleModule.run_command."""

    def __init__(self):
        self.units = {}
        self.calls = []
        self.hooks = {}
        self.journal = {}
        self.fail = {}          # (verb, unit) -> (rc, out, err)
        self.procs = []

    def unit(self, name, **props):
        if name not in self.units or props:
            self.units[name] = FakeUnit(name, **props)
        return self.units[name]

    def with_process(self, name, **props):
        """Unit whose MainPID is a real process (so /proc/<pid> exists)."""
        proc = subprocess.Popen(['sleep', '30'])
        self.procs.append(proc)
        unit = self.unit(name, ActiveState='active', SubState='running', MainPID=proc.pid, **props)
        unit.proc = proc
        return unit

    def on(self, verb, name, hook):
        self.hooks[(verb, name)] = hook

    @property
    def mutations(self):
        return [(c[0], c[-1]) for c in self.calls if c[0] in ('restart', 'start', 'stop')]

    def run_command(self, args, **kwargs):
        prog = os.path.basename(args[0])
        argv = [a for a in args[1:] if a != '--']
        self.calls.append(argv if prog == 'systemctl' else [prog] + argv)
        if prog == 'journalctl':
            name = argv[argv.index('-u') + 1]
            return 0, '\n'.join(self.journal.get(name, [])) + '\n', ''
        verb, name = argv[0], argv[-1]
        if verb == 'daemon-reload':
            return self.fail.get((verb, None), (0, '', ''))
        if (verb, name) in self.fail:
            return self.fail[(verb, name)]
        unit = self.unit(name)
        if verb == 'show':
            props = [argv[i + 1] for i, a in enumerate(argv) if a == '-p']
            cur = unit.current()
            return 0, ''.join('%s=%s\n' % (p, cur.get(p, '')) for p in props), ''
        hook = self.hooks.get((verb, name)) or getattr(self, 'default_' + verb.replace('-', '_'))
        hook(self, unit)
        return 0, '', ''

    # default behaviours (also usable from hooks)
    @staticmethod
    def kill_later(unit, delay):
        proc = unit.proc
        unit.proc = None
        if proc is None:
            return

        def kill():
            proc.kill()
            proc.wait()
        timer = threading.Timer(delay, kill)
        timer.daemon = True
        timer.start()

    def default_restart(self, fake, unit, stop_after=0.05, ready_after=0.1):
        self.kill_later(unit, stop_after)
        unit.set(ActiveState='deactivating', SubState='stop-sigterm')
        unit.at(stop_after, ActiveState='activating', SubState='start', MainPID=4194000, NRestarts=0)
        unit.at(ready_after, ActiveState='active', SubState='running')

    def default_start(self, fake, unit):
        unit.set(ActiveState='activating', SubState='start', MainPID=4194001)
        unit.at(0.05, ActiveState='active', SubState='running')

    def default_stop(self, fake, unit):
        self.kill_later(unit, 0)
        unit.set(ActiveState='inactive', SubState='dead', MainPID=0)

    def default_disable(self, fake, unit):
        pass

    def default_kill(self, fake, unit):
        self.kill_later(unit, 0)
        unit.set(ActiveState='failed', SubState='failed', Result='signal', MainPID=0)

    def default_reset_failed(self, fake, unit):
        if unit.current()['ActiveState'] == 'failed':
            unit.set(ActiveState='inactive', SubState='dead')

    def cleanup(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def fake():
    f = FakeSystemd()
    yield f
    f.cleanup()


def module_args(units, **kw):
    args = dict(units=units, interval=0.02, passes=3, timeout=5, request_timeout=0.5)
    args.update(kw)
    return args


# --------------------------------------------------------------------------
# pure helpers
# --------------------------------------------------------------------------

class FakeClock(object):
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_ready_needs_consecutive_passes_fake_clock():
    answers = iter([True, False, True, True, False, True, True, True, True])
    clk = FakeClock()
    res = readiness.wait_ready(lambda remaining: (next(answers), None), passes=3, interval=0.1,
                               timeout=60, clock=clk.clock, sleep=clk.sleep)
    assert res.ready and res.polls == 8 and res.passes == 3
    assert clk.sleeps == [pytest.approx(0.1)] * 7


def test_wait_ready_timeout_and_abort_fake_clock():
    clk = FakeClock()
    res = readiness.wait_ready(lambda remaining: (False, None), passes=3, interval=0.1, timeout=1.0,
                               clock=clk.clock, sleep=clk.sleep)
    assert res.status == 'timeout' and res.polls == 11
    assert res.elapsed == pytest.approx(1.0)

    seen = []

    def check(remaining):
        seen.append(remaining)
        return True, ('boom' if len(seen) == 2 else None)
    res = readiness.wait_ready(check, passes=3, interval=0.1, timeout=1.0, clock=clk.clock, sleep=clk.sleep)
    assert res.status == 'aborted' and res.reason == 'boom' and res.polls == 2
    assert seen[0] == pytest.approx(1.0)


def test_liveness_tracker_and_percentile():
    tracker = readiness.LivenessTracker(max_failures=3)
    # failures before the endpoint ever answered (and unit not active) are warm-up
    assert all(tracker.update('ConnectionRefusedError') is None for _attempt in range(10))
    assert tracker.update(200) is None
    assert [tracker.update('ConnectionRefusedError') for _attempt in range(3)] == [None] * 3
    assert 'ConnectionRefusedError' in tracker.update('ConnectionRefusedError')
    active = readiness.LivenessTracker(grace=10)
    assert [active.update(503, elapsed=10) for _attempt in range(3)] == [None] * 3
    assert 'status_503' in active.update(503, elapsed=10)

    assert readiness.percentile([], 50) is None
    values = list(range(1, 101))
    assert readiness.percentile(values, 50) == 50
    assert readiness.percentile(values, 99) == 99
    assert readiness.percentile([5.0], 99) == 5.0


def test_http_get_status_and_errors(servers):
    app = HealthApp()
    app.route('/readyz', const(503))
    srv = servers(app)
    assert readiness.http_get(srv.url('/readyz'), timeout=1)[0] == 503
    assert readiness.http_get(srv.url('/missing'), timeout=1)[0] == 404
    srv.close()
    assert readiness.http_get(srv.url('/readyz'), timeout=1)[0] == 'ConnectionRefusedError'


def test_choose_instance():
    assert rolling_restart.choose_instance(['a', 'b'], {'a': 'active', 'b': 'inactive'}) == ('b', ['a'])
    assert rolling_restart.choose_instance(['a', 'b'], {'a': 'failed', 'b': 'active'}) == ('a', ['b'])
    assert rolling_restart.choose_instance(['a', 'b'], {'a': 'inactive', 'b': 'inactive'}) == ('a', [])
    assert rolling_restart.choose_instance(['a', 'b', 'c'], {'b': 'active'}) == ('c', ['b'])
    assert rolling_restart.choose_instance(['a', 'b'], {'a': 'active', 'b': 'active'}) == (None, ['a', 'b'])


# --------------------------------------------------------------------------
# restart strategy
# --------------------------------------------------------------------------

def test_units_restarted_in_order_each_after_previous_ready(servers, fake):
    app = HealthApp()
    srv = servers(app)
    names = ['u1.service', 'u2.service', 'u3.service']
    order = []

    def make_hook(idx):
        def hook(f, unit):
            prev = names[idx - 1] if idx else None
            order.append(dict(
                name=unit.name,
                prev_streak=app.streak['/%s/readyz' % prev] if prev else None,
                prev_state=f.units[prev].current()['ActiveState'] if prev else None,
                later_untouched=all(('restart', n) not in f.mutations[:-1] for n in names[idx + 1:]),
            ))
            app.reset('/%s/readyz' % unit.name)
            f.default_restart(f, unit)
        return hook

    for idx, name in enumerate(names):
        fake.with_process(name)
        app.route('/%s/readyz' % name, seq(503, 503))
        fake.on('restart', name, make_hook(idx))

    failed, res, took = run_module(module_args(
        [dict(name=n, readiness_url=srv.url('/%s/readyz' % n)) for n in names]), fake)

    assert not failed, res['msg']
    assert res['changed'] is True
    assert fake.mutations == [('restart', n) for n in names]
    assert all(c[:2] == ['restart', '--no-block'] for c in fake.calls if c[0] == 'restart')
    assert [o['name'] for o in order] == names
    for entry in order[1:]:
        assert entry['prev_streak'] >= 3          # previous unit passed readiness...
        assert entry['prev_state'] == 'active'    # ...and is active
    assert all(o['later_untouched'] for o in order)
    assert res['rolled'] == names
    for r in res['results']:
        assert r['status'] == 'ready' and r['passes'] == 3
        assert r['time_to_stop'] is not None and 0.03 <= r['time_to_stop'] <= r['time_to_ready']
    assert took < 3


@pytest.mark.parametrize('crash', ['failed', 'auto-restart', 'nrestarts'])
def test_fail_fast_when_unit_fails(servers, fake, crash):
    app = HealthApp()
    srv = servers(app)
    names = ['u1.service', 'u2.service', 'u3.service']
    for name in names:
        fake.unit(name, ActiveState='active', SubState='running')
        app.route('/%s/readyz' % name, const(200))
    app.route('/u2.service/readyz', const(503))
    fake.journal['u2.service'] = ['line %d' % i for i in range(30)] + ['panic: cannot open db']

    def broken(f, unit):
        unit.set(ActiveState='activating', SubState='start', NRestarts=0)
        if crash == 'failed':
            unit.at(0.1, ActiveState='failed', SubState='failed', Result='exit-code', MainPID=0)
        elif crash == 'auto-restart':
            unit.at(0.1, ActiveState='activating', SubState='auto-restart', NRestarts=1)
        else:  # restarted between two polls: only NRestarts tells
            unit.at(0.1, ActiveState='activating', SubState='start', NRestarts=1)
    fake.on('restart', 'u2.service', broken)

    failed, res, took = run_module(module_args(
        [dict(name=n, readiness_url=srv.url('/%s/readyz' % n)) for n in names], timeout=10), fake)

    assert failed
    assert took < 5, 'fail fast, not after the 10 s timeout'
    assert fake.mutations == [('restart', 'u1.service'), ('restart', 'u2.service')]
    assert res['rolled'] == ['u1.service']
    assert [r['status'] for r in res['results']] == ['ready', 'failed']
    assert 'u2.service' in res['msg']
    assert ('failed state' if crash == 'failed' else 'crash-looping') in res['msg']
    assert 'panic: cannot open db' in res['msg'] and 'status_503' in res['msg']
    assert len(res['journal']) == 15
    assert ['journalctl', '-u', 'u2.service', '-n', '15', '--no-pager', '-o', 'cat'] in fake.calls


def test_fail_fast_when_liveness_dies(servers, fake):
    ready_app, live_app = HealthApp(), HealthApp()
    ready_app.route('/readyz', const(503))
    live_app.route('/livez', const(200))
    ready_srv, live_srv = servers(ready_app), servers(live_app)
    fake.unit('blog.service', ActiveState='active', SubState='running')
    fake.unit('shop.service', ActiveState='active', SubState='running')

    def restart(f, unit):
        unit.set(ActiveState='active', SubState='running')   # systemd still thinks all is fine
        timer = threading.Timer(0.15, live_srv.close)        # ...but the process stops answering
        timer.daemon = True
        timer.start()
    fake.on('restart', 'blog.service', restart)

    failed, res, took = run_module(module_args([
        dict(name='blog.service', readiness_url=ready_srv.url('/readyz'), liveness_url=live_srv.url('/livez')),
        dict(name='shop.service', readiness_url=ready_srv.url('/readyz')),
    ], timeout=10), fake)

    assert failed
    assert took < 5
    assert live_app.counts['/livez'] >= 1
    assert 'liveness failed' in res['msg'] and 'ConnectionRefusedError' in res['msg']
    assert res['results'][0]['status'] == 'failed'
    assert res['results'][0]['liveness'] == 'ConnectionRefusedError'
    assert ('restart', 'shop.service') not in fake.mutations
    assert res['rolled'] == []


def test_timeout_when_readiness_stays_503_while_alive(servers, fake):
    app = HealthApp()
    app.route('/readyz', const(503))
    app.route('/livez', const(200))
    srv = servers(app)
    fake.unit('blog.service', ActiveState='active', SubState='running')
    fake.on('restart', 'blog.service', lambda f, u: u.set(ActiveState='active', SubState='running'))

    failed, res, took = run_module(module_args([dict(
        name='blog.service', readiness_url=srv.url('/readyz'), liveness_url=srv.url('/livez'), timeout=0.5)],
        timeout=30), fake)

    assert failed
    assert 0.45 <= took < 5
    assert res['results'][0]['status'] == 'timeout'
    assert 'not ready within 0.5s' in res['msg']
    assert res['results'][0]['readiness'] == 503 and res['results'][0]['liveness'] == 200


def test_a_request_cut_short_by_the_deadline_does_not_replace_the_last_answer(fake, monkeypatch):
    """The last poll before the ready timeout gets what is left of it; a request that
    then times out says nothing of the endpoint: the report keeps its last answer (503)."""
    def http_get(url, timeout=2.0, headers=None, clock=None):
        return (503 if timeout >= 0.1 else 'timeout'), 0.0
    monkeypatch.setattr(rolling, 'http_get', http_get)
    fake.unit('blog.service', ActiveState='active', SubState='running')
    fake.on('restart', 'blog.service', lambda f, u: u.set(ActiveState='active', SubState='running'))

    failed, res, _took = run_module(module_args([dict(
        name='blog.service', readiness_url='http://127.0.0.1:9/readyz', timeout=0.5)], timeout=30), fake)

    assert failed and res['results'][0]['status'] == 'timeout'
    assert res['results'][0]['readiness'] == 503, res['results'][0]
    assert 'readiness last=status_503' in res['msg']


def test_a_liveness_request_cut_short_by_the_deadline_does_not_replace_the_last_answer(fake, monkeypatch):
    """The same for liveness: the report and the message keep its last answer (200),
    not the timeout of a request that got only what was left of the ready timeout."""
    def http_get(url, timeout=2.0, headers=None, clock=None):
        if url.endswith('/livez'):
            return (200 if timeout >= 0.1 else 'timeout'), 0.0
        return 503, 0.0
    monkeypatch.setattr(rolling, 'http_get', http_get)
    fake.unit('blog.service', ActiveState='active', SubState='running')
    fake.on('restart', 'blog.service', lambda f, u: u.set(ActiveState='active', SubState='running'))

    failed, res, _took = run_module(module_args([dict(
        name='blog.service', readiness_url='http://127.0.0.1:9/readyz', liveness_url='http://127.0.0.1:9/livez',
        timeout=0.5)], timeout=30), fake)

    assert failed and res['results'][0]['status'] == 'timeout'
    assert res['results'][0]['liveness'] == 200, res['results'][0]
    assert 'liveness last=%s' % rolling.describe(200) in res['msg'], res['msg']


def test_flapping_readiness_needs_consecutive_passes(servers, fake):
    app = HealthApp()
    srv = servers(app)
    app.route('/readyz', seq(200, 503, 200, 200, 503, 200, 200, 200))
    fake.unit('blog.service', ActiveState='active', SubState='running')

    def restart(f, unit):
        app.reset('/readyz')
        unit.set(ActiveState='active', SubState='running')
    fake.on('restart', 'blog.service', restart)

    failed, res, _took = run_module(module_args([dict(name='blog.service', readiness_url=srv.url('/readyz'))]), fake)

    assert not failed, res['msg']
    result = res['results'][0]
    assert result['polls'] == 8 and result['passes'] == 3
    assert app.counts['/readyz'] == 8
    assert result['time_to_stop'] is None    # no main process before the restart


def test_readiness_only_counts_after_old_process_exited(servers, fake):
    """A draining old process answering 200 must not be taken for the new one."""
    app = HealthApp()
    app.route('/readyz', const(200))
    srv = servers(app)
    fake.with_process('blog.service')
    fake.on('restart', 'blog.service', lambda f, u: f.default_restart(f, u, stop_after=0.3, ready_after=0.35))

    failed, res, _took = run_module(module_args([dict(name='blog.service', readiness_url=srv.url('/readyz'))]), fake)

    assert not failed, res['msg']
    result = res['results'][0]
    assert result['time_to_stop'] >= 0.28
    assert result['time_to_ready'] >= 0.35 + 2 * 0.02 - 0.01


def test_restart_false_only_waits(servers, fake):
    app = HealthApp()
    app.route('/readyz', seq(503))
    srv = servers(app)
    fake.unit('blog.service', ActiveState='active', SubState='running')

    failed, res, _took = run_module(module_args(
        [dict(name='blog.service', readiness_url=srv.url('/readyz'), restart=False)]), fake)

    assert not failed, res['msg']
    assert res['changed'] is False and fake.mutations == []
    assert res['results'][0]['status'] == 'ready'


def test_systemctl_error_is_reported(servers, fake):
    app = HealthApp()
    srv = servers(app)
    fake.unit('blog.service', ActiveState='active', SubState='running')
    fake.fail[('restart', 'blog.service')] = (1, '', 'Failed to restart blog.service: Access denied\n')

    failed, res, _took = run_module(module_args([dict(name='blog.service', readiness_url=srv.url('/readyz'))]), fake)

    assert failed
    assert res['rc'] == 1 and 'Access denied' in res['stderr'] and 'Access denied' in res['msg']
    assert res['results'][0]['status'] == 'failed'


def test_unknown_unit_fails_before_restart(servers, fake):
    srv = servers()
    fake.unit('nope.service', LoadState='not-found')
    failed, res, _took = run_module(module_args([dict(name='nope.service', readiness_url=srv.url('/readyz'))]), fake)
    assert failed and 'not found' in res['msg'] and fake.mutations == []


# --------------------------------------------------------------------------
# check mode
# --------------------------------------------------------------------------

def test_check_mode_does_not_touch_anything(servers, fake):
    app = HealthApp()
    app.route('/', const(200))
    srv = servers(app)
    fake.unit('blog.service', ActiveState='active', SubState='running')
    fake.unit('wiki@a.service', ActiveState='active', SubState='running')
    fake.unit('wiki@b.service')
    args = module_args([
        dict(name='blog.service', readiness_url=srv.url('/readyz')),
        dict(name='wiki', strategy='overlap', readiness_url=srv.url('/{instance}/readyz')),
        dict(name='api.service', readiness_url=srv.url('/readyz'), restart=False),
    ], probe=dict(urls=[srv.url('/')]))
    args['_ansible_check_mode'] = True

    failed, res, _took = run_module(args, fake)

    assert not failed, res['msg']
    assert res['changed'] is True
    assert fake.mutations == []
    assert all(c[0] == 'show' for c in fake.calls)
    assert app.total == 0 and 'probe' not in res
    assert [r['status'] for r in res['results']] == ['would_restart', 'would_restart', 'would_wait']
    assert res['results'][1]['instance'] == 'b' and res['results'][1]['old_instances'] == ['a']


# --------------------------------------------------------------------------
# overlap strategy
# --------------------------------------------------------------------------

@pytest.mark.parametrize('running, expect_new, expect_old', [
    (['a'], 'b', ['a']),
    (['b'], 'a', ['b']),
    ([], 'a', []),
])
def test_overlap_starts_new_then_stops_old(servers, fake, running, expect_new, expect_old):
    app = HealthApp()
    srv = servers(app)
    for inst in ('a', 'b'):
        if inst in running:
            fake.unit('blog@%s.service' % inst, ActiveState='active', SubState='running')
        else:
            fake.unit('blog@%s.service' % inst, ActiveState='failed' if inst == 'b' else 'inactive')
        app.route('/%s/readyz' % inst, const(200) if inst in running else seq(503, 503))
    seen_at_stop = []

    def stop(f, unit):
        seen_at_stop.append((unit.name, app.streak['/%s/readyz' % expect_new],
                             f.units['blog@%s.service' % expect_new].current()['ActiveState']))
        f.default_stop(f, unit)
    for inst in expect_old:
        fake.on('stop', 'blog@%s.service' % inst, stop)

    failed, res, _took = run_module(module_args([dict(
        name='blog', strategy='overlap', readiness_url=srv.url('/{instance}/readyz'))]), fake)

    assert not failed, res['msg']
    new_unit = 'blog@%s.service' % expect_new
    assert fake.mutations == [('start', new_unit)] + [('stop', 'blog@%s.service' % o) for o in expect_old]
    assert ['start', '--no-block', new_unit] in fake.calls
    for _name, streak, state in seen_at_stop:
        assert streak >= 3 and state == 'active'    # old stopped only once the new one is ready
    result = res['results'][0]
    assert result['status'] == 'ready' and result['instance'] == expect_new
    assert result['old_instances'] == expect_old and result['unit'] == new_unit
    assert app.counts['/%s/readyz' % expect_new] >= 5   # 2x503 + 3x200
    running_after = [n for n, u in fake.units.items() if u.current()['ActiveState'] == 'active']
    assert running_after == [new_unit]
    assert res['rolled'] == ['blog']


def test_overlap_new_instance_fails_keeps_old(servers, fake):
    app = HealthApp()
    app.route('/a/readyz', const(200))
    app.route('/b/readyz', const(503))
    srv = servers(app)
    fake.unit('blog@a.service', ActiveState='active', SubState='running')
    fake.unit('blog@b.service')
    fake.journal['blog@b.service'] = ['Error: port 9102 in use']

    def start(f, unit):
        unit.set(ActiveState='activating', SubState='start')
        unit.at(0.1, ActiveState='failed', SubState='failed', Result='exit-code')
    fake.on('start', 'blog@b.service', start)

    failed, res, took = run_module(module_args([
        dict(name='blog', strategy='overlap', readiness_url=srv.url('/{instance}/readyz')),
        dict(name='shop.service', readiness_url=srv.url('/a/readyz')),
    ], timeout=10), fake)

    assert failed and took < 5
    assert fake.mutations == [('start', 'blog@b.service'), ('stop', 'blog@b.service')]
    assert fake.units['blog@a.service'].current()['ActiveState'] == 'active'
    assert 'blog@b.service' in res['msg'] and 'left blog@a.service running' in res['msg']
    assert 'port 9102 in use' in res['msg']
    assert res['results'][0]['instance'] == 'b' and res['results'][0]['status'] == 'failed'
    assert res['rolled'] == []


# --------------------------------------------------------------------------
# probe
# --------------------------------------------------------------------------

def test_probe_counts_requests_and_failures(servers, fake):
    site = HealthApp()
    site.route('/', const(200))
    site_srv = servers(site)
    health = HealthApp()
    health.route('/readyz', seq(503, 503, 503))
    health_srv = servers(health)
    fake.unit('blog.service', ActiveState='active', SubState='running')
    units = [dict(name='blog.service', readiness_url=health_srv.url('/readyz'))]

    def restart(f, unit, broken):
        health.reset('/readyz')
        if broken:   # the site answers its next three requests with 503: not zero downtime
            site.route('/', seq(503, 503, 503))
        f.default_restart(f, unit)

    fake.on('restart', 'blog.service', lambda f, u: restart(f, u, False))
    failed, res, _took = run_module(module_args(units, probe=dict(
        urls=[site_srv.url('/')], concurrency=2, headers={'Host': 'blog.example.org'})), fake)
    assert not failed, res['msg']
    probe = res['probe']
    assert probe['sent'] > 0 and probe['failed'] == 0 and probe['errors'] == {}
    assert probe['p50_ms'] is not None and probe['p50_ms'] <= probe['p99_ms'] <= probe['max_ms']
    assert probe['sent'] == site.total

    fake.on('restart', 'blog.service', lambda f, u: restart(f, u, True))
    failed, res, _took = run_module(module_args(units, probe=dict(
        urls=[site_srv.url('/')], concurrency=2, max_failed=0)), fake)
    assert failed
    probe = res['probe']
    assert probe['sent'] > probe['failed'] == 3
    assert probe['errors'] == {'status_503': 3}
    assert 'probe saw %d failed' % probe['failed'] in res['msg']
    assert res['results'][0]['status'] == 'ready' and res['rolled'] == ['blog.service']


def test_probe_reports_connection_errors(servers):
    srv = servers()
    srv.close()
    probe = readiness.Probe([srv.url('/')], concurrency=1, request_timeout=0.5).start()
    time.sleep(0.1)
    summary = probe.stop()
    assert summary['sent'] == summary['failed'] > 0
    assert set(summary['errors']) == {'ConnectionRefusedError'}
    assert summary['p50_ms'] is None


def test_bad_url_is_rejected_before_touching_anything(fake):
    failed, res, _took = run_module(module_args([dict(name='blog.service', readiness_url='ftp://127.0.0.1/readyz')]),
                                    fake)
    assert failed and 'unsupported URL scheme' in res['msg'] and fake.calls == []


# --------------------------------------------------------------------------
# release symlink switched per unit, right before its restart
# --------------------------------------------------------------------------

def _releases(tmp_path, name):
    site = tmp_path / name
    for version in ('v1', 'v2'):
        (site / 'releases' / version).mkdir(parents=True)
    os.symlink(str(site / 'releases' / 'v1'), str(site / 'current'))
    return str(site / 'current'), str(site / 'releases' / 'v2')


def test_link_switched_just_before_restart_and_later_units_keep_old_release(servers, fake, tmp_path):
    app = HealthApp()
    srv = servers(app)
    names = ['u1', 'u2', 'u3']
    links = dict((n, _releases(tmp_path, n)) for n in names)
    seen_at_restart = {}
    for name in names:
        fake.with_process('%s.service' % name)
        app.route('/%s/readyz' % name, const(200))

        def hook(f, unit, name=name):
            seen_at_restart[name] = dict((n, os.readlink(links[n][0])) for n in names)
            f.default_restart(f, unit)
        fake.on('restart', '%s.service' % name, hook)
    app.route('/u2/readyz', const(503))   # u2's new release never becomes ready

    failed, res, took = run_module(module_args(
        [dict(name='%s.service' % n, readiness_url=srv.url('/%s/readyz' % n),
              link=links[n][0], link_target=links[n][1]) for n in names], timeout=1), fake)

    assert failed
    # each link was switched right before its own restart, not before
    assert seen_at_restart['u1'] == dict(u1=links['u1'][1], u2=str(tmp_path / 'u2/releases/v1'),
                                         u3=str(tmp_path / 'u3/releases/v1'))
    assert seen_at_restart['u2']['u2'] == links['u2'][1]
    assert 'u3' not in seen_at_restart
    # the ready unit keeps its new release, the failed one points back, the later one never moved
    assert os.readlink(links['u1'][0]) == links['u1'][1]
    assert os.readlink(links['u2'][0]) == str(tmp_path / 'u2/releases/v1')
    assert os.readlink(links['u3'][0]) == str(tmp_path / 'u3/releases/v1')
    assert 'points back to %s' % (tmp_path / 'u2/releases/v1') in res['msg']
    assert res['results'][1]['link']['reverted'] is True
    assert res['results'][0]['link'] == dict(path=links['u1'][0], changed=True, reverted=False,
                                             to=links['u1'][1], **{'from': str(tmp_path / 'u1/releases/v1')})
    assert not [p for p in os.listdir(str(tmp_path / 'u1')) if 'onebox-' in p]   # no temporary link left


def test_link_check_mode_and_missing_target(servers, fake, tmp_path):
    app = HealthApp()
    app.route('/readyz', const(200))
    srv = servers(app)
    link, target = _releases(tmp_path, 'blog')
    fake.with_process('blog.service')
    args = module_args([dict(name='blog.service', readiness_url=srv.url('/readyz'), link=link,
                             link_target=target)])
    args['_ansible_check_mode'] = True
    failed, res, _took = run_module(args, fake)
    assert not failed and res['changed'] is True
    assert res['results'][0]['link']['changed'] is True
    assert os.readlink(link).endswith('/v1') and fake.mutations == []
    args['units'][0]['link_target'] = target + '-not-unpacked-yet'
    failed, res, _took = run_module(args, fake)
    assert not failed and res['results'][0]['link']['changed'] is True

    failed, res, _took = run_module(module_args([dict(name='blog.service', readiness_url=srv.url('/readyz'),
                                                      link=link, link_target=target + '-missing')]), fake)
    assert failed and 'link_target' in res['msg'] and 'blog.service' in res['msg']
    assert os.readlink(link).endswith('/v1') and fake.mutations == []


@pytest.mark.parametrize('rollback', ['none', 'site'])
def test_overlap_failure_points_link_back_and_keeps_old_instance(servers, fake, tmp_path, rollback):
    """With rollback=site the old instance, which never stopped, is only waited for."""
    app = HealthApp()
    app.route('/19001/readyz', const(200))
    app.route('/19002/readyz', const(503))
    srv = servers(app)
    link, target = _releases(tmp_path, 'wiki')
    fake.unit('wiki@19001.service', ActiveState='active', SubState='running')
    fake.unit('wiki@19002.service')

    failed, res, _took = run_module(module_args([dict(
        name='wiki', strategy='overlap', instances=['19001', '19002'], link=link, link_target=target,
        readiness_url=srv.url('/{instance}/readyz'))], timeout=0.5, rollback=rollback), fake)

    assert failed
    assert fake.mutations == [('start', 'wiki@19002.service'), ('stop', 'wiki@19002.service')]
    assert fake.units['wiki@19001.service'].current()['ActiveState'] == 'active'
    assert os.readlink(link).endswith('/v1')
    assert 'left wiki@19001.service running' in res['msg']
    if rollback == 'site':
        assert [(e['status'], e['version']) for e in res['rollback']] == [('ready', 'v1')]
        assert 'rolled back wiki to v1, which is serving again' in res['msg']
    else:
        assert 'rollback' not in res


def test_instance_urls_are_checked_per_instance():
    url = 'http://127.0.0.1:{instance}/readyz'
    assert readiness.validate_url(url, ['19001', '19002']) is None
    assert 'instance a' in readiness.validate_url(url, ['a'])
    assert readiness.validate_url('http://127.0.0.1:9/{instance}/readyz') is None


# --------------------------------------------------------------------------
# rollback
# --------------------------------------------------------------------------

def _site_files(tmp_path, name):
    """An installed unit file with the content a deploy just wrote and its backup."""
    unit_dir = tmp_path / 'units'
    unit_dir.mkdir(exist_ok=True)
    installed = unit_dir / ('%s.service' % name)
    installed.write_text('new %s\n' % name)
    backup = tmp_path / name / 'previous.service'
    backup.write_text('old %s\n' % name)
    return [dict(path=str(installed), backup=str(backup))]


def _ready_on_v1(link):
    """Readiness that only the previous release (v1) reaches."""
    return lambda n: 200 if os.readlink(link).endswith('/v1') else 503


def _rollback_units(tmp_path, srv, app, fake, names, broken):
    units = []
    for name in names:
        link, target = _releases(tmp_path, name)
        fake.with_process('%s.service' % name)
        app.route('/%s/readyz' % name, _ready_on_v1(link) if name == broken else const(200))
        units.append(dict(name='%s.service' % name, readiness_url=srv.url('/%s/readyz' % name),
                          link=link, link_target=target, restore=_site_files(tmp_path, name)))
    return units


def test_rollback_that_restores_only_an_environment_file_needs_no_daemon_reload(servers, fake, tmp_path):
    """A release change rewrites the site's env file (ONEBOX_VERSION), not its
    units: the rollback puts the env file back and starts the old release,
    without a daemon-reload (seconds on a loaded host, in the outage)."""
    app = HealthApp()
    srv = servers(app)
    link, target = _releases(tmp_path, 'u1')
    fake.with_process('u1.service')
    app.route('/u1/readyz', _ready_on_v1(link))
    env_file, backup = tmp_path / 'u1.env', tmp_path / 'u1.env.previous'
    env_file.write_text('ONEBOX_VERSION=v2\n')
    backup.write_text('ONEBOX_VERSION=v1\n')
    unit = dict(name='u1.service', readiness_url=srv.url('/u1/readyz'), link=link, link_target=target,
                restore=[dict(path=str(env_file), backup=str(backup))])

    failed, res, _took = run_module(module_args([unit], timeout=1, rollback='site'), fake)

    assert failed
    assert res['rollback'][0]['status'] == 'ready', res['rollback']
    assert res['rollback'][0]['restored'] == [str(env_file)]
    assert env_file.read_text() == 'ONEBOX_VERSION=v1\n'
    assert ['daemon-reload'] not in fake.calls


@pytest.mark.parametrize('path,read', [
    ('/etc/systemd/system/blog.service', True),
    ('/etc/systemd/system/blog.socket', True),
    ('/etc/systemd/system/blog-backup.timer', True),
    ('/etc/systemd/system/blog.service.d/50-onebox.conf', True),
    ('/etc/onebox/blog.env', False),
    ('/etc/onebox/blog.conf', False),
    ('/srv/onebox/blog/shared/app.service.json', False),
])
def test_read_at_reload_knows_unit_files_and_drop_ins_from_other_files(path, read):
    assert rolling.read_at_reload(path) is read


def test_rollback_site_restores_files_and_restarts_the_previous_release(servers, fake, tmp_path):
    app = HealthApp()
    srv = servers(app)
    units = _rollback_units(tmp_path, srv, app, fake, ['u1', 'u2', 'u3'], broken='u2')

    failed, res, _took = run_module(module_args(units, timeout=1, rollback='site'), fake)

    assert failed
    # u2 restarted into the new release, then again into the old one; u3 never touched
    assert fake.mutations == [('restart', 'u1.service'), ('restart', 'u2.service'), ('restart', 'u2.service')]
    assert ['daemon-reload'] in fake.calls
    assert fake.calls.index(['daemon-reload']) < len(fake.calls) - 1
    assert os.readlink(units[1]['link']).endswith('/v1')
    assert os.readlink(units[0]['link']).endswith('/v2')          # rolled before: keeps its new release
    assert os.readlink(units[2]['link']).endswith('/v1')
    text = dict((u['name'], open(u['restore'][0]['path']).read()) for u in units)
    assert text == {'u1.service': 'new u1\n', 'u2.service': 'old u2\n', 'u3.service': 'old u3\n'}
    assert [(e['name'], e['status'], e['version']) for e in res['rollback']] == [('u2.service', 'ready', 'v1')]
    assert res['rollback'][0]['restored'] == [units[1]['restore'][0]['path']]
    assert res['msg'].startswith('rolled back u2.service to v1, which is serving again (ready in ')
    assert 'u2.service did not become ready' in res['msg']


def test_rollback_all_also_returns_the_sites_rolled_before(servers, fake, tmp_path):
    app = HealthApp()
    srv = servers(app)
    units = _rollback_units(tmp_path, srv, app, fake, ['u1', 'u2', 'u3'], broken='u3')

    failed, res, _took = run_module(module_args(units, timeout=1, rollback='all'), fake)

    assert failed
    assert fake.mutations == [('restart', 'u1.service'), ('restart', 'u2.service'), ('restart', 'u3.service'),
                              ('restart', 'u3.service'), ('restart', 'u2.service'), ('restart', 'u1.service')]
    assert all(os.readlink(u['link']).endswith('/v1') for u in units)
    assert all(open(u['restore'][0]['path']).read().startswith('old ') for u in units)
    assert [(e['name'], e['status']) for e in res['rollback']] == [
        ('u3.service', 'ready'), ('u2.service', 'ready'), ('u1.service', 'ready')]


def test_rollback_of_a_new_site_is_skipped_and_a_new_file_removed(servers, fake, tmp_path):
    app = HealthApp()
    app.route('/readyz', const(503))
    srv = servers(app)
    site = tmp_path / 'fresh'
    (site / 'releases' / 'v1').mkdir(parents=True)
    unit_file = tmp_path / 'fresh.service'
    unit_file.write_text('new\n')
    fake.unit('fresh.service', ActiveState='inactive')

    failed, res, _took = run_module(module_args([dict(
        name='fresh.service', readiness_url=srv.url('/readyz'), link=str(site / 'current'),
        link_target=str(site / 'releases' / 'v1'), restore=[dict(path=str(unit_file))])],
        timeout=0.5, rollback='site'), fake)

    assert failed
    assert res['rollback'][0]['status'] == 'skipped' and 'no previous release' in res['rollback'][0]['reason']
    assert not unit_file.exists()
    assert fake.mutations == [('restart', 'fresh.service')]


# --------------------------------------------------------------------------
# liveness start grace
# --------------------------------------------------------------------------

def free_port():
    import socket as _socket
    sock = _socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_liveness_tracker_start_grace():
    tracker = readiness.LivenessTracker(max_failures=3, grace=10)
    # before the grace and before any 200: a slow start, never dead
    assert all(tracker.update('ConnectionRefusedError', elapsed=0.1 * i) is None for i in range(50))
    assert tracker.failures == 0
    # once the grace is over failures count
    assert [tracker.update('ConnectionRefusedError', elapsed=10 + i) for i in range(3)] == [None] * 3
    dead = tracker.update('ConnectionRefusedError', elapsed=14)
    assert dead == ('liveness failed 4 polls in a row (last: ConnectionRefusedError) '
                    'and never answered 200 within the 10s start grace')
    # after one 200, failures count at once, inside the grace
    answered = readiness.LivenessTracker(max_failures=3, grace=10)
    assert answered.update(200, elapsed=0.5) is None
    assert [answered.update('timeout', elapsed=0.6) for _attempt in range(3)] == [None] * 3
    assert answered.update('timeout', elapsed=0.7).endswith('(last: timeout) after answering 200')
    # without elapsed (or grace=None) only a 200 arms it
    assert all(readiness.LivenessTracker(grace=None).update(503, elapsed=99) is None for _attempt in range(9))


def test_slow_start_while_active_becomes_ready(servers, fake):
    """Type=exec: active at once, the health port only opens later."""
    port = free_port()
    app = HealthApp()
    app.route('/readyz', const(200))
    app.route('/livez', const(200))
    fake.unit('blog.service', ActiveState='active', SubState='running')
    fake.on('restart', 'blog.service', lambda f, u: u.set(ActiveState='active', SubState='running'))
    opened = []
    timer = threading.Timer(0.4, lambda: opened.append(servers(app, port)))   # ~20 refused polls first
    timer.daemon = True
    timer.start()
    url = 'http://127.0.0.1:%d' % port

    failed, res, took = run_module(module_args([dict(
        name='blog.service', readiness_url=url + '/readyz', liveness_url=url + '/livez')]), fake)
    timer.join()

    assert not failed, res['msg']
    assert opened and res['results'][0]['status'] == 'ready'
    assert res['results'][0]['polls'] > 3 + 3
    assert 0.35 <= res['results'][0]['time_to_ready'] < 3


def test_liveness_failures_count_after_the_grace(servers, fake):
    live = servers()
    live.close()                     # never answers
    app = HealthApp()
    app.route('/readyz', const(503))
    srv = servers(app)
    fake.unit('blog.service', ActiveState='active', SubState='running')
    fake.on('restart', 'blog.service', lambda f, u: u.set(ActiveState='active', SubState='running'))

    failed, res, took = run_module(module_args([dict(
        name='blog.service', readiness_url=srv.url('/readyz'), liveness_url=live.url('/livez'))],
        timeout=10, liveness_grace=0.3), fake)

    assert failed and 0.3 <= took < 5
    assert res['results'][0]['status'] == 'failed'
    assert 'never answered 200 within the 0.3s start grace' in res['msg']


def test_auto_restart_fails_at_once_without_any_liveness_answer(servers, fake):
    live = servers()
    live.close()
    app = HealthApp()
    app.route('/readyz', const(503))
    srv = servers(app)
    fake.unit('blog.service', ActiveState='active', SubState='running')

    def crash(f, unit):
        unit.set(ActiveState='activating', SubState='start')
        unit.at(0.05, ActiveState='activating', SubState='auto-restart', NRestarts=1)
    fake.on('restart', 'blog.service', crash)

    failed, res, took = run_module(module_args([dict(
        name='blog.service', readiness_url=srv.url('/readyz'), liveness_url=live.url('/livez'))],
        timeout=10), fake)

    assert failed and took < 5
    assert 'crash-looping (SubState=auto-restart' in res['msg'] and 'liveness failed' not in res['msg']
    assert res['results'][0]['liveness'] == 'ConnectionRefusedError'


@pytest.mark.parametrize('active, sub', [('inactive', 'dead'), ('active', 'exited')])
def test_unit_that_stops_after_starting_fails_fast(servers, fake, active, sub):
    app = HealthApp()
    app.route('/readyz', const(503))
    srv = servers(app)
    fake.unit('blog.service')

    def gone(f, unit):
        unit.set(ActiveState='active', SubState='running', MainPID=4194002)
        unit.at(0.1, ActiveState=active, SubState=sub, MainPID=0)
    fake.on('restart', 'blog.service', gone)

    failed, res, took = run_module(module_args([dict(name='blog.service', readiness_url=srv.url('/readyz'))],
                                               timeout=10), fake)

    assert failed and took < 5
    assert 'unit stopped (ActiveState=%s, SubState=%s) before it became ready' % (active, sub) in res['msg']


def test_liveness_grace_must_not_be_negative(fake):
    failed, res, _took = run_module(module_args([dict(name='blog.service', readiness_url='http://127.0.0.1:9/')],
                                                liveness_grace=-1), fake)
    assert failed and 'liveness_grace' in res['msg'] and fake.calls == []


# --------------------------------------------------------------------------
# probe: per-site counts and timeout
# --------------------------------------------------------------------------

def test_probe_names_the_failing_site_and_counts_per_target(servers, fake, monkeypatch):
    good, bad = HealthApp(), HealthApp()
    good.route('/', const(200))
    bad.route('/', const(503))
    good_srv, bad_srv = servers(good), servers(bad)
    health = HealthApp()
    health.route('/readyz', const(200))
    health_srv = servers(health)
    fake.unit('blog.service', ActiveState='active', SubState='running')
    made = []

    class RecordingProbe(readiness.Probe):
        def __init__(self, *args, **kwargs):
            made.append(kwargs)
            super(RecordingProbe, self).__init__(*args, **kwargs)
    from ansible_collections.onebox.deploy.plugins.module_utils import rollout
    monkeypatch.setattr(rollout, 'Probe', RecordingProbe)
    urls = [good_srv.url('/'), bad_srv.url('/')]
    units = [dict(name='blog.service', readiness_url=health_srv.url('/readyz'))]

    failed, res, _took = run_module(module_args(units, probe=dict(
        urls=urls, labels=['shop', 'blog'], concurrency=2, request_timeout=0.25)), fake)

    assert failed
    assert made[-1]['request_timeout'] == 0.25 and made[-1]['labels'] == ['shop', 'blog']
    probe = res['probe']
    targets = probe['targets']
    assert [(t['url'], t['label']) for t in targets] == [(urls[0], 'shop'), (urls[1], 'blog')]
    assert targets[0]['failed'] == 0 and targets[0]['errors'] == {} and targets[0]['sent'] > 0
    assert targets[1]['failed'] == targets[1]['sent'] == targets[1]['errors']['status_503'] > 0
    assert sum(t['sent'] for t in targets) == probe['sent']
    assert res['msg'] == 'probe saw %d failed of %d requests (max_failed=0): blog (%s): status_503=%d' % (
        probe['failed'], probe['sent'], urls[1], probe['failed'])

    # without labels the URL alone names the target; the module's request_timeout is the default
    failed, res, _took = run_module(module_args(units, probe=dict(urls=urls, concurrency=2)), fake)
    assert failed and made[-1]['request_timeout'] == 0.5 and made[-1]['labels'] is None
    assert res['msg'].endswith('(max_failed=0): %s: status_503=%d' % (urls[1], res['probe']['failed']))
    assert [t['label'] for t in res['probe']['targets']] == [None, None]


def test_probe_failures_lists_every_failing_target():
    summary = dict(targets=[
        dict(url='http://127.0.0.1:8001/', label='blog', sent=100, failed=4, errors={'timeout': 4}),
        dict(url='http://127.0.0.1:8002/', label='wiki', sent=100, failed=0, errors={}),
        dict(url='http://127.0.0.1:8003/', label=None, sent=8, failed=3,
             errors={'status_503': 2, 'ConnectionResetError': 1}),
    ])
    assert readiness.probe_failures(summary) == (
        'blog (http://127.0.0.1:8001/): timeout=4; '
        'http://127.0.0.1:8003/: ConnectionResetError=1, status_503=2')
    assert readiness.probe_failures(dict(targets=[])) == ''


def test_probe_labels_must_match_urls(fake):
    failed, res, _took = run_module(module_args(
        [dict(name='blog.service', readiness_url='http://127.0.0.1:9/')],
        probe=dict(urls=['http://127.0.0.1:9/', 'http://127.0.0.1:10/'], labels=['blog'])), fake)
    assert failed and 'probe.labels' in res['msg'] and '1 labels for 2 URLs' in res['msg'] and fake.calls == []
    with pytest.raises(ValueError):
        readiness.Probe(['http://127.0.0.1:9/'], labels=['a', 'b'])


# --------------------------------------------------------------------------
# rollback of a fresh site (first install)
# --------------------------------------------------------------------------

def _fresh_site(tmp_path, name):
    site = tmp_path / name
    (site / 'releases' / '1.0.0').mkdir(parents=True)
    unit_file = tmp_path / ('%s.service' % name)
    unit_file.write_text('new\n')
    env_file = tmp_path / ('%s.env' % name)
    env_file.write_text('A=1\n')
    return site, unit_file, env_file


def _retire_calls(fake):
    return [c for c in fake.calls if c[0] in ('stop', 'disable', 'daemon-reload')]


@pytest.mark.parametrize('strategy', ['restart', 'overlap'])
def test_rollback_of_a_fresh_site_stops_disables_and_removes_it(servers, fake, tmp_path, strategy):
    app = HealthApp()
    app.route('/readyz', const(503))
    app.route('/a/readyz', const(503))
    srv = servers(app)
    site, unit_file, env_file = _fresh_site(tmp_path, 'blog')
    link, target = str(site / 'current'), str(site / 'releases' / '1.0.0')
    fake.journal['blog.service'] = ['Error: cannot bind 8001']
    fake.journal['blog@a.service'] = ['Error: cannot bind 8001']
    fake.unit('blog.socket', ActiveState='active', SubState='listening')
    seen = []

    def record(verb):
        def hook(f, unit):
            seen.append((verb, unit.name, unit_file.exists(), env_file.exists(), os.path.islink(link)))
            getattr(f, 'default_' + verb)(f, unit)
        return hook
    services = ['blog.service'] if strategy == 'restart' else ['blog@a.service', 'blog@b.service']
    for name in ['blog.socket'] + services:
        fake.unit(name) if name != 'blog.socket' else None
        fake.on('stop', name, record('stop'))
        fake.on('disable', name, record('disable'))
    unit = dict(name='blog.service' if strategy == 'restart' else 'blog', strategy=strategy,
                readiness_url=srv.url('/{instance}/readyz' if strategy == 'overlap' else '/readyz'),
                link=link, link_target=target, fresh=True, socket='blog.socket',
                restore=[dict(path=str(unit_file)), dict(path=str(env_file))])

    failed, res, _took = run_module(module_args([unit], timeout=0.5, rollback='site'), fake)

    assert failed
    rollback_stops = seen[-2 * (1 + len(services)):]
    # socket first, stop before disable, all while the files and the link still exist
    assert [(v, n) for v, n, _u, _e, _l in rollback_stops] == (
        [('stop', n) for n in ['blog.socket'] + services] + [('disable', n) for n in ['blog.socket'] + services])
    assert all(u and e for _v, _n, u, e, _l in rollback_stops)
    assert _retire_calls(fake)[-1] == ['daemon-reload']
    assert not unit_file.exists() and not env_file.exists()
    assert not os.path.lexists(link) and os.path.isdir(target)     # release kept
    assert fake.units['blog.socket'].current()['ActiveState'] == 'inactive'
    entry = res['rollback'][0]
    assert entry['status'] == 'removed' and entry['stopped'] == ['blog.socket'] + services
    assert entry['restored'] == [str(unit_file), str(env_file)] and entry['link_removed'] == link
    name = unit['name']
    assert res['msg'].startswith(
        '%s had no previous release: stopped and disabled %s, removed %s, %s and %s; release %s is kept; '
        'fix the input and run the deploy again\n' % (
            name, ('blog.socket and blog.service' if strategy == 'restart'
                   else 'blog.socket, blog@a.service and blog@b.service'),
            unit_file, env_file, link, target))
    assert 'FAILED' not in res['msg'] and 'not found' not in res['msg']
    assert 'did not become ready' in res['msg'] and 'Error: cannot bind 8001' in res['msg']
    # no restart of the removed unit after the rollback
    assert [m for m in fake.mutations if m[0] in ('restart', 'start')] == [
        ('restart', 'blog.service') if strategy == 'restart' else ('start', 'blog@a.service')]


def test_rollback_also_removes_a_fresh_untouched_later_site(servers, fake, tmp_path):
    app = HealthApp()
    app.route('/readyz', const(503))
    srv = servers(app)
    units = []
    for name in ('blog', 'shop'):
        site, unit_file, env_file = _fresh_site(tmp_path, name)
        fake.unit('%s.service' % name)
        units.append(dict(name='%s.service' % name, readiness_url=srv.url('/readyz'), fresh=True,
                          socket='%s.socket' % name, link=str(site / 'current'),
                          link_target=str(site / 'releases' / '1.0.0'), restore=[dict(path=str(unit_file))]))

    failed, res, _took = run_module(module_args(units, timeout=0.3, rollback='site'), fake)

    assert failed
    assert [(e['name'], e['status']) for e in res['rollback']] == [
        ('blog.service', 'removed'), ('shop.service', 'removed')]
    assert ['stop', 'shop.socket'] in fake.calls and ['disable', 'shop.service'] in fake.calls
    assert res['rollback'][1]['link_removed'] is None        # shop's current was never switched
    assert fake.calls.count(['daemon-reload']) == 1
    assert ('restart', 'shop.service') not in fake.mutations
    assert 'shop.service had no previous release: stopped and disabled shop.socket and shop.service, removed %s; ' \
        % units[1]['restore'][0]['path'] in res['msg']


def test_fresh_site_without_rollback_and_non_fresh_site_are_untouched(servers, fake, tmp_path):
    app = HealthApp()
    app.route('/readyz', const(503))
    srv = servers(app)
    site, unit_file, _env = _fresh_site(tmp_path, 'blog')
    fake.unit('blog.service')
    unit = dict(name='blog.service', readiness_url=srv.url('/readyz'), fresh=True, socket='blog.socket',
                link=str(site / 'current'), link_target=str(site / 'releases' / '1.0.0'),
                restore=[dict(path=str(unit_file))])

    failed, res, _took = run_module(module_args([unit], timeout=0.3), fake)   # rollback=none
    assert failed and 'rollback' not in res
    assert _retire_calls(fake) == [] and unit_file.exists() and os.path.islink(unit['link'])

    fake.calls[:] = []
    os.unlink(unit['link'])                 # as before the first run: no current yet
    failed, res, _took = run_module(module_args([dict(unit, fresh=False)], timeout=0.3, rollback='site'), fake)
    assert failed and res['rollback'][0]['status'] == 'skipped'
    assert [c for c in fake.calls if c[0] in ('stop', 'disable')] == [] and not unit_file.exists()


def test_fresh_site_check_mode_changes_nothing(servers, fake, tmp_path):
    site, unit_file, _env = _fresh_site(tmp_path, 'blog')
    fake.unit('blog.service')
    args = module_args([dict(name='blog.service', readiness_url='http://127.0.0.1:9/', fresh=True,
                             socket='blog.socket', link=str(site / 'current'),
                             link_target=str(site / 'releases' / '1.0.0'), restore=[dict(path=str(unit_file))])],
                       rollback='site')
    args['_ansible_check_mode'] = True
    failed, res, _took = run_module(args, fake)
    assert not failed and all(c[0] == 'show' for c in fake.calls) and unit_file.exists()


# --------------------------------------------------------------------------
# stop_units: units of a strategy the site left
# --------------------------------------------------------------------------

def test_only_a_running_stop_unit_is_stopped(servers, fake):
    app = HealthApp()
    app.route('/readyz', const(200))
    srv = servers(app)
    fake.unit('blog.service', ActiveState='active', SubState='running')
    # Its unit file removed by site_files already: not loaded. Stopping it would fail.
    fake.unit('blog@19001.service', LoadState='not-found', ActiveState='inactive')
    fake.fail[('stop', 'blog@19001.service')] = (5, '', 'Failed to stop blog@19001.service: Unit not loaded.\n')
    fake.unit('blog@19002.service', ActiveState='inactive', SubState='dead')       # loaded, not running
    fake.fail[('stop', 'blog@19002.service')] = (1, '', 'should not be stopped\n')
    fake.unit('blog@19003.service', ActiveState='active', SubState='running')       # still running

    failed, res, _took = run_module(module_args([dict(
        name='blog.service', readiness_url=srv.url('/readyz'),
        stop_units=['blog@19001.service', 'blog@19002.service', 'blog@19003.service'])]), fake)

    assert not failed, res['msg']
    assert res['results'][0]['status'] == 'ready' and res['rolled'] == ['blog.service']
    assert fake.mutations == [('stop', 'blog@19003.service'), ('restart', 'blog.service')]
    # each one looked at before anything is stopped
    shown = [c[-1] for c in fake.calls[:3]]
    assert [c[0] for c in fake.calls[:3]] == ['show'] * 3
    assert shown == ['blog@19001.service', 'blog@19002.service', 'blog@19003.service']
    assert fake.units['blog@19003.service'].current()['ActiveState'] == 'inactive'


@pytest.mark.parametrize('state', ['activating', 'deactivating', 'reloading'])
def test_a_stop_unit_in_transition_is_stopped(servers, fake, state):
    app = HealthApp()
    app.route('/readyz', const(200))
    srv = servers(app)
    fake.unit('blog.service', ActiveState='active', SubState='running')
    fake.unit('blog@19001.service', ActiveState=state)
    failed, res, _took = run_module(module_args([dict(
        name='blog.service', readiness_url=srv.url('/readyz'), stop_units=['blog@19001.service'])]), fake)
    assert not failed, res['msg']
    assert fake.mutations == [('stop', 'blog@19001.service'), ('restart', 'blog.service')]


# --------------------------------------------------------------------------
# the old process's stop is not the new one's time; a queued socket
# --------------------------------------------------------------------------

def _slow_stopping_restart(fake, unit_name, stop_after, ready_after=0.1):
    """A restart whose old main process (a real one) takes *stop_after*
    seconds to exit; the new main process is a real one too."""
    def restart(f, unit):
        old = unit.proc
        new = subprocess.Popen(['sleep', '30'])
        f.procs.append(new)
        unit.proc = new
        unit.set(ActiveState='deactivating', SubState='stop-sigterm')

        def kill():
            if old is not None:
                old.kill()
                old.wait()
        timer = threading.Timer(stop_after, kill)
        timer.daemon = True
        timer.start()
        unit.at(stop_after, ActiveState='activating', SubState='start', MainPID=new.pid, NRestarts=0)
        unit.at(stop_after + ready_after, ActiveState='active', SubState='running')
    fake.on('restart', unit_name, restart)


def test_ready_timeout_counts_once_the_old_process_is_gone(servers, fake):
    """A drain longer than the ready timeout is the old release's, not the new one's."""
    app = HealthApp()
    app.route('/readyz', const(200))
    srv = servers(app)
    fake.with_process('blog.service')
    _slow_stopping_restart(fake, 'blog.service', stop_after=0.8)

    failed, res, _took = run_module(module_args([dict(
        name='blog.service', readiness_url=srv.url('/readyz'), timeout=0.5, stop_timeout=5)]), fake)

    assert not failed, res['msg']
    result = res['results'][0]
    assert result['time_to_stop'] >= 0.75 and result['time_to_ready'] >= result['time_to_stop']


def test_an_old_process_that_outlives_its_stop_timeout_fails_naming_it(servers, fake, monkeypatch):
    monkeypatch.setattr(rolling, 'STOP_MARGIN', 0.2)
    app = HealthApp()
    app.route('/readyz', const(200))
    srv = servers(app)
    unit = fake.with_process('blog.service')
    pid = unit.proc.pid
    fake.on('restart', 'blog.service', lambda f, u: u.set(ActiveState='deactivating', SubState='stop-sigterm'))

    failed, res, took = run_module(module_args([dict(
        name='blog.service', readiness_url=srv.url('/readyz'), timeout=30, stop_timeout=0.3)]), fake)

    assert failed and 0.45 <= took < 5
    assert 'old main process %d still runs 0.5s after the restart' % pid in res['msg']
    assert res['results'][0]['status'] == 'timeout' and res['results'][0]['elapsed'] >= 0.45


def test_rollback_waits_for_the_failed_release_to_stop_then_for_its_own_ready_timeout(servers, fake, tmp_path):
    """The failed release stops slowly (longer than the ready timeout): the
    previous release still gets its whole ready timeout, and the rollback
    reports it serving. (Ready timeout 1.5 s, stop 2 s: with 0.6 s and 1 s the
    previous release's readiness missed 0.6 s beside three Molecule scenarios.)"""
    ready_timeout, stop_after = 1.5, 2.0
    app = HealthApp()
    srv = servers(app)
    link, target = _releases(tmp_path, 'blog')
    fake.with_process('blog.service')
    app.route('/readyz', _ready_on_v1(link))
    calls = []

    def restart(f, unit):
        calls.append(1)
        if len(calls) == 1:       # the deploy: v1 stops at once, v2 never comes ready
            f.default_restart(f, unit)
            new = subprocess.Popen(['sleep', '30'])
            f.procs.append(new)
            unit.proc = new
            unit.at(0.06, MainPID=new.pid)
        else:                     # the rollback: v2 takes 1 s to stop, v1 is ready soon after
            _slow_stopping_restart(f, 'blog.service', stop_after=stop_after)
            f.hooks[('restart', 'blog.service')](f, unit)
    fake.on('restart', 'blog.service', restart)

    failed, res, _took = run_module(module_args([dict(
        name='blog.service', readiness_url=srv.url('/readyz'), timeout=ready_timeout, stop_timeout=5,
        link=link, link_target=target, restore=_site_files(tmp_path, 'blog'))], rollback='site'), fake)

    assert failed
    assert len(calls) == 2
    back = res['rollback'][0]
    assert back['status'] == 'ready' and back['version'] == 'v1', back
    assert back['time_to_stop'] >= stop_after - 0.05 and back['time_to_ready'] > back['time_to_stop']
    # from the deploy's restart: the failed release's ready timeout, its stop, the previous release's start
    assert back['time_to_recover'] >= ready_timeout + back['time_to_ready']
    assert res['msg'].startswith('rolled back blog.service to v1, which is serving again')
    assert 'ROLLBACK' not in res['msg']


def test_a_queued_public_socket_is_polled_with_short_timeouts(fake):
    """A socket that accepts connections in the kernel but whose process never
    accept()s (the public socket of a starting server) answers nothing: each
    poll gives up after 0.5 s, not after request_timeout, and the start grace
    then ends the wait."""
    import socket as _socket
    listener = _socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(64)
    url = 'http://127.0.0.1:%d' % listener.getsockname()[1]
    fake.unit('blog.service', ActiveState='active', SubState='running')
    fake.on('restart', 'blog.service', lambda f, u: u.set(ActiveState='active', SubState='running'))
    try:
        failed, res, took = run_module(module_args([dict(
            name='blog.service', readiness_url=url + '/readyz', liveness_url=url + '/livez', liveness_grace=0.5)],
            timeout=30, request_timeout=5), fake)
    finally:
        listener.close()

    assert failed and took < 4.5, took
    assert 'never answered 200 within the 0.5s start grace' in res['msg']
    assert res['results'][0]['liveness'] == 'timeout' and res['results'][0]['readiness'] == 'timeout'


def test_after_a_first_answer_polls_wait_the_whole_request_timeout(servers, fake):
    """A health endpoint that answered once and then answers slowly is not
    given up on after 0.5 s: a loaded app's answer may take longer."""
    app = HealthApp()
    app.route('/readyz', seq(503, 503))
    srv = servers(app)
    fake.unit('blog.service', ActiveState='active', SubState='running')
    fake.on('restart', 'blog.service', lambda f, u: u.set(ActiveState='active', SubState='running'))
    slow = []
    real_handle = app.handle

    def handle(path):
        status = real_handle(path)
        if app.counts['/readyz'] == 3:
            slow.append(1)
            time.sleep(0.8)
        return status
    app.handle = handle

    failed, res, _took = run_module(module_args([dict(name='blog.service', readiness_url=srv.url('/readyz'))],
                                                request_timeout=2), fake)

    assert not failed, res['msg']
    assert slow and res['results'][0]['passes'] == 3 and res['results'][0]['polls'] == 5


CRASH_LOOP = """
import os, sys, time
# A pre-fork master whose workers die at start, replaced as they die.
while True:
    pid = os.fork()
    if pid == 0:
        time.sleep(0.03)
        os._exit(1)
    os.waitpid(pid, 0)
"""


def crash_loop_master(fake, monkeypatch):
    """Start CRASH_LOOP; the worker watch reads its process and children as the unit's cgroup."""
    from ansible_collections.onebox.deploy.plugins.module_utils import workers
    master = subprocess.Popen([sys.executable, '-c', CRASH_LOOP])
    fake.procs.append(master)

    def children(_path):
        try:
            with open('/proc/%d/task/%d/children' % (master.pid, master.pid)) as handle:
                return set([master.pid] + [int(p) for p in handle.read().split()])
        except (IOError, OSError):
            return set()
    monkeypatch.setattr(workers, 'procs_path', lambda group, roots=None: group and '/fake/cgroup.procs')
    monkeypatch.setattr(workers, 'read_pids', children)
    return master


def test_workers_that_keep_dying_fail_the_unit_at_once(servers, fake, monkeypatch):
    """The master lives, systemd sees an active unit, the public socket queues:
    only the worker churn in the unit's cgroup tells, and it tells at once."""
    import socket as _socket
    listener = _socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(64)
    url = 'http://127.0.0.1:%d' % listener.getsockname()[1]
    master = crash_loop_master(fake, monkeypatch)
    fake.unit('blog.service', ActiveState='active', SubState='running')

    def restart(f, unit):
        unit.set(ActiveState='active', SubState='running', MainPID=master.pid,
                 ControlGroup='/system.slice/blog.service')
    fake.on('restart', 'blog.service', restart)
    try:
        failed, res, took = run_module(module_args([dict(
            name='blog.service', readiness_url=url + '/readyz', liveness_url=url + '/livez')],
            timeout=30, liveness_grace=20), fake)
    finally:
        listener.close()

    assert failed and took < 3, (took, res.get('msg'))
    assert 'its workers keep dying' in res['msg'] and 'main process %d' % master.pid in res['msg']


@pytest.mark.parametrize('case', ['workers keep dying', 'master exited', 'answered 503'])
def test_a_failed_release_that_never_served_and_still_runs_is_killed_not_drained(
        servers, fake, tmp_path, monkeypatch, case):
    """A pre-fork master whose workers keep dying served nothing: the rollback kills it (in a crash loop
    gunicorn 20.1 may never finish its drain). A master that exited already leaves nothing to kill, and
    one that answered (503) is stopped the usual way, with its drain."""
    app = HealthApp()
    link, target = _releases(tmp_path, 'blog')
    app.route('/readyz', _ready_on_v1(link))
    port = free_port()
    url = 'http://127.0.0.1:%d/readyz' % port
    if case == 'answered 503':
        servers(app, port)                    # answers 503 for v2, 200 for v1
    fake.with_process('blog.service')
    master = crash_loop_master(fake, monkeypatch)
    calls = []

    def restart(f, unit):
        calls.append(1)
        if len(calls) == 1 and case == 'workers keep dying':     # v2: the master lives, its workers die
            f.kill_later(unit, 0)
            unit.proc = master
            unit.set(ActiveState='active', SubState='running', MainPID=master.pid,
                     ControlGroup='/system.slice/blog.service')
            return
        if len(calls) == 1 and case == 'master exited':          # v2: systemd restarts it
            f.kill_later(unit, 0)
            unit.set(ActiveState='activating', SubState='start', MainPID=4194010)
            unit.at(0.05, ActiveState='activating', SubState='auto-restart', NRestarts=1, MainPID=0)
            return
        if case != 'answered 503':
            servers(app, port)                # v1 again: its health port opens
        f.default_restart(f, unit)
    fake.on('restart', 'blog.service', restart)

    def start(f, unit):                       # after the kill: v1 again, its health port opens
        servers(app, port)
        f.default_start(f, unit)
    fake.on('start', 'blog.service', start)

    # The churn must be seen before the ready timeout: 4 worker exits sampled every 0.05 s took
    # longer than 0.6 s on a machine under load (status 'timeout'); a release that answers 503
    # is only given up at its timeout, so that case keeps it short.
    timeout = 0.6 if case == 'answered 503' else 5
    failed, res, _took = run_module(module_args([dict(
        name='blog.service', readiness_url=url, timeout=timeout, link=link, link_target=target,
        restore=_site_files(tmp_path, 'blog'))], rollback='site'), fake)

    assert failed
    assert res['rollback'][0]['status'] == 'ready', res['msg']
    verbs = [c[0] for c in fake.calls if c[0] in ('kill', 'restart', 'stop', 'reset-failed', 'start')]
    if case == 'workers keep dying':
        assert res['results'][0]['answered'] is False and res['results'][0]['status'] == 'failed'
        assert 'its workers keep dying' in res['msg']
        assert [c for c in fake.calls if c[0] == 'kill'] == [['kill', '--signal=SIGKILL', 'blog.service']]
        # a stop job first (no automatic restart of the killed release), the kill, its failed state reset
        assert verbs == ['restart', 'stop', 'kill', 'reset-failed', 'start']
        assert res['rollback'][0].get('killed') is True
        assert 'never answered a request and was killed' in res['msg']
    else:
        assert res['results'][0]['answered'] is (case == 'answered 503')
        assert verbs == ['restart', 'restart'] and 'killed' not in res['rollback'][0]


# --------------------------------------------------------------------------
# a rollback that restores data (units[].data)
# --------------------------------------------------------------------------

def _data_site(tmp_path, monkeypatch):
    """notes serving v2 on its own data (content 'v2 data'), a snapshot taken when v1 was replaced ('v1 data')."""
    import grp
    import json
    import pwd
    from ansible_collections.onebox.deploy.plugins.module_utils import snapshots as D
    monkeypatch.setattr(D, 'RUNTIME_DIR', str(tmp_path / 'run'))
    site = tmp_path / 'notes'
    for version in ('v1', 'v2'):
        (site / 'releases' / version).mkdir(parents=True)
    os.symlink(str(site / 'releases' / 'v2'), str(site / 'current'))
    (site / 'shared').mkdir()
    (site / 'shared' / 'notes.db').write_text('v2 data')
    (site / 'shared' / 'notes.db-wal').write_text('v2 wal')
    snap = site / 'snapshots' / 'S-v1-to-v2'
    (snap / 'shared').mkdir(parents=True)
    (snap / 'shared' / 'notes.db').write_text('v1 data')
    (snap / 'snapshot.json').write_text(json.dumps(dict(files=[dict(path='shared/notes.db')], not_created=[],
                                                        from_version='v1', to_version='v2', taken_at=1.0)))
    data = dict(site='notes', site_dir=str(site), user=pwd.getpwuid(os.getuid()).pw_name,
                group=grp.getgrgid(os.getgid()).gr_name, unit_file='notes.service', files=['shared/notes.db'],
                snapshot=str(snap), written_by='v2', target='v1')
    return site, data


def test_a_unit_with_data_is_stopped_swapped_and_started_with_every_start_held(servers, fake, tmp_path, monkeypatch):
    site, data = _data_site(tmp_path, monkeypatch)
    app = HealthApp()
    app.route('/readyz', const(200))
    srv = servers(app)
    fake.with_process('notes.service')
    held = []

    def stop(f, unit):
        dropin = tmp_path / 'run' / 'systemd' / 'system' / 'notes.service.d' / '50-onebox-data-hold.conf'
        held.append((dropin.exists(), (site / 'shared' / 'notes.db').read_text()))
        f.default_stop(f, unit)
    fake.on('stop', 'notes.service', stop)

    failed, res, _took = run_module(module_args([dict(
        name='notes.service', readiness_url=srv.url('/readyz'), link=str(site / 'current'),
        link_target=str(site / 'releases' / 'v1'), data=data)], rollback='site'), fake)

    assert not failed, res['msg']
    # held before the stop, the live data still the old one then; one stop and one start, no restart
    assert held == [(True, 'v2 data')]
    assert fake.mutations == [('stop', 'notes.service'), ('start', 'notes.service')]
    assert [c for c in fake.calls if c == ['daemon-reload']] == [['daemon-reload']] * 2
    assert (site / 'shared' / 'notes.db').read_text() == 'v1 data'
    assert not (site / 'shared' / 'notes.db-wal').exists()
    swap = res['results'][0]['data']
    assert open(os.path.join(swap['aside'], 'shared', 'notes.db')).read() == 'v2 data'
    assert open(os.path.join(swap['aside'], 'shared', 'notes.db-wal')).read() == 'v2 wal'
    assert os.readlink(str(site / 'current')).endswith('/v1')
    assert not (tmp_path / 'run' / 'systemd' / 'system' / 'notes.service.d').exists()


def test_a_unit_with_data_that_does_not_come_ready_gets_its_own_data_back(servers, fake, tmp_path, monkeypatch):
    site, data = _data_site(tmp_path, monkeypatch)
    app = HealthApp()
    app.route('/readyz', lambda n: 200 if os.readlink(str(site / 'current')).endswith('/v2') else 503)
    srv = servers(app)
    fake.with_process('notes.service')

    failed, res, _took = run_module(module_args([dict(
        name='notes.service', readiness_url=srv.url('/readyz'), link=str(site / 'current'),
        link_target=str(site / 'releases' / 'v1'), data=data)], timeout=0.5, rollback='site'), fake)

    assert failed
    assert fake.mutations == [('stop', 'notes.service'), ('start', 'notes.service'),
                              ('stop', 'notes.service'), ('start', 'notes.service')]
    assert os.readlink(str(site / 'current')).endswith('/v2')
    assert (site / 'shared' / 'notes.db').read_text() == 'v2 data'
    assert (site / 'shared' / 'notes.db-wal').read_text() == 'v2 wal'
    entry = res['rollback'][0]
    assert entry['status'] == 'ready' and entry['version'] == 'v2'
    assert open(os.path.join(entry['data']['aside'], 'shared', 'notes.db')).read() == 'v1 data'
    assert res['msg'].startswith('rolled back notes.service to v2, which is serving again (ready in ')
    assert 'with its own data files back (the restored ones are kept in %s)' % entry['data']['aside'] in res['msg']


def test_a_snapshot_that_cannot_be_restored_fails_the_unit_before_it_is_stopped(servers, fake, tmp_path,
                                                                                monkeypatch):
    site, data = _data_site(tmp_path, monkeypatch)
    os.unlink(os.path.join(data['snapshot'], 'shared', 'notes.db'))
    app = HealthApp()
    app.route('/readyz', const(200))
    srv = servers(app)
    fake.with_process('notes.service')

    failed, res, _took = run_module(module_args([dict(
        name='notes.service', readiness_url=srv.url('/readyz'), link=str(site / 'current'),
        link_target=str(site / 'releases' / 'v1'), data=data)], rollback='site'), fake)

    assert failed and 'notes.service: data: ' in res['msg']
    assert ('stop', 'notes.service') not in fake.mutations
    assert (site / 'shared' / 'notes.db').read_text() == 'v2 data'     # nothing moved
    assert os.readlink(str(site / 'current')).endswith('/v2')
    assert res['rollback'][0]['status'] == 'ready' and 'data' not in res['rollback'][0]


# --------------------------------------------------------------------------
# scheduled jobs: the roll waits for a run under way
# --------------------------------------------------------------------------

def test_the_roll_waits_for_a_running_job_before_it_switches_the_site(servers, fake, tmp_path):
    app = HealthApp()
    app.route('/readyz', const(200))
    srv = servers(app)
    fake.with_process('blog.service')
    job = fake.unit('blog_nightly.service', ActiveState='activating', SubState='start', MainPID=4194100)
    job.at(0.4, ActiveState='inactive', SubState='dead', MainPID=0)
    link = tmp_path / 'current'
    link.symlink_to(str(tmp_path / 'v1'))
    (tmp_path / 'v1').mkdir()
    (tmp_path / 'v2').mkdir()
    seen = {}

    def restart(f, unit):
        seen['job'] = f.units['blog_nightly.service'].current()['ActiveState']
        f.default_restart(f, unit)
    fake.on('restart', 'blog.service', restart)
    failed, res, _took = run_module(module_args([dict(
        name='blog.service', readiness_url=srv.url('/readyz'), link=str(link), link_target=str(tmp_path / 'v2'),
        jobs=[dict(unit='blog_nightly.service', timeout=30)])]), fake)
    assert not failed, res['msg']
    assert seen['job'] == 'inactive'
    (result,) = res['results']
    assert 0.3 <= result['jobs_waited']['blog_nightly.service'] <= 3, result
    # the job was never stopped or restarted
    assert not [c for c in fake.calls if c[-1] == 'blog_nightly.service' and c[0] != 'show']
    assert os.readlink(str(link)) == str(tmp_path / 'v2')


def test_an_idle_job_costs_one_look_and_no_wait(servers, fake):
    app = HealthApp()
    app.route('/readyz', const(200))
    srv = servers(app)
    fake.with_process('blog.service')
    fake.unit('blog_nightly.service', ActiveState='inactive')
    failed, res, took = run_module(module_args([dict(
        name='blog.service', readiness_url=srv.url('/readyz'), jobs=[dict(unit='blog_nightly.service', timeout=30)])]),
        fake)
    assert not failed, res['msg']
    assert 'jobs_waited' not in res['results'][0]
    assert [c for c in fake.calls if c[-1] == 'blog_nightly.service'] == [
        ['show', '-p', 'ActiveState', '-p', 'SubState', 'blog_nightly.service']]


def test_a_job_that_outlives_its_bound_fails_the_roll_before_the_site_changes(servers, fake, tmp_path):
    app = HealthApp()
    app.route('/readyz', const(200))
    srv = servers(app)
    fake.with_process('blog.service')
    fake.unit('blog_nightly.service', ActiveState='activating', SubState='start')
    link = tmp_path / 'current'
    (tmp_path / 'v1').mkdir()
    (tmp_path / 'v2').mkdir()
    link.symlink_to(str(tmp_path / 'v1'))
    # bound: timeout 0.2 + stop_timeout 0.1 + rolling.STOP_MARGIN
    rolling.STOP_MARGIN, margin = 0.1, rolling.STOP_MARGIN
    try:
        failed, res, _took = run_module(module_args([dict(
            name='blog.service', readiness_url=srv.url('/readyz'), link=str(link), link_target=str(tmp_path / 'v2'),
            stop_timeout=0.1, jobs=[dict(unit='blog_nightly.service', timeout=0.2)])], rollback='none'), fake)
    finally:
        rolling.STOP_MARGIN = margin
    assert failed
    assert 'blog.service: job blog_nightly.service still runs after' in res['msg'], res['msg']
    assert 'the site was not switched to its new release' in res['msg']
    assert os.readlink(str(link)) == str(tmp_path / 'v1')
    assert fake.mutations == []


def test_a_job_waiting_for_the_deploy_lock_is_not_waited_for(servers, fake):
    """A run in ExecStartPre= waits for the deploy's lock: waiting for it would deadlock until its timeout."""
    app = HealthApp()
    app.route('/readyz', const(200))
    srv = servers(app)
    fake.with_process('blog.service')
    fake.unit('blog_nightly.service', ActiveState='activating', SubState='start-pre')
    failed, res, took = run_module(module_args([dict(
        name='blog.service', readiness_url=srv.url('/readyz'), jobs=[dict(unit='blog_nightly.service', timeout=30)])]),
        fake)
    assert not failed, res['msg']
    assert 'jobs_waited' not in res['results'][0] and took < 3
    assert rolling.job_runs(dict(ActiveState='activating', SubState='start'))
    assert rolling.job_runs(dict(ActiveState='deactivating', SubState='stop-sigterm'))
    assert not rolling.job_runs(dict(ActiveState='inactive', SubState='dead'))
