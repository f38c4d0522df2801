# -*- coding: utf-8 -*-
"""A command run once in a site's environment (plugins/module_utils/siterun.py):
the systemd-run command line, and secrets masked in what comes back."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.onebox.deploy.plugins.module_utils import siterun as R

SITE = dict(name="blog", user="blog", group="www", site_dir="/srv/onebox/blog", env_dir="/etc/onebox",
            service_directives={"NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
                                "ReadWritePaths": "/srv/onebox/blog/shared",
                                "SystemCallFilter": ["@system-service", "~@privileged @resources"]})


def test_transient_argv_runs_as_the_site_with_its_env_file_sandbox_and_current():
    args = R.transient_argv("/usr/bin/systemd-run", SITE, ["/srv/onebox/blog/current/bin/blog", "migrate"],
                            "onebox-run-blog-1.service")
    assert args[:8] == ["/usr/bin/systemd-run", "--wait", "--pipe", "--quiet", "--collect", "--service-type=exec",
                        "--unit=onebox-run-blog-1.service", "--description=onebox run for site blog"]
    props = [args[i + 1] for i, arg in enumerate(args) if arg == "-p"]
    assert props == ["User=blog", "Group=www", "WorkingDirectory=/srv/onebox/blog/current",
                     "EnvironmentFile=/etc/onebox/blog.env", "NoNewPrivileges=yes", "CapabilityBoundingSet=",
                     "ReadWritePaths=/srv/onebox/blog/shared", "SystemCallFilter=@system-service",
                     "SystemCallFilter=~@privileged @resources"]
    assert args[-3:] == ["--", "/srv/onebox/blog/current/bin/blog", "migrate"]
    # The description, which the journal shows, never holds the command.
    assert not any("migrate" in arg for arg in args[:-1])


def test_mask_replaces_every_secret_the_longest_first():
    assert R.mask("a=s3cret b=s3cret-long c", ["s3cret", "s3cret-long", ""]) == "a=******** b=******** c"
    assert R.mask(None, ["x"]) == ""


class Module(object):
    def __init__(self, answer):
        self.answer = answer
        self.calls = []

    def get_bin_path(self, name, required=False):
        return "/usr/bin/" + name

    def run_command(self, args):
        self.calls.append(args)
        return self.answer


def test_run_once_returns_the_exit_status_and_masked_output(tmp_path):
    site = dict(SITE, site_dir=str(tmp_path))
    os.symlink("releases/1.0.1", str(tmp_path / "current"))
    module = Module((3, "token=hunter2\n", "err hunter2\n"))
    ticks = iter([10.0, 10.25])
    out = R.run_once(module, site, ["/bin/true"], ["hunter2"], clock=lambda: next(ticks))
    assert out["exit_status"] == 3 and out["release"] == "1.0.1" and out["seconds"] == 0.25
    assert out["stdout"] == "token=********\n" and out["stderr"] == "err ********\n"
    assert out["unit"].startswith("onebox-run-blog-") and "--unit=%s" % out["unit"] in module.calls[0]
