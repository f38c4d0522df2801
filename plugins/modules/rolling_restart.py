#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onebox.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: rolling_restart
short_description: Restart socket-activated systemd services one by one, waiting for readiness
version_added: 0.1.0
description:
  - Restarts (or, with O(units[].strategy=overlap), replaces) the given systemd services strictly one after the
    other on a single host. The next unit is only touched once the previous one answered its readiness URL
    with HTTP 200 O(passes) times in a row.
  - Built for sites whose C(<site>.socket) owns the public port and whose C(<site>.service) (or C(<site>@<instance>.service))
    inherits it, so connections queue in the kernel while the process is replaced.
  - Fails fast, without waiting for the timeout, when the unit enters the C(failed) state, is crash-looping
    (C(SubState=auto-restart) or C(NRestarts) going up), stops (C(ActiveState=inactive), or C(SubState) V(dead) or
    V(exited), after it was seen starting), when the workers its main process forks keep dying before it came ready
    (4 of them seen in its cgroup, a pre-fork server whose app fails to load), or when O(units[].liveness_url) stops
    answering.
  - Until a health endpoint has answered at all, each of its polls waits at most 0.5 s (O(request_timeout) after
    that). On a public socket that no process accepts yet, a request waits in the backlog, and waiting longer tells
    nothing the next poll would not.
  - Stops at the first unit that does not come ready; later units are left untouched.
  - Optionally runs a background HTTP load O(probe) during the whole rollout and fails when it saw more failed
    requests than O(probe.max_failed).
author:
  - onebox.deploy contributors (!UNKNOWN)
requirements:
  - systemd (C(systemctl), optionally C(journalctl) for failure reports) on the target host.
options:
  units:
    description:
      - The units to roll, in this order.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - For O(units[].strategy=restart) the unit name, for example V(blog.service).
          - For O(units[].strategy=overlap) the site base name, for example V(blog); the module manages the template
            instances C(<name>@<instance>.service). A trailing V(@) or V(@.service) is ignored.
        type: str
        required: true
      readiness_url:
        description:
          - URL that answers HTTP 200 once the (new) process is ready to serve, and 503 during warm-up and drain
            (typically C(/readyz) on a loopback health port).
          - The literal text V({instance}) is replaced by the instance name (overlap strategy), so each instance can
            be asked on its own health port or path. For the overlap strategy the readiness URL should address the
            new instance only, otherwise the old instance answers for it.
        type: str
        required: true
      liveness_url:
        description:
          - Optional URL answering HTTP 200 while the process is alive (typically C(/livez)). V({instance}) is substituted
            as for O(units[].readiness_url).
          - Once it answered 200, or once O(liveness_grace) seconds have passed since the old main process is gone,
            more than 3 failed polls in a row make the module fail immediately instead of waiting for the timeout.
          - Before that its failures are taken for a slow start and ignored (the unit being C(active) does not count, since
            with C(Type=exec) it only means exec() succeeded). A crash is still caught at once from the unit state.
        type: str
      timeout:
        description:
          - Seconds to wait for this unit to come ready, counted from the moment its old main process is gone (with
            O(units[].strategy=overlap), from the start command). Overrides O(timeout).
        type: float
      liveness_grace:
        description:
          - Seconds after the old main process is gone (the start command, for overlap) during which failures of a
            O(units[].liveness_url) that never answered 200 are taken for a slow start. Overrides O(liveness_grace).
          - The playbooks set it from the site's own history (twice its usual time to ready, see the site role).
        type: float
      stop_timeout:
        description:
          - Seconds the old main process may take to stop (the unit's C(TimeoutStopSec=), after which systemd kills it).
            The module waits that long plus 5 s for it before it fails; only then the ready timeout starts.
        type: float
      strategy:
        description:
          - V(restart) runs C(systemctl restart --no-block <name>) and waits for the old main process to exit and the new
            one to become ready. The socket keeps accepting connections meanwhile.
          - V(overlap) starts the inactive instance of O(units[].instances) next to the running one (both share the socket),
            waits until it is ready, then stops the old instance(s). If the new instance does not come ready it is
            stopped again and the old one is left running.
        type: str
        choices: [restart, overlap]
        default: restart
      instances:
        description:
          - Instance names for O(units[].strategy=overlap). The first inactive one (searching after the running one) is
            started; if none is running, the first one.
        type: list
        elements: str
        default: [a, b]
      restart:
        description:
          - V(false) does not restart anything, it only waits until the unit (with the overlap strategy the running
            instance) is ready, for example after a deploy step that restarted it already.
        type: bool
        default: true
      link:
        description:
          - Path of a symlink (typically the site's C(current)) to point at O(units[].link_target) right before this
            unit is restarted, atomically (a new symlink renamed over the old one).
          - When the unit does not come ready, the symlink is pointed back at its previous target, so C(current)
            names the release that should be serving. Units after it are not touched, so their links keep their
            old releases too.
        type: path
      link_target:
        description:
          - The directory O(units[].link) should point to (the new release). Required with O(units[].link); must exist.
        type: path
      restore:
        description:
          - Files to put back when this unit is rolled back (see O(rollback)), typically the unit files and environment
            file a deploy just replaced, as returned by M(onebox.deploy.site_files) (its C(installed) per site).
          - Each entry names the installed O(units[].restore[].path) and the O(units[].restore[].backup) holding its
            previous content; without a backup the file did not exist before and is removed.
        type: list
        elements: dict
        default: []
        suboptions:
          path:
            description: The installed file.
            type: path
            required: true
          backup:
            description: Its previous content; null when the file is new.
            type: path
      fresh:
        description:
          - V(true) when the site had no release serving before this run (a first install).
          - When such a unit is rolled back (see O(rollback)), there is nothing to restart; its service unit(s)
            (O(units[].strategy=overlap), C(<name>@<instance>.service) for every instance of O(units[].instances))
            and its O(units[].socket) are stopped and then disabled before its O(units[].restore) files are removed,
            systemd reloads, and its O(units[].link) is removed when it points at O(units[].link_target). The release
            directory is kept. The rollback entry gets status V(removed).
        type: bool
        default: false
      socket:
        description:
          - The socket unit of the site, for example V(blog.socket). Stopped and disabled with the service when a
            O(units[].fresh) unit is rolled back; restarted with O(units[].restart_socket).
        type: str
      stop_units:
        description:
          - Service units the site no longer uses (after a switch between the V(restart) and V(overlap) strategies,
            or a changed health port), stopped right before this unit is replaced. Connections wait in the socket's
            backlog until the new process accepts them.
        type: list
        elements: str
        default: []
      jobs:
        description:
          - The site's scheduled jobs (the oneshot services its timers start). Before the unit's release switches,
            the module waits until none of them runs, so a run ends on the release it started with and is never
            stopped; each gets its O(units[].jobs[].timeout) plus the unit's O(units[].stop_timeout) and 5 s, after
            which the roll fails before this unit changed.
          - A job whose service is in C(start-pre) (waiting in its C(ExecStartPre=) for the deploy lock) does not
            run yet and is not waited for.
          - The time waited per job is returned in the unit's result as C(jobs_waited).
        type: list
        elements: dict
        default: []
        suboptions:
          unit:
            description: The job's service unit.
            type: str
            required: true
          timeout:
            description: The job's timeout in seconds (its C(TimeoutStartSec=)).
            type: float
            required: true
      restart_socket:
        description:
          - V(true) when the socket's settings changed (its address, backlog, ...). Right before this unit is
            replaced its service unit(s) are stopped and O(units[].socket) is restarted, so the socket is bound anew.
          - A rollback does not put the previous socket back.
        type: bool
        default: false
      data:
        description:
          - Restore the site's data from a snapshot as this unit is rolled (the rollback playbook with
            C(onebox_rollback_data)). Instead of a restart, every start of the unit's service is held (a runtime
            drop-in under C(/run/systemd/system) makes each start wait for a lock the module holds, so a connection
            on the socket cannot start it meanwhile), the service is stopped, the live files of O(units[].data.files)
            and their C(-wal), C(-shm) and C(-journal) are moved to C(<site_dir>/aside/<time>-written-by-<release>/)
            (never deleted), the snapshot's copies are written in their place (owner and mode as the replaced
            files), the hold ends and the service is started and waited for.
          - When the unit then does not come ready and is rolled back (see O(rollback)), the same hold and stop, the
            restored files go aside too and the moved files come back before the previous release starts.
          - See C(plugins/module_utils/snapshots.py) and the collection's C(docs/data.md).
        type: dict
        suboptions:
          site:
            description: The site's name (names the hold's lock, C(/run/onebox/data-<site>.lock)).
            type: str
            required: true
          site_dir:
            description: The site's directory; O(units[].data.files) are relative to it.
            type: path
            required: true
          user:
            description: The site's user, who owns the directory the moved files go to.
            type: str
            required: true
          group:
            description: The site's group; defaults to the user's name.
            type: str
          unit_file:
            description: The service's unit file, V(blog.service) or V(blog@.service); its drop-in holds the starts.
            type: str
            required: true
          files:
            description: The site's declared data, relative to O(units[].data.site_dir), for example V(shared/app.db).
            type: list
            elements: str
            required: true
          snapshot:
            description: The snapshot's directory (with its C(snapshot.json)).
            type: path
            required: true
          written_by:
            description: The release that wrote the files being replaced; names their directory under C(aside/).
            type: str
          target:
            description: The release that serves the restored data.
            type: str
  rollback:
    description:
      - What to do when a unit does not come ready.
      - V(none) only stops there (its O(units[].link) is pointed back).
      - V(site) also rolls that unit back, its O(units[].link) already pointing at the previous release. The files of
        O(units[].restore) of that unit and of every unit after it (installed, but never restarted) are put back,
        systemd reloads, and the unit is restarted (with V(overlap), the old instance still runs and is only waited
        for) and must come ready again. Units rolled before it keep their new release.
      - A O(units[].fresh) unit among them is not restarted but stopped, disabled and removed (see O(units[].fresh)),
        so no socket stays active without a service behind it.
      - V(all) does the same and then rolls back every unit rolled before it, last first, through the same readiness
        gate.
      - The module still fails, and its message says which unit failed and which release serves now.
    type: str
    choices: [none, site, all]
    default: none
  interval:
    description:
      - Seconds between two polls of the unit state, liveness and readiness.
    type: float
    default: 0.1
  passes:
    description:
      - Number of consecutive HTTP 200 answers of the readiness URL (with the unit C(active)) needed to call a unit ready.
    type: int
    default: 3
  timeout:
    description:
      - Default seconds to wait for each unit to become ready.
    type: float
    default: 60
  request_timeout:
    description:
      - Timeout in seconds of one HTTP request (readiness, liveness and, unless O(probe.request_timeout) is set, probe).
    type: float
    default: 2
  liveness_grace:
    description:
      - Seconds after the old main process is gone (the start command, for overlap) during which failures of a
        O(units[].liveness_url) that has not answered 200 yet are taken for a slow start and not counted.
    type: float
    default: 10
  probe:
    description:
      - Background HTTP load sent while rolling, to prove the rollout is really zero-downtime.
      - It starts before the first unit is touched and stops after the last unit is ready.
      - Each thread sends GET requests back to back on a keep-alive connection and reconnects after an error or an
        answer that closes the connection. Exceptions and HTTP status codes >= 400 count as failed.
    type: dict
    suboptions:
      urls:
        description:
          - URLs to request, cycled through by every thread (usually the public site URL(s)).
        type: list
        elements: str
        required: true
      labels:
        description:
          - Names of the sites behind O(probe.urls), one per URL in the same order. A failed probe names the site of each
            URL that saw failures, and RV(probe.targets[].label) carries it.
        type: list
        elements: str
      request_timeout:
        description:
          - Timeout in seconds of one probe request; defaults to O(request_timeout).
        type: float
      concurrency:
        description:
          - Number of parallel connections/threads.
        type: int
        default: 4
      max_failed:
        description:
          - Fail the module (after the rollout) when more requests than this failed.
        type: int
        default: 0
      headers:
        description:
          - Extra request headers, for example V(Host) to route through a reverse proxy like Traefik.
        type: dict
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Reports which units would be restarted (status V(would_restart)); only read-only C(systemctl show) calls are made
        (to pick the overlap instance) and no probe is run.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
notes:
  - Units are C(Type=notify) services in the intended setup, but the module does not rely on a blocking
    C(systemctl restart); it issues C(--no-block) jobs and polls, so it can fail fast and enforce its own timeout.
  - A unit counts as ready only when C(ActiveState=active) and the readiness URL answered 200 O(passes) times in a row
    after the old main process (C(MainPID) before the restart) has exited, so a draining old process can never be
    mistaken for the new one.
  - Probe latencies are measured for requests that got an HTTP answer; after a connection error a probe thread pauses
    10 ms before retrying.
"""

EXAMPLES = r"""
- name: Roll the blog and the shop, one after the other
  onebox.deploy.rolling_restart:
    units:
      - name: blog.service
        readiness_url: http://127.0.0.1:9101/readyz
        liveness_url: http://127.0.0.1:9101/livez
      - name: shop.service
        readiness_url: http://127.0.0.1:9102/readyz
        timeout: 120

- name: Blue/green style replacement of wiki@a / wiki@b, with a load probe through Traefik
  onebox.deploy.rolling_restart:
    units:
      - name: wiki
        strategy: overlap
        instances: [a, b]
        readiness_url: http://127.0.0.1:9200/{instance}/readyz
        liveness_url: http://127.0.0.1:9200/{instance}/livez
    passes: 5
    probe:
      urls:
        - http://127.0.0.1/
      headers:
        Host: wiki.example.org
      concurrency: 8
      max_failed: 0
  register: roll

- name: Show the probe numbers
  ansible.builtin.debug:
    msg: "{{ roll.probe.sent }} requests, {{ roll.probe.failed }} failed, p99 {{ roll.probe.p99_ms }} ms"

- name: Point blog's current at release 1.5.0 right before restarting it (and back if it does not come ready)
  onebox.deploy.rolling_restart:
    units:
      - name: blog.service
        readiness_url: http://127.0.0.1:9101/readyz
        link: /srv/onebox/blog/current
        link_target: /srv/onebox/blog/releases/1.5.0

- name: Roll shop to 2.1.0; when it does not come ready, put its old unit file back and restart the old release
  onebox.deploy.rolling_restart:
    units:
      - name: shop.service
        readiness_url: http://127.0.0.1:9102/readyz
        link: /srv/onebox/shop/current
        link_target: /srv/onebox/shop/releases/2.1.0
        restore:
          - {path: /etc/systemd/system/shop.service, backup: /srv/onebox/shop/units/previous/shop.service}
    rollback: site

- name: Only wait until an already restarted service is ready again
  onebox.deploy.rolling_restart:
    units:
      - name: api.service
        readiness_url: http://127.0.0.1:9300/readyz
        restart: false
    timeout: 30
"""

RETURN = r"""
changed:
  description: Whether any unit was restarted, started or stopped (in check mode, whether one would be).
  returned: always
  type: bool
rolled:
  description: Names of the units (for overlap the base name) that were rolled successfully, in order.
  returned: always
  type: list
  elements: str
  sample: [blog.service, shop.service]
duration:
  description: Seconds the whole module run took.
  returned: always
  type: float
  sample: 4.213
results:
  description: One entry per unit that was handled (units after a failing one are not listed).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The unit name as given.
      type: str
      sample: blog.service
    unit:
      description: The systemd unit that was waited for (for overlap the new instance).
      type: str
      sample: blog@b.service
    strategy:
      description: V(restart) or V(overlap).
      type: str
    status:
      description: V(ready), V(failed) (fail fast), V(timeout), V(would_restart) or V(would_wait) (check mode).
      type: str
    time_to_stop:
      description:
        - Restart strategy, seconds from the restart command until the old main process was gone (null when no
          process ran before).
        - Overlap strategy, seconds the C(systemctl stop) of the old instance(s) took.
      type: float
    time_to_ready:
      description: Seconds from the restart/start command until the readiness check passed.
      type: float
    passes:
      description: Consecutive successful readiness polls reached.
      type: int
    polls:
      description: Number of polls made.
      type: int
    instance:
      description: Overlap strategy, the instance that was started (or would be).
      type: str
      sample: b
    old_instances:
      description: Overlap strategy, instances that were running before and have been (or would be) stopped.
      type: list
      elements: str
    readiness:
      description: Last readiness result, an HTTP status code or an exception name.
      type: raw
      sample: 200
    liveness:
      description: Last liveness result, an HTTP status code or an exception name.
      type: raw
    state:
      description: Last C(systemctl show) properties of the unit (ActiveState, SubState, MainPID, NRestarts, Result).
      type: dict
    reason:
      description: Why the unit did not come ready.
      type: str
    elapsed:
      description: Seconds from the restart/start command until the unit was given up on (a failed unit only).
      type: float
    answered:
      description:
        - Whether the unit's liveness or readiness URL answered at all (any HTTP status) while it was waited for.
        - A unit given up on as crashed (status V(failed)) that never answered served nothing; a rollback or the
          overlap strategy kills it (SIGKILL) instead of stopping it with a drain, which a server in a crash loop may
          never finish.
      type: bool
    link:
      description:
        - With O(units[].link), the symlink switch; V(from) and V(to) are link targets, V(changed) whether the
          link was (or, in check mode, would be) switched, V(reverted) whether it was pointed back after a failure.
      type: dict
      sample: {path: /srv/onebox/blog/current, from: /srv/onebox/blog/releases/1.0.0,
               to: /srv/onebox/blog/releases/1.1.0, changed: true, reverted: false}
    data:
      description:
        - With O(units[].data), what the swap did; V(snapshot) restored, V(aside) the directory the replaced files
          went to (V(moved), from V(moved_from)), V(restored) the files written with their bytes, V(not_created) the
          files the snapshot records as absent (moved aside, not written), V(kept) declared files the snapshot does
          not know (left alone), V(seconds) the swap's time.
      type: dict
      sample: {snapshot: /srv/onebox/blog/snapshots/20261207T014500Z-1.0.0-to-2.0.0,
               aside: /srv/onebox/blog/aside/20261207T020000Z-written-by-2.0.0,
               restored: [{path: shared/app.db, bytes: 105005056}], seconds: 0.52}
probe:
  description: Load probe statistics.
  returned: when O(probe) is given and not in check mode
  type: dict
  contains:
    sent:
      description: Requests sent.
      type: int
    failed:
      description: Requests that raised or got HTTP >= 400.
      type: int
    errors:
      description: Failed requests by kind, for example C(status_503), C(ConnectionRefusedError), C(RemoteDisconnected), C(timeout).
      type: dict
    p50_ms:
      description: Median latency in milliseconds.
      type: float
    p99_ms:
      description: 99th percentile latency in milliseconds.
      type: float
    max_ms:
      description: Maximum latency in milliseconds.
      type: float
    duration:
      description: Seconds the probe ran.
      type: float
    targets:
      description:
        - The same counts per entry of O(probe.urls), in order.
        - 'When more than O(probe.max_failed) requests failed, the module message lists the targets that saw failures,
          for example C(probe saw 4 failed of 208 requests (max_failed=0): blog (http://127.0.0.1:8001/): timeout=4).'
      type: list
      elements: dict
      contains:
        url:
          description: The URL.
          type: str
        label:
          description: Its O(probe.labels) entry, null without labels.
          type: str
        sent:
          description: Requests sent to it.
          type: int
        failed:
          description: Its requests that raised or got HTTP >= 400.
          type: int
        errors:
          description: Its failed requests by kind.
          type: dict
rollback:
  description: With O(rollback) other than V(none), one entry per unit rolled back after a failure, in order.
  returned: when a unit failed and O(rollback) is not V(none)
  type: list
  elements: dict
  contains:
    name:
      description: The unit name as given.
      type: str
    status:
      description:
        - V(ready) when it serves its previous release again, V(failed), V(timeout) or V(skipped) (nothing to return to).
        - V(removed) for a O(units[].fresh) unit, stopped, disabled and removed.
      type: str
    version:
      description: The release O(units[].link) points to after the rollback (its base name).
      type: str
    time_to_stop:
      description: Seconds from the restart until the failed release's main process was gone.
      type: float
    time_to_ready:
      description: Seconds from the restart until the readiness check passed.
      type: float
    killed:
      description: V(true) when the failed release never answered a request and was killed instead of stopped.
      type: bool
    time_to_recover:
      description:
        - Seconds from the failed release's restart (or start) command until the unit served its previous release
          again, the rollback included; with the restart strategy, what a request that arrived as the failed
          release took over waited in the socket's backlog.
      type: float
    restored:
      description: Files put back (or removed, when they were new).
      type: list
      elements: str
    reason:
      description: Why the rollback of this unit failed or was skipped.
      type: str
    stopped:
      description: Status V(removed), the units stopped and disabled (the socket first).
      type: list
      elements: str
    put_back:
      description: Status V(removed), the files of RV(rollback[].restored) put back from a backup (the others were removed).
      type: list
      elements: str
    link_removed:
      description: Status V(removed), the O(units[].link) removed (null when it did not point at the new release).
      type: str
    release:
      description: Status V(removed), the release directory that is kept (O(units[].link_target)).
      type: str
    data:
      description:
        - A unit with O(units[].data) whose swap is undone, what the undo did; V(aside) the directory the restored
          files went to, V(returned) the files put back in place.
      type: dict
journal:
  description: Last journal lines of the unit that did not come ready.
  returned: on failure of a unit
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.onebox.deploy.plugins.module_utils.rolling import choose_instance
from ansible_collections.onebox.deploy.plugins.module_utils.rollout import RollingRestart

__all__ = ['choose_instance', 'main']


def main():
    unit_spec = dict(
        name=dict(type='str', required=True),
        readiness_url=dict(type='str', required=True),
        liveness_url=dict(type='str'),
        timeout=dict(type='float'),
        strategy=dict(type='str', choices=['restart', 'overlap'], default='restart'),
        instances=dict(type='list', elements='str', default=['a', 'b']),
        restart=dict(type='bool', default=True),
        link=dict(type='path'),
        link_target=dict(type='path'),
        restore=dict(type='list', elements='dict', default=[], options=dict(
            path=dict(type='path', required=True),
            backup=dict(type='path'),
        )),
        fresh=dict(type='bool', default=False),
        socket=dict(type='str'),
        liveness_grace=dict(type='float'),
        stop_timeout=dict(type='float'),
        stop_units=dict(type='list', elements='str', default=[]),
        jobs=dict(type='list', elements='dict', default=[], options=dict(
            unit=dict(type='str', required=True),
            timeout=dict(type='float', required=True),
        )),
        restart_socket=dict(type='bool', default=False),
        data=dict(type='dict', options=dict(
            site=dict(type='str', required=True),
            site_dir=dict(type='path', required=True),
            user=dict(type='str', required=True),
            group=dict(type='str'),
            unit_file=dict(type='str', required=True),
            files=dict(type='list', elements='str', required=True),
            snapshot=dict(type='path', required=True),
            written_by=dict(type='str'),
            target=dict(type='str'),
        )),
    )
    probe_spec = dict(
        urls=dict(type='list', elements='str', required=True),
        labels=dict(type='list', elements='str'),
        concurrency=dict(type='int', default=4),
        max_failed=dict(type='int', default=0),
        headers=dict(type='dict'),
        request_timeout=dict(type='float'),
    )
    module = AnsibleModule(
        argument_spec=dict(
            units=dict(type='list', elements='dict', required=True, options=unit_spec,
                       required_together=[('link', 'link_target')]),
            interval=dict(type='float', default=0.1),
            passes=dict(type='int', default=3, no_log=False),
            timeout=dict(type='float', default=60),
            request_timeout=dict(type='float', default=2),
            liveness_grace=dict(type='float', default=10),
            probe=dict(type='dict', options=probe_spec),
            rollback=dict(type='str', choices=['none', 'site', 'all'], default='none'),
        ),
        supports_check_mode=True,
    )
    RollingRestart(module).run()


if __name__ == '__main__':
    main()
