# -*- coding: utf-8 -*-
"""The units the collection writes: the site units of templates/ (service.j2,
socket.j2, env.j2), rendered by the renderer the action plugins use
(plugins/plugin_utils/_render.py), and Traefik's unit
(roles/traefik/templates/traefik.service.j2), rendered by the same Ansible
template lookup its role's template task uses.

Sites are normalised with the role's own defaults (roles/site/defaults/main.yml
through ``_onebox_settings`` of roles/site/vars/main.yml, see
``conftest.role_settings``). Where the machine has ``systemd-analyze``
the rendered units are also checked with ``verify`` (as the roles do) and
scored with ``security --offline``: the exposure must stay at 2.0 or lower.
"""

from __future__ import absolute_import, division, print_function

import os
import re
import shutil
import subprocess

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import lookup_loader
from ansible.template import Templar

from ansible_collections.onebox.deploy.plugins.plugin_utils import _sites as S
from ansible_collections.onebox.deploy.plugins.plugin_utils import _traefik as T
from ansible_collections.onebox.deploy.plugins.plugin_utils import _units as U
from ansible_collections.onebox.deploy.plugins.plugin_utils._render import TEMPLATES, SiteRenderer
from conftest import REPO_ROOT as ROOT
from conftest import role_settings

# The templates the Traefik role's tasks render.
ROLE_TEMPLATES = "roles/traefik/templates"
LOADER = DataLoader()
MAX_EXPOSURE = 2.0

# Every default of a site service, as written for a site without overrides.
SITE_SANDBOX = {
    "NoNewPrivileges": ["yes"],
    "CapabilityBoundingSet": [""],
    "ProtectSystem": ["strict"],
    "ReadWritePaths": ["/srv/onebox/blog/shared"],
    "ProtectHome": ["yes"],
    "PrivateTmp": ["yes"],
    "PrivateDevices": ["yes"],
    "DevicePolicy": ["closed"],
    "PrivateMounts": ["yes"],
    "ProtectKernelTunables": ["yes"],
    "ProtectKernelModules": ["yes"],
    "ProtectKernelLogs": ["yes"],
    "ProtectControlGroups": ["yes"],
    "ProtectClock": ["yes"],
    "ProtectHostname": ["yes"],
    "ProtectProc": ["invisible"],
    "ProcSubset": ["pid"],
    "LockPersonality": ["yes"],
    "RestrictNamespaces": ["yes"],
    "RestrictRealtime": ["yes"],
    "RestrictSUIDSGID": ["yes"],
    "RemoveIPC": ["yes"],
    "RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"],
    "SystemCallArchitectures": ["native"],
    "SystemCallFilter": ["@system-service", "~@privileged @resources", "@setuid"],
    "SystemCallErrorNumber": ["EPERM"],
    "UMask": ["0027"],
}


def _yaml(path):
    with open(os.path.join(ROOT, path)) as handle:
        return yaml.safe_load(handle)


def site(**kw):
    out = {"name": "blog", "listen": "127.0.0.1:8001", "health_listen": "127.0.0.1:19001", "version": "1.0.0",
           "artifact": "files/reference-app", "command": "bin/onebox-app --warmup 0.2"}
    out.update(kw)
    return out


def normalize(raw, **defaults):
    assert S.validate_sites([raw], ROOT) == []
    return S.normalize_site(raw, role_settings(**defaults), ROOT)


def render(name, **variables):
    """A site template through the action plugins' renderer, or a template of
    the Traefik role the way its template task renders it."""
    task_vars = {"ansible_managed": "Ansible managed"}
    keys = dict((template, key) for key, template in TEMPLATES)
    if name in keys:
        renderer = SiteRenderer(LOADER, Templar(loader=LOADER), task_vars)
        return renderer.render(keys[name], variables["site"], variables.get("secret_env"))
    lookup = lookup_loader.get("template", loader=LOADER, templar=Templar(loader=LOADER))
    return lookup.run([os.path.join(ROOT, ROLE_TEMPLATES, name)], variables=dict(task_vars, **variables))[0]


def render_traefik(options=None, **variables):
    defaults = _yaml("roles/traefik/defaults/main.yml")
    variables = dict(defaults, **variables)
    opts = {"entrypoints": variables["onebox_traefik_entrypoints"],
            "api_listen": variables["onebox_traefik_api_listen"],
            "service_directives": variables["onebox_traefik_service_directives"]}
    opts.update(options or {})
    assert T.option_errors(opts) == []
    return render("traefik.service.j2", _onebox_traefik_marker="Managed by onebox.deploy",
                  _onebox_traefik_unit_directives=T.traefik_unit_directives(opts),
                  _onebox_traefik_sockets=T.traefik_sockets(opts), **variables)


def render_traefik_sockets(**variables):
    """Every unit file of an installed Traefik: {file name: text}, rendered as the role renders them."""
    defaults = _yaml("roles/traefik/defaults/main.yml")
    variables = dict(defaults, **variables)
    opts = {"entrypoints": variables["onebox_traefik_entrypoints"], "api_listen": variables["onebox_traefik_api_listen"]}
    sockets = T.traefik_sockets(opts)
    common = dict(variables, _onebox_traefik_marker="Managed by onebox.deploy", _onebox_traefik_sockets=sockets,
                  _onebox_traefik_gate="/var/lib/onebox-traefik/onebox-traefik-gate")
    out = {"traefik.service": render_traefik(**variables),
           "onebox-traefik-gate@.service": render("onebox-traefik-gate.service.j2", **common)}
    for sock in sockets:
        out[sock["unit"]] = render("traefik.socket.j2", _onebox_traefik_socket=sock, **common)
    return out


def directives(text, section="Service"):
    """``{key: [values in order]}`` of one section of a unit file."""
    out = {}
    current = None
    for line in text.splitlines():
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section and line and not line.startswith("#"):
            key, _sep, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_site_service_has_every_sandbox_default():
    unit = directives(render("service.j2", site=normalize(site(), service_type="notify")))
    for key, values in SITE_SANDBOX.items():
        assert unit.get(key) == values, key
    # Off by default (JIT runtimes), no capability to hand on, no network or user isolation.
    for key in ("MemoryDenyWriteExecute", "AmbientCapabilities", "PrivateNetwork", "PrivateUsers", "IPAddressDeny"):
        assert key not in unit, key


def test_site_service_keeps_its_own_settings():
    text = render("service.j2", site=normalize(site(), service_type="notify"))
    unit = directives(text)
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
    assert unit["User"] == ["blog"] and unit["Group"] == ["blog"]
    assert unit["Sockets"] == ["blog.socket"]
    # Every start of a service would otherwise clear O_NONBLOCK on the socket
    # that a running overlap instance shares.
    assert unit["NonBlocking"] == ["true"]
    assert unit["KillMode"] == ["mixed"] and unit["KillSignal"] == ["SIGTERM"]
    assert unit["TimeoutStopSec"] == ["15.0"]
    assert unit["Restart"] == ["on-failure"] and unit["RestartSec"] == ["1"]
    assert directives(text, "Unit")["StartLimitIntervalSec"] == ["0"]
    # Every key once (a list value is the only way to repeat one).
    assert all(len(v) == 1 for k, v in unit.items() if k != "SystemCallFilter"), unit


def test_overlap_template_has_the_same_sandbox():
    raw = site(strategy="overlap")
    normal = normalize(raw)
    text = render("service.j2", site=normal)
    unit = directives(text)
    assert normal["service_file"] == "blog@.service"
    for key, values in SITE_SANDBOX.items():
        assert unit.get(key) == values, key
    assert unit["Environment"] == ["ONEBOX_INSTANCE=%i", "ONEBOX_HEALTH_LISTEN=127.0.0.1:%i"]


@pytest.mark.parametrize("kw,caps", [
    # The app binds its health port itself: below 1024 it needs CAP_NET_BIND_SERVICE.
    ({"health_listen": "127.0.0.1:901"}, True),
    ({"health_listen": "127.0.0.1:1024"}, False),
    ({"strategy": "overlap", "health_listen": "127.0.0.1:1023"}, True),
    # The public port is bound by systemd (the socket unit), never by the app.
    ({"listen": "80", "health_listen": "127.0.0.1:19001"}, False),
    ({"listen": "127.0.0.1:80", "health_listen": None}, False),
])
def test_capabilities_only_for_a_privileged_health_port(kw, caps):
    unit = directives(render("service.j2", site=normalize(site(**kw))))
    if caps:
        assert unit["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
        assert unit["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    else:
        assert unit["CapabilityBoundingSet"] == [""]
        assert "AmbientCapabilities" not in unit


def test_a_site_override_replaces_the_default_of_the_same_name():
    overrides = {"ProtectSystem": "full", "SystemCallFilter": ["@system-service", "@resources"],
                 "MemoryDenyWriteExecute": True, "LimitNOFILE": 65536, "ReadWritePaths": ["/srv/onebox/blog/shared",
                                                                                          "/var/lib/blog"]}
    text = render("service.j2", site=normalize(site(service_directives=overrides)))
    unit = directives(text)
    assert unit["ProtectSystem"] == ["full"]
    assert unit["SystemCallFilter"] == ["@system-service", "@resources"]
    assert unit["ReadWritePaths"] == ["/srv/onebox/blog/shared", "/var/lib/blog"]
    assert unit["MemoryDenyWriteExecute"] == ["yes"]
    assert unit["LimitNOFILE"] == ["65536"]
    # In place of the default, the other defaults untouched, new keys after them.
    keys = [line.partition("=")[0] for line in text.splitlines() if "=" in line and not line.startswith("#")]
    assert keys.index("ProtectSystem") < keys.index("ProtectHome") < keys.index("UMask") < keys.index(
        "MemoryDenyWriteExecute") < keys.index("LimitNOFILE")
    for key, values in SITE_SANDBOX.items():
        if key not in overrides:
            assert unit[key] == values, key


@pytest.mark.parametrize("empty", ["", None, []])
def test_an_empty_override_removes_the_default(empty):
    unit = directives(render("service.j2", site=normalize(site(service_directives={
        "ProtectProc": empty, "ProcSubset": empty, "CapabilityBoundingSet": empty}))))
    for key in ("ProtectProc", "ProcSubset", "CapabilityBoundingSet"):
        assert key not in unit, key
    assert unit["ProtectSystem"] == ["strict"]


def test_a_list_with_an_empty_string_writes_an_empty_assignment():
    unit = directives(render("service.j2", site=normalize(site(service_directives={"SystemCallFilter": [""]}))))
    assert unit["SystemCallFilter"] == [""]


def test_the_writable_directory_follows_onebox_root():
    unit = directives(render("service.j2", site=normalize(site(), root="/data/web sites%1")))
    assert unit["ReadWritePaths"] == ['"/data/web sites%%1/blog/shared"']
    assert U.systemd_path("/srv/a$b") == '"/srv/a$b"'


def test_env_file_has_the_site_env_and_only_its_own_secrets():
    normal = normalize(site(env={"DEBUG": True, "WORKERS": 4, "GREETING": 'say "hi" \\o/'},
                            secret_env={"DB_KEY": "from-onebox_sites"}))
    text = render("env.j2", site=normal, secret_env={"DB_KEY": "s3cr3t", "API": "k"})
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == ["ONEBOX_SITE=blog", "ONEBOX_VERSION=1.0.0", "ONEBOX_LISTEN=127.0.0.1:8001",
                     "ONEBOX_HEALTH_LISTEN=127.0.0.1:19001", 'DEBUG="true"', 'WORKERS="4"',
                     'GREETING="say \\"hi\\" \\\\o/"', 'DB_KEY="s3cr3t"', 'API="k"']
    # the secret comes from the template variable, never from the (secret-free) normalised site
    assert "from-onebox_sites" not in text and "secret_env" not in normal
    overlap = render("env.j2", site=normalize(site(strategy="overlap")), secret_env={})
    assert "ONEBOX_HEALTH_LISTEN" not in overlap      # each instance gets its own, from the unit


def test_merge_directives():
    merged = U.merge_directives([("A", "1"), ("B", ["x", "y"]), ("C", "")],
                                {"B": "z", "C": None, "D": False, "E": [1, True], "A": 2.5})
    assert merged == {"A": "2.5", "B": "z", "D": "no", "E": ["1", "yes"]}
    assert list(U.merge_directives({"A": "1", "B": "2"}, None)) == ["A", "B"]


@pytest.mark.parametrize("value,message", [
    ({"ProtectSystem": {"x": 1}}, "directive ProtectSystem must be a string"),
    ({"ProtectSystem": "strict\nUser=root"}, "directive ProtectSystem must not contain a newline"),
    ({"protect system": "yes"}, "invalid directive name"),
])
def test_bad_service_directives_are_refused(value, message):
    errors = S.validate_sites([site(service_directives=value)], ROOT)
    assert any(message in e and "field 'service_directives'" in e for e in errors), errors


def test_socket_unit_is_unchanged_by_the_sandbox():
    unit = directives(render("socket.j2", site=normalize(site())), "Socket")
    assert unit["ListenStream"] == ["127.0.0.1:8001"] and unit["Service"] == ["blog.service"]
    assert "ProtectSystem" not in unit


@pytest.mark.parametrize("entrypoints,api", [
    ({"web": {"address": ":80"}}, "127.0.0.1:8080"),
    ({"web": {"address": "0.0.0.0:8000"}, "websecure": {"address": "[::]:8443/tcp"}}, "127.0.0.1:8080"),
    ({"web": {"address": ":8000"}}, "127.0.0.1:81"),
])
def test_traefik_unit_has_no_capability_and_inherits_every_entry_point(entrypoints, api):
    """systemd binds every entry point (also below 1024): Traefik needs no capability."""
    unit = directives(render_traefik(onebox_traefik_entrypoints=entrypoints, onebox_traefik_api_listen=api))
    assert unit["CapabilityBoundingSet"] == [""] and "AmbientCapabilities" not in unit
    sockets = ["traefik-%s.socket" % name for name in sorted(list(entrypoints) + ["traefik"])]
    assert unit["Sockets"] == [" ".join(sockets)]
    head = directives(render_traefik(onebox_traefik_entrypoints=entrypoints, onebox_traefik_api_listen=api), "Unit")
    assert head["Requires"] == [" ".join(sockets)] and head["StartLimitIntervalSec"] == ["0"]
    assert "PartOf" not in head and "BindsTo" not in head
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "PrivateDevices", "RemoveIPC", "LockPersonality",
                "MemoryDenyWriteExecute", "RestrictSUIDSGID", "RestrictNamespaces", "PrivateMounts"):
        assert unit[key] == ["yes"], key
    assert unit["ProtectSystem"] == ["strict"] and unit["StateDirectory"] == ["traefik"]
    assert unit["ProtectProc"] == ["invisible"] and unit["ProcSubset"] == ["pid"]
    assert unit["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert unit["UMask"] == ["0077"] and unit["Type"] == ["notify"] and unit["User"] == ["traefik"]
    # The gate around every stop and start, and a stop timeout 5 s above the lifeCycle grace.
    assert unit["ExecStop"] == ["-+/usr/bin/systemctl start onebox-traefik-gate@close.service"]
    assert unit["ExecStartPost"] == ["-+/usr/bin/systemctl start onebox-traefik-gate@open.service"]
    assert unit["TimeoutStopSec"] == ["15"]


def test_traefik_sockets_never_restart_with_traefik_and_have_no_limits():
    units = render_traefik_sockets(onebox_traefik_entrypoints={"web": {"address": ":80"},
                                                               "websecure": {"address": "0.0.0.0:443"}})
    assert sorted(units) == ["onebox-traefik-gate@.service", "traefik-traefik.socket", "traefik-web.socket",
                             "traefik-websecure.socket", "traefik.service"]
    for name, listen in (("web", "80"), ("websecure", "0.0.0.0:443"), ("traefik", "127.0.0.1:8080")):
        text = units["traefik-%s.socket" % name]
        assert text.startswith("#") and "Managed by onebox.deploy" in text
        sock = directives(text, "Socket")
        assert sock["ListenStream"] == [listen] and sock["FileDescriptorName"] == [name]
        assert sock["Service"] == ["traefik.service"] and sock["TriggerLimitIntervalSec"] == ["0"]
        head = directives(text, "Unit")
        assert head["StartLimitIntervalSec"] == ["0"] and "PartOf" not in head and "BindsTo" not in head
    gate = directives(units["onebox-traefik-gate@.service"])
    # The gate holds the public sockets only: the API's stays as it is.
    assert gate["Sockets"] == ["traefik-web.socket traefik-websecure.socket"] and gate["Type"] == ["oneshot"]
    # Root, but only what the filter and reading the ACME storage's host names need.
    assert gate["CapabilityBoundingSet"] == ["CAP_NET_ADMIN CAP_DAC_READ_SEARCH"]
    # systemd sets O_NONBLOCK of the shared sockets as each unit says: both must keep it.
    assert gate["NonBlocking"] == ["yes"] and directives(render_traefik())["NonBlocking"] == ["yes"]


def test_traefik_grace_sets_the_stop_timeout():
    unit = directives(render_traefik(onebox_traefik_grace_timeout=30))
    assert unit["TimeoutStopSec"] == ["35"]


def test_traefik_unit_override_replaces_the_default():
    unit = directives(render_traefik(onebox_traefik_service_directives={
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK", "ProcSubset": "", "LimitNOFILE": 1024}))
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6 AF_NETLINK"]
    assert "ProcSubset" not in unit
    # The unit's own LimitNOFILE=65536 comes first; the later assignment wins in systemd.
    assert unit["LimitNOFILE"] == ["65536", "1024"]


def test_traefik_options_are_validated():
    errors = T.option_errors({"entrypoints": {"web": {"address": "web"}}, "service_directives": {"Bad Key": 1}})
    assert any("entry point web must end in :PORT" in e for e in errors), errors
    assert any("invalid directive name 'Bad Key'" in e for e in errors), errors


# ---------------------------------------------------------------------------
# systemd-analyze on the rendered units (skipped without it)

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(not SYSTEMD_ANALYZE, reason="systemd-analyze is not installed")


def _systemd_version():
    out = subprocess.run([SYSTEMD_ANALYZE, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"systemd (\d+)", out)
    return int(match.group(1)) if match else 0


def write_site_units(tmp_path, raw, name=None):
    """The site's socket and service as the role renders them for verification (named as systemd loads them)."""
    normal = normalize(raw, service_type="notify")
    files = []
    for template, file_name in (("socket.j2", "%s.socket" % normal["name"]),
                                ("service.j2", name or normal["trigger_unit"])):
        path = tmp_path / file_name
        # An executable that exists here: verify checks ExecStart=.
        path.write_text(render(template, site=dict(normal, exec_start="/bin/true")))
        files.append(str(path))
    return files


UNITS = {
    "restart": site(),
    "overlap": site(strategy="overlap"),
    "privileged-health": site(health_listen="127.0.0.1:901"),
    "override": site(service_directives={"MemoryDenyWriteExecute": True, "ProcSubset": "",
                                         "SystemCallFilter": ["@system-service"]}),
}


def assert_units_verify(paths):
    """systemd-analyze verify passes *paths* without a warning: a directive systemd does not
    know, or a value it ignores, is only a warning there, so fail on it here."""
    proc = subprocess.run([SYSTEMD_ANALYZE, "verify"] + list(paths), capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for needle in ("Unknown key", "Failed to parse", "ignoring", "Unknown section"):
        assert needle not in out, out


def write_units(tmp_path, units):
    """Write {file name: text} into tmp_path; the paths written."""
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    return [str(tmp_path / name) for name in units]


@needs_systemd
@pytest.mark.parametrize("case", sorted(UNITS))
def test_rendered_site_units_pass_systemd_analyze_verify(tmp_path, case):
    assert_units_verify(write_site_units(tmp_path, UNITS[case]))


@needs_systemd
def test_rendered_traefik_unit_passes_systemd_analyze_verify(tmp_path):
    assert_units_verify(write_units(tmp_path, render_traefik_sockets(onebox_traefik_binary="/bin/true")))


def offline_exposure(path):
    proc = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager", str(path)],
                          capture_output=True, text=True, check=False)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout + proc.stderr)
    assert match, proc.stdout + proc.stderr
    return float(match.group(1))


@needs_systemd
def test_offline_exposure_is_at_most_2(tmp_path):
    """systemd-analyze security --offline (systemd >= 250) on the rendered units."""
    if _systemd_version() < 250:
        pytest.skip("systemd-analyze security --offline needs systemd 250 or later")
    rows = []
    for case in ("restart", "overlap", "privileged-health"):
        case_dir = tmp_path / case
        case_dir.mkdir()
        normal = normalize(UNITS[case])
        # A template instance is scored as systemd loads it: NAME@PORT.service.
        service = write_site_units(case_dir, UNITS[case])[1]
        rows.append((case, normal["trigger_unit"], offline_exposure(service)))
    traefik = tmp_path / "traefik.service"
    traefik.write_text(render_traefik(onebox_traefik_binary="/bin/true"))
    rows.append(("traefik", "traefik.service", offline_exposure(traefik)))
    print("\n".join("%-18s %-22s %.1f" % row for row in rows))
    for case, unit, exposure in rows:
        assert exposure <= MAX_EXPOSURE, (case, unit, exposure)


# ---------------------------------------------------------------------------
# scheduled jobs (timers)

JOB_SITE = site(timers=[{"name": "nightly", "on_calendar": "*-*-* 03:00:00", "command": "bin/onebox-app --help"},
                        {"name": "tick", "on_calendar": "*:*:0/20", "command": "/bin/sh -c 'echo $ONEBOX_JOB'",
                         "timeout": 30}])


def render_jobs(raw):
    renderer = SiteRenderer(LOADER, Templar(loader=LOADER), {"ansible_managed": "Ansible managed"})
    return renderer.render_jobs(normalize(raw, service_type="notify"))


def test_job_units_run_the_release_as_the_site_with_its_sandbox_and_env_file():
    normal = normalize(JOB_SITE, service_type="notify")
    jobs = render_jobs(JOB_SITE)
    assert [(j["service_unit"], j["timer_unit"]) for j in jobs] == [("blog_nightly.service", "blog_nightly.timer"),
                                                                    ("blog_tick.service", "blog_tick.timer")]
    service = directives(jobs[0]["service"])
    assert service["Type"] == ["oneshot"] and service["User"] == ["blog"] and service["Group"] == ["blog"]
    assert service["WorkingDirectory"] == ["/srv/onebox/blog/current"]
    assert service["EnvironmentFile"] == ["/etc/onebox/blog.env"]
    assert service["ExecStart"] == ["/srv/onebox/blog/current/bin/onebox-app --help"]
    assert service["TimeoutStartSec"] == ["600.0"] and directives(jobs[1]["service"])["TimeoutStartSec"] == ["30.0"]
    assert "Restart" not in service and "Sockets" not in service
    # While the deploy lock is held (and renewed within its TTL), a run waits before its command.
    assert service["ExecStartPre"] == [
        "/bin/sh -c \"trap 'exit 0' TERM; while [ -e '/run/lock/onebox-deploy.lock' ] && [ $$(( $$(date +%%s) - $$(stat -c %%Y "
        "'/run/lock/onebox-deploy.lock') )) -lt 900 ]; do sleep 1; done\""]
    for key, values in SITE_SANDBOX.items():
        assert service.get(key) == values, key
    assert [k for k in service if k in normal["service_directives"]] == list(normal["service_directives"])
    assert directives(jobs[1]["service"])["ExecStart"] == ["/bin/sh -c \"echo $$ONEBOX_JOB\""]
    timer = directives(jobs[1]["timer"], "Timer")
    assert timer == {"OnCalendar": ["*:*:0/20"], "AccuracySec": ["1s"], "Unit": ["blog_tick.service"]}
    assert directives(jobs[1]["timer"], "Install") == {"WantedBy": ["timers.target"]}
    for job in jobs:
        assert "# Managed by onebox.deploy: job %s of site blog." % job["name"] in job["service"]
        assert "# Managed by onebox.deploy: job %s of site blog." % job["name"] in job["timer"]


def test_job_units_follow_the_sites_service_directives():
    raw = dict(JOB_SITE, service_directives={"ProcSubset": "", "LimitNOFILE": 4096})
    service = directives(render_jobs(raw)[0]["service"])
    assert "ProcSubset" not in service and service["LimitNOFILE"] == ["4096"]


@needs_systemd
def test_rendered_job_units_pass_systemd_analyze_verify_and_exposure(tmp_path):
    units = {}
    for job in render_jobs(JOB_SITE):
        for unit, text in ((job["service_unit"], job["service"]), (job["timer_unit"], job["timer"])):
            units[unit] = re.sub(r"(?m)^ExecStart=.*$", "ExecStart=/bin/true", text)
    assert_units_verify(write_units(tmp_path, units))
    if _systemd_version() >= 250:
        score = offline_exposure(tmp_path / "blog_nightly.service")
        print("blog_nightly.service exposure %.1f" % score)
        assert score <= MAX_EXPOSURE


def test_the_job_waits_on_the_roles_own_lock_file_and_ttl():
    renderer = SiteRenderer(LOADER, Templar(loader=LOADER), {"ansible_managed": "Ansible managed",
                                                             "onebox_lock_file": "/run/lock/other.lock",
                                                             "onebox_lock_ttl": 60})
    (pre,) = directives(renderer.render_jobs(normalize(JOB_SITE))[0]["service"])["ExecStartPre"]
    assert pre.count("'/run/lock/other.lock'") == 2 and " -lt 60 ]" in pre


# ---------------------------------------------------------------------------
# the maintenance responder (roles/traefik/templates/onebox-maintenance.*.j2)

def render_maintenance_units(**variables):
    defaults = _yaml("roles/traefik/defaults/main.yml")
    variables = dict(defaults, **variables)
    opts = {"maintenance_listen": variables["onebox_traefik_maintenance_listen"]}
    common = dict(variables, _onebox_traefik_marker="Managed by onebox.deploy",
                  _onebox_traefik_maintenance="/var/lib/onebox-traefik/onebox-maintenance",
                  _onebox_traefik_maintenance_socket=T.maintenance_socket(opts)["listen"])
    return dict((name, render(name + ".j2", **common))
                for name in ("onebox-maintenance.socket", "onebox-maintenance.service"))


def test_maintenance_units_listen_on_loopback_without_limits_as_a_dynamic_user():
    units = render_maintenance_units(onebox_maintenance_retry_after=60)
    for name, text in units.items():
        assert text.startswith("#\n# Ansible managed\n#\n# Managed by onebox.deploy"), name
        assert directives(text, "Unit")["StartLimitIntervalSec"] == ["0"], name
    socket = directives(units["onebox-maintenance.socket"], "Socket")
    assert socket["ListenStream"] == ["127.0.0.1:8099"] and socket["TriggerLimitIntervalSec"] == ["0"]
    service = directives(units["onebox-maintenance.service"])
    assert service["ExecStart"] == ["/usr/bin/python3 /var/lib/onebox-traefik/onebox-maintenance --retry-after 60"]
    assert service["DynamicUser"] == ["yes"] and service["CapabilityBoundingSet"] == [""]
    assert service["NoNewPrivileges"] == ["yes"] and service["PrivateNetwork"] == ["yes"]


@needs_systemd
def test_rendered_maintenance_units_pass_systemd_analyze_verify_with_exposure_at_most_2(tmp_path):
    assert_units_verify(write_units(tmp_path, render_maintenance_units()))
    if _systemd_version() >= 250:
        exposure = offline_exposure(tmp_path / "onebox-maintenance.service")
        print("onebox-maintenance.service %.1f" % exposure)
        assert exposure <= MAX_EXPOSURE
