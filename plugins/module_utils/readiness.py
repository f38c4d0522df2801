# -*- coding: utf-8 -*-
# Copyright (c) onebox.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Side-effect-free HTTP readiness / liveness / probe helpers.

Used by ``onebox.deploy.rolling_restart`` on the target host, so this file
must stay Python 3.8 compatible and import only the standard library (and
the collection's own module_utils).

Conventions
-----------
* A *result* of one HTTP request is either an ``int`` (the HTTP status code)
  or a ``str`` naming what went wrong (``"ConnectionRefusedError"``,
  ``"RemoteDisconnected"``, ``"timeout"``, ...), see :func:`error_name`.
* Every time measurement uses a monotonic clock; the polling loop accepts an
  injectable ``clock`` and ``sleep`` so it can be tested deterministically.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import socket
import ssl
import threading
import time

# systemctl's output is parsed in module_utils/systemd.py; parse_show and
# RUNNING_STATES are re-exported here for callers of this module.
from ansible_collections.onebox.deploy.plugins.module_utils.systemd import RUNNING_STATES, parse_show

try:  # Python 3
    from http.client import HTTPConnection, HTTPSConnection
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover - Python 2 is not supported on targets
    HTTPConnection = HTTPSConnection = None
    urlsplit = None


#: A liveness endpoint that answered 200 (or whose start grace is over) and
#: then failed more than this many polls in a row means the process is dead/hung.
LIVENESS_MAX_FAILURES = 3

#: Default seconds after the restart/start command during which liveness
#: failures of an endpoint that never answered 200 are taken for a slow start.
LIVENESS_GRACE = 10.0


def error_name(exc):
    """Short, stable name for an exception raised by an HTTP request."""
    if isinstance(exc, socket.timeout):  # alias of TimeoutError on 3.10+
        return 'timeout'
    name = type(exc).__name__
    if name == 'TimeoutError':
        return 'timeout'
    return name


def describe(result):
    """``200`` -> ``"status_200"``; exception names are returned unchanged."""
    if isinstance(result, int):
        return 'status_%d' % result
    return str(result)


def _split(url):
    parts = urlsplit(url)
    if parts.scheme not in ('http', 'https'):
        raise ValueError('unsupported URL scheme in %r (need http or https)' % url)
    if not parts.hostname:
        raise ValueError('no host in URL %r' % url)
    path = parts.path or '/'
    if parts.query:
        path += '?' + parts.query
    return parts.scheme, parts.hostname, parts.port, path


def validate_url(url, instances=None):
    """None when *url* is usable by :func:`http_get` (or is None), else why not.

    A URL with ``{instance}`` is checked once per instance name (an instance
    name may be a port number).
    """
    if url is None:
        return None
    for instance in (instances or ['x'] if '{instance}' in url else [None]):
        try:
            _split(substitute_instance(url, instance))
        except ValueError as exc:
            return '%s (instance %s)' % (exc, instance) if instance else str(exc)
    return None


def _connection(scheme, host, port, timeout):
    if scheme == 'https':
        return HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
    return HTTPConnection(host, port, timeout=timeout)


def http_get(url, timeout=2.0, headers=None, clock=time.monotonic):
    """One GET on a fresh connection (``Connection: close``).

    Returns ``(result, latency_seconds)`` where *result* is the HTTP status
    (int) or the exception name (str). Never raises for network errors.
    """
    scheme, host, port, path = _split(url)
    hdrs = {'Connection': 'close', 'User-Agent': 'onebox-rolling-restart'}
    if headers:
        hdrs.update(headers)
    start = clock()
    conn = None
    try:
        conn = _connection(scheme, host, port, timeout)
        conn.request('GET', path, headers=hdrs)
        resp = conn.getresponse()
        resp.read()
        result = resp.status
    except Exception as exc:  # network errors are data here, not failures
        result = error_name(exc)
    finally:
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
    return result, clock() - start


class WaitResult(object):
    """Outcome of :func:`wait_ready`.

    ``status`` is ``"ready"``, ``"timeout"`` or ``"aborted"``; ``reason`` is a
    human readable explanation for the latter two.
    """

    def __init__(self, status, reason, polls, passes, elapsed):
        self.status = status
        self.reason = reason
        self.polls = polls
        self.passes = passes
        self.elapsed = elapsed

    @property
    def ready(self):
        return self.status == 'ready'

    def __repr__(self):  # pragma: no cover - debugging aid
        return 'WaitResult(%r, %r, polls=%d, passes=%d, elapsed=%.3f)' % (
            self.status, self.reason, self.polls, self.passes, self.elapsed)


def wait_ready(check, passes=3, interval=0.1, timeout=60.0, clock=time.monotonic, sleep=time.sleep):
    """Poll ``check(remaining)`` every *interval* seconds.

    ``check`` receives the seconds left before *timeout* and returns
    ``(ok, abort_reason)``: *ok* true counts as a pass, *abort_reason* (a
    non-empty string) stops waiting immediately (fail fast). Ready once
    *passes* consecutive polls were ok; a failed poll resets the streak.
    Polls are scheduled on a fixed grid (``start + n * interval``) so slow
    checks do not make the loop drift; at least one poll always happens.
    """
    passes = max(1, int(passes))
    start = clock()
    deadline = start + timeout
    streak = 0
    polls = 0
    tick = 0
    while True:
        polls += 1
        ok, abort = check(max(0.0, deadline - clock()))
        if abort:
            return WaitResult('aborted', abort, polls, streak, clock() - start)
        streak = streak + 1 if ok else 0
        if streak >= passes:
            return WaitResult('ready', None, polls, streak, clock() - start)
        now = clock()
        if now >= deadline:
            return WaitResult('timeout', 'not ready within %gs' % timeout, polls, streak, now - start)
        tick += 1
        next_tick = start + tick * interval
        if next_tick <= now:  # check was slower than interval: skip missed ticks
            tick = int((now - start) / interval) + 1
            next_tick = start + tick * interval
        sleep(max(0.0, min(next_tick, deadline) - now))


class LivenessTracker(object):
    """Decides when a liveness endpoint says "this process is gone".

    Failures only count once the tracker is *armed*: the endpoint answered
    200 at least once, or *grace* seconds have passed since the start (the
    *elapsed* argument of :meth:`update`). The unit state is deliberately not
    used: with ``Type=exec`` "active" only means exec() succeeded, long before
    the app listens. More than *max_failures* armed failures in a row -> dead.
    """

    def __init__(self, max_failures=LIVENESS_MAX_FAILURES, grace=LIVENESS_GRACE):
        self.max_failures = max_failures
        self.grace = grace
        self.seen_ok = False
        self.failures = 0
        self.last = None

    def update(self, result, elapsed=None):
        """Record one liveness result, *elapsed* seconds after the start;
        returns a reason string when dead."""
        self.last = result
        if result == 200:
            self.seen_ok = True
            self.failures = 0
            return None
        grace_over = self.grace is not None and elapsed is not None and elapsed >= self.grace
        if not (self.seen_ok or grace_over):
            return None
        self.failures += 1
        if self.failures > self.max_failures:
            return 'liveness failed %d polls in a row (last: %s)%s' % (
                self.failures, describe(result),
                ' after answering 200' if self.seen_ok
                else ' and never answered 200 within the %gs start grace' % self.grace)
        return None


def pid_alive(pid):
    """True while *pid* exists and is not a zombie (Linux ``/proc``)."""
    if not pid or int(pid) <= 0:
        return False
    try:
        with open('/proc/%d/stat' % int(pid), 'r') as handle:
            stat = handle.read()
    except (IOError, OSError):
        return False
    # "pid (comm) S ..." - comm may contain spaces/parentheses
    fields = stat[stat.rfind(')') + 2:].split()
    return not fields or fields[0] not in ('Z', 'X')


def percentile(values, pct):
    """Nearest-rank percentile of *values* (need not be sorted); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = int(math.ceil(pct / 100.0 * len(ordered)))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def is_failure(result):
    """Probe verdict: exceptions and HTTP >= 400 are failures."""
    return not isinstance(result, int) or result >= 400


class _WorkerStats(object):
    def __init__(self, targets=0):
        self.sent = 0
        self.failed = 0
        self.errors = {}
        self.latencies = []
        # per target index: [sent, failed, {kind: count}]
        self.per_target = [[0, 0, {}] for _target in range(targets)]


class Probe(object):
    """Background load: *concurrency* threads sending GETs back to back.

    Each thread keeps one keep-alive ``HTTPConnection`` per host and cycles
    through *urls*; after an error or a ``Connection: close`` response it
    reconnects. Every request counts in ``sent``; exceptions and HTTP >= 400
    count in ``failed`` and in ``errors`` by kind (``status_503``,
    ``ConnectionRefusedError``, ``RemoteDisconnected``, ``timeout``...).
    Latencies (ms) are those of requests that got an HTTP response.
    After an exception a thread pauses *error_backoff* seconds so a dead
    endpoint does not turn into a busy loop.
    The same counts are kept per URL; *labels* (one per URL, optional) name
    the site behind each URL in :meth:`summary` and :func:`probe_failures`.
    """

    def __init__(self, urls, concurrency=4, headers=None, request_timeout=2.0,
                 error_backoff=0.01, clock=time.monotonic, labels=None):
        if not urls:
            raise ValueError('probe needs at least one URL')
        if labels is not None and len(labels) != len(urls):
            raise ValueError('probe needs one label per URL (%d labels for %d URLs)' % (len(labels), len(urls)))
        self.urls = list(urls)
        self.labels = list(labels) if labels is not None else [None] * len(self.urls)
        self.targets = [_split(u) for u in urls]
        self.concurrency = max(1, int(concurrency))
        self.headers = dict(headers or {})
        self.request_timeout = request_timeout
        self.error_backoff = error_backoff
        self.clock = clock
        self._stop = threading.Event()
        self._threads = []
        self._stats = []
        self.started = None
        self.stopped = None

    def start(self):
        self.started = self.clock()
        for idx in range(self.concurrency):
            stats = _WorkerStats(len(self.targets))
            self._stats.append(stats)
            thread = threading.Thread(target=self._worker, args=(idx, stats),
                                      name='onebox-probe-%d' % idx)
            thread.daemon = True
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self):
        """Stop the threads and return :meth:`summary`."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self.request_timeout + 5)
        if self.stopped is None:
            self.stopped = self.clock()
        return self.summary()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def summary(self):
        sent = failed = 0
        errors = {}
        latencies = []
        targets = [dict(url=url, label=label, sent=0, failed=0, errors={})
                   for url, label in zip(self.urls, self.labels)]
        for stats in self._stats:
            sent += stats.sent
            failed += stats.failed
            for kind, count in list(stats.errors.items()):
                errors[kind] = errors.get(kind, 0) + count
            latencies.extend(stats.latencies)
            for target, (t_sent, t_failed, t_errors) in zip(targets, list(stats.per_target)):
                target['sent'] += t_sent
                target['failed'] += t_failed
                for kind, count in list(t_errors.items()):
                    target['errors'][kind] = target['errors'].get(kind, 0) + count

        def ms(value):
            return None if value is None else round(value * 1000.0, 3)

        end = self.stopped if self.stopped is not None else self.clock()
        return dict(
            sent=sent,
            failed=failed,
            errors=errors,
            p50_ms=ms(percentile(latencies, 50)),
            p99_ms=ms(percentile(latencies, 99)),
            max_ms=ms(max(latencies) if latencies else None),
            duration=round(end - self.started, 3) if self.started is not None else 0.0,
            concurrency=self.concurrency,
            targets=targets,
        )

    def _worker(self, idx, stats):
        conns = {}
        pos = idx  # threads start at different URLs
        hdrs = {'User-Agent': 'onebox-rolling-restart-probe'}
        hdrs.update(self.headers)
        while not self._stop.is_set():
            index = pos % len(self.targets)
            scheme, host, port, path = self.targets[index]
            per_target = stats.per_target[index]
            pos += 1
            key = (scheme, host, port)
            start = self.clock()
            try:
                conn = conns.get(key)
                if conn is None:
                    conn = conns[key] = _connection(scheme, host, port, self.request_timeout)
                conn.request('GET', path, headers=hdrs)
                resp = conn.getresponse()
                resp.read()
                result = resp.status
                if resp.will_close:
                    conns.pop(key, None).close()
                stats.latencies.append(self.clock() - start)
            except Exception as exc:
                result = error_name(exc)
                bad = conns.pop(key, None)
                if bad is not None:
                    try:
                        bad.close()
                    except Exception:
                        pass
            stats.sent += 1
            per_target[0] += 1
            if is_failure(result):
                stats.failed += 1
                per_target[1] += 1
                kind = describe(result)
                stats.errors[kind] = stats.errors.get(kind, 0) + 1
                per_target[2][kind] = per_target[2].get(kind, 0) + 1
                if not isinstance(result, int):
                    self._stop.wait(self.error_backoff)
        for conn in conns.values():
            try:
                conn.close()
            except Exception:
                pass


def probe_failures(summary):
    """``"blog (http://...): timeout=4; http://...: status_503=1"`` from a
    :meth:`Probe.summary`: the targets that saw failures, each named by its
    label and URL (the URL alone without a label), errors sorted by kind."""
    parts = []
    for target in summary.get('targets') or []:
        if not target['failed']:
            continue
        name = '%s (%s)' % (target['label'], target['url']) if target.get('label') else target['url']
        parts.append('%s: %s' % (name, ', '.join('%s=%d' % kv for kv in sorted(target['errors'].items()))))
    return '; '.join(parts)


def same_address(url_a, url_b):
    """True when two URLs reach the same scheme, host and port."""
    try:
        return _split(url_a)[:3] == _split(url_b)[:3]
    except (ValueError, TypeError):
        return False


def substitute_instance(url, instance):
    """Replace the literal ``{instance}`` in *url* (no other formatting)."""
    if url is None or instance is None:
        return url
    return url.replace('{instance}', instance)


__all__ = [
    'LIVENESS_GRACE', 'LIVENESS_MAX_FAILURES', 'RUNNING_STATES', 'LivenessTracker', 'Probe', 'WaitResult',
    'describe', 'error_name', 'http_get', 'is_failure', 'parse_show', 'percentile',
    'pid_alive', 'probe_failures', 'same_address', 'substitute_instance', 'validate_url', 'wait_ready',
]
