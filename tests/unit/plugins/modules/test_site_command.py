# -*- coding: utf-8 -*-
"""onebox.deploy.site_command (plugins/modules/site_command.py): runs once,
reports a non-zero exit status without failing, masks secrets, refuses a
site without a release, runs nothing in check mode."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.onebox.deploy.plugins.modules import site_command
from module_runner import invoke


def args(tmp_path, **kw):
    site = dict(name="blog", user="blog", group="blog", site_dir=str(tmp_path), env_dir="/etc/onebox",
                service_directives={})
    out = dict(site=site, argv=["/bin/sh", "-c", "exit 3"], command="/bin/sh -c 'echo s3cret; exit 3'",
               secrets=["s3cret"])
    out.update(kw)
    return out


def patches(calls, answer=(3, "s3cret\n", "")):
    def run_command(self, argv, **kwargs):
        calls.append(list(argv))
        return answer
    return {"run_command": run_command, "get_bin_path": lambda self, name, required=False: "/usr/bin/" + name}


def test_a_failing_command_is_its_exit_status_not_a_failed_module(tmp_path):
    os.symlink("releases/2", str(tmp_path / "current"))
    calls = []
    failed, res, seconds = invoke(site_command.main, args(tmp_path), patches=patches(calls))
    assert not failed, res
    assert res["changed"] is True and res["exit_status"] == 3 and "rc" not in res
    assert res["stdout"] == "********\n" and res["command"] == "/bin/sh -c 'echo ********; exit 3'"
    assert len(calls) == 1 and calls[0][0] == "/usr/bin/systemd-run" and seconds < 5


def test_check_mode_runs_nothing(tmp_path):
    os.symlink("releases/2", str(tmp_path / "current"))
    calls = []
    failed, res, _seconds = invoke(site_command.main, args(tmp_path), check_mode=True, patches=patches(calls))
    assert not failed and calls == [] and res["exit_status"] is None and res["release"] == "2"


def test_a_site_without_a_release_is_refused_before_anything_runs(tmp_path):
    calls = []
    failed, res, _seconds = invoke(site_command.main, args(tmp_path), patches=patches(calls))
    assert failed and calls == []
    assert res["msg"].startswith("site blog: field 'name': %s/current does not exist" % tmp_path)
