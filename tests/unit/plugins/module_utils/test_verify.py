# -*- coding: utf-8 -*-
"""The units' own checker (plugins/module_utils/verify.py): which lines of
``systemd-analyze verify`` mean a setting is ignored (both message formats),
ExecStart= as the check runs it, and the errors of :func:`verify_units`
naming the site and the field. ``systemd-analyze`` is a stand-in here; the
module that runs it is tested in plugins/modules/test_preflight.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.onebox.deploy.plugins.module_utils import verify as V

#: ``systemd-analyze verify`` on a misspelt ProtectSystem=, per systemd version.
SYSTEMD_252 = "blog.service:9: Unknown key 'ProtectSytem' in section [Service], ignoring."
SYSTEMD_257 = "Unknown key name 'ProtectSytem' in section 'Service', ignoring."


@pytest.mark.parametrize("line", [SYSTEMD_252, SYSTEMD_257, "/tmp/x/blog.service:5: " + SYSTEMD_257])
def test_both_formats_of_an_unknown_key_are_an_ignored_setting_naming_the_directive(line):
    text = "blog.socket: some notice\n%s\n" % line
    assert V.ignored_settings(text) == [line]
    assert V.UNIT_KEY_RE.findall(text) == ["ProtectSytem"]


@pytest.mark.parametrize("line", [
    "blog.service:3: Unknown section 'Servce'. Ignoring.",
    "blog.service:4: Assignment outside of section. Ignoring.",
    "blog.service:7: Missing '=', ignoring line.",
    "blog.service:8: Failed to parse boolean value, ignoring: maybe",
    "blog.service:2: Unknown lvalue 'Foo' in section 'Service'",
])
def test_other_settings_systemd_ignores(line):
    assert V.ignored_settings(line + "\n") == [line]


@pytest.mark.parametrize("text", [
    "", None,
    "blog.service: Command /srv/x is not executable: No such file or directory\n",
    "blog.socket: Socket service blog.service not loaded, refusing.\n",
])
def test_lines_that_ignore_no_setting(text):
    assert V.ignored_settings(text) == []
    assert V.UNIT_KEY_RE.findall(text or "") == []


def site_of(tmp_path, version="1.0", trigger_unit="blog.service"):
    return dict(name="blog", version=version, site_dir=str(tmp_path / "blog"), trigger_unit=trigger_unit)


SERVICE = ("[Service]\nWorkingDirectory={d}/current\nExecStart={d}/current/bin/app --config {d}/current/app.conf\n"
           "ExecReload=/bin/kill -HUP $MAINPID\n")


def test_as_loaded_points_exec_start_into_the_unpacked_release(tmp_path):
    site = site_of(tmp_path)
    os.makedirs(os.path.join(site["site_dir"], "releases", "1.0"))
    text, in_release = V.as_loaded(site, SERVICE.format(d=site["site_dir"]))
    release = os.path.join(site["site_dir"], "releases", "1.0")
    assert in_release is True
    assert "ExecStart=%s/bin/app --config %s/app.conf\n" % (release, release) in text
    assert "/current/" not in text
    assert "ExecReload=/bin/kill -HUP $MAINPID\n" in text


def test_as_loaded_runs_bin_true_for_a_release_not_yet_unpacked(tmp_path):
    site = site_of(tmp_path)
    os.makedirs(os.path.join(site["site_dir"], "releases", "0.9"))      # another release only
    text, in_release = V.as_loaded(site, SERVICE.format(d=site["site_dir"]))
    assert in_release is False
    assert text == ("[Service]\nWorkingDirectory={d}/current\nExecStart=/bin/true\n"
                    "ExecReload=/bin/kill -HUP $MAINPID\n").format(d=site["site_dir"])


class FakeAnalyze(object):
    """The module ``verify_units`` gets: ``systemd-analyze`` answers *result*."""

    def __init__(self, result):
        self.result = result
        self.calls = []
        self.files = {}

    def get_bin_path(self, name, required=False):
        return "/usr/bin/" + name

    def run_command(self, args):
        self.calls.append(list(args))
        for path in args[2:]:
            with open(path) as handle:
                self.files[os.path.basename(path)] = handle.read()
        result = self.result(args[2:]) if callable(self.result) else self.result
        if isinstance(result, Exception):
            raise result
        return result


def test_verify_units_checks_the_socket_and_the_unit_the_socket_starts(tmp_path):
    site = site_of(tmp_path, trigger_unit="blog@19001.service")
    module = FakeAnalyze((0, "", ""))
    assert V.verify_units(module, site, "[Socket]\nListenStream=8001\n", SERVICE.format(d=site["site_dir"])) is None
    (call,) = module.calls
    assert call[:2] == ["/usr/bin/systemd-analyze", "verify"]
    assert [os.path.basename(p) for p in call[2:]] == ["blog.socket", "blog@19001.service"]
    assert module.files["blog.socket"] == "[Socket]\nListenStream=8001\n"
    assert "ExecStart=/bin/true\n" in module.files["blog@19001.service"]
    assert not os.path.exists(os.path.dirname(call[2]))       # the temporary copies are gone


@pytest.mark.parametrize("line", [SYSTEMD_252, SYSTEMD_257])
def test_verify_units_fails_on_an_ignored_directive_even_when_systemd_analyze_succeeds(tmp_path, line):
    site = site_of(tmp_path)

    def answer(paths):
        # the file names are printed with the temporary directory, which the message leaves out
        return 0, "", os.path.join(os.path.dirname(paths[1]), line) + "\n"
    with pytest.raises(V.VerifyError) as info:
        V.verify_units(FakeAnalyze(answer), site, "[Socket]\n", "[Service]\nProtectSytem=full\n")
    assert str(info.value) == "site blog: field 'service_directives': systemd would ignore ProtectSytem: %s" % line


def test_verify_units_names_field_name_for_an_ignored_line_without_a_key(tmp_path):
    line = "blog.service:3: Unknown section 'Servce'. Ignoring."
    with pytest.raises(V.VerifyError) as info:
        V.verify_units(FakeAnalyze((0, line + "\n", "")), site_of(tmp_path), "[Socket]\n", "[Servce]\n")
    assert str(info.value) == "site blog: field 'name': systemd would ignore a setting: %s" % line


def test_verify_units_lists_every_ignored_directive_once(tmp_path):
    out = "\n".join([SYSTEMD_252, "blog.service:10: Unknown key 'PrivatTmp' in section [Service], ignoring.",
                     "blog.service:11: " + SYSTEMD_257])
    with pytest.raises(V.VerifyError) as info:
        V.verify_units(FakeAnalyze((0, "", out)), site_of(tmp_path), "[Socket]\n", "[Service]\n")
    assert str(info.value).startswith("site blog: field 'service_directives': systemd would ignore "
                                      "PrivatTmp, ProtectSytem: ")


def test_verify_units_fails_on_a_failing_systemd_analyze_naming_the_command(tmp_path):
    complaint = "blog.service: Command /srv/x is not executable: No such file or directory"
    with pytest.raises(V.VerifyError) as info:
        V.verify_units(FakeAnalyze((1, "", complaint + "\n")), site_of(tmp_path), "[Socket]\n", "[Service]\n")
    assert str(info.value) == "site blog: field 'command': systemd-analyze verify failed (rc=1): %s" % complaint


def test_verify_units_leaves_no_temporary_files_when_systemd_analyze_cannot_run(tmp_path):
    module = FakeAnalyze(OSError("no such program"))
    with pytest.raises(OSError):
        V.verify_units(module, site_of(tmp_path), "[Socket]\n", "[Service]\n")
    assert not os.path.exists(os.path.dirname(module.calls[0][2]))


@pytest.mark.parametrize("line,field", [
    ("blog.socket:12: Unknown key 'Backlogg' in section [Socket], ignoring.", "socket_directives"),
    ("blog.socket:12: Unknown key name 'Backlogg' in section 'Socket', ignoring.", "socket_directives"),
    ("blog.service:5: Unknown key 'Wantz' in section [Unit], ignoring.", "unit_directives"),
    ("blog.service:9: Unknown key 'ProtectSytem' in section [Service], ignoring.", "service_directives"),
])
def test_the_field_follows_the_section_of_the_ignored_key(tmp_path, line, field):
    site = site_of(tmp_path)
    with pytest.raises(V.VerifyError) as info:
        V.verify_units(FakeAnalyze((0, "", line + "\n")), site, "[Socket]\n", "[Service]\n")
    assert str(info.value).startswith("site blog: field '%s': systemd would ignore " % field)


def test_verify_units_checks_the_jobs_units_with_the_sites(tmp_path):
    site = site_of(tmp_path)
    module = FakeAnalyze((0, "", ""))
    jobs = [dict(service_unit="blog_nightly.service", timer_unit="blog_nightly.timer",
                 service="[Service]\nType=oneshot\nExecStart=%s/current/bin/app cleanup\n" % site["site_dir"],
                 timer="[Timer]\nOnCalendar=daily\n")]
    V.verify_units(module, site, "[Socket]\n", SERVICE.format(d=site["site_dir"]), jobs)
    (call,) = module.calls
    names = ["blog.socket", "blog.service", "blog_nightly.service", "blog_nightly.timer"]
    assert [os.path.basename(p) for p in call[2:]] == names
    assert "ExecStart=/bin/true\n" in module.files["blog_nightly.service"]


class FakeCalendar(object):
    """``systemd-analyze calendar`` that rejects the expressions in *bad* (systemd 252's message)."""

    def __init__(self, bad, say=True):
        self.bad = bad
        self.say = say
        self.calls = []

    def get_bin_path(self, name, required=False):
        return "/usr/bin/" + name

    def run_command(self, args):
        self.calls.append(list(args))
        rejected = [e for e in args[3:] if e in self.bad]
        if not rejected:
            return 0, "Normalized form: ...\n", ""
        if not self.say:
            return 1, "", "Invalid argument\n"
        return 1, "", "".join("Failed to parse calendar specification '%s': Invalid argument\n" % e for e in rejected)


def sites_with_calendars(*calendars):
    return [dict(name="blog", jobs=[dict(name="job%d" % i, on_calendar=c) for i, c in enumerate(calendars)]),
            dict(name="shop", jobs=[dict(name="nightly", on_calendar="daily")]), dict(name="wiki")]


@pytest.mark.parametrize("say", [True, False])
def test_calendar_errors_name_the_site_and_the_job(say):
    module = FakeCalendar(["*-*-* 25:00", "bogus"], say=say)
    errors = V.calendar_errors(module, sites_with_calendars("daily", "*-*-* 25:00", "bogus"))
    assert errors == [
        "site blog: field 'timers[job1].on_calendar' '*-*-* 25:00' is not a calendar systemd accepts "
        "(systemd-analyze calendar: Invalid argument)",
        "site blog: field 'timers[job2].on_calendar' 'bogus' is not a calendar systemd accepts "
        "(systemd-analyze calendar: Invalid argument)"]
    # one call for every site's calendars; one per expression only when the output names none
    assert module.calls[0] == ["/usr/bin/systemd-analyze", "calendar", "--", "*-*-* 25:00", "bogus", "daily"]
    assert len(module.calls) == (1 if say else 4)


def test_calendars_that_pass_take_one_call_and_no_jobs_none():
    module = FakeCalendar([])
    assert V.calendar_errors(module, sites_with_calendars("daily", "Mon *-*-* 04:00")) == []
    assert len(module.calls) == 1
    assert V.calendar_errors(module, [dict(name="wiki")]) == [] and len(module.calls) == 1


@pytest.mark.skipif(not os.path.exists("/usr/bin/systemd-analyze"), reason="systemd-analyze is not installed")
def test_calendar_errors_with_the_real_systemd_analyze():
    class Real(object):
        def get_bin_path(self, name, required=False):
            return "/usr/bin/" + name

        def run_command(self, args):
            import subprocess
            proc = subprocess.run(args, capture_output=True, text=True, check=False)
            return proc.returncode, proc.stdout, proc.stderr

    errors = V.calendar_errors(Real(), sites_with_calendars("*:*:0/20", "*-*-* 25:00:00", "daily"))
    assert errors == ["site blog: field 'timers[job1].on_calendar' '*-*-* 25:00:00' is not a calendar systemd "
                      "accepts (systemd-analyze calendar: Invalid argument)"]
