# -*- coding: utf-8 -*-
"""onebox.deploy.site_status (plugins/modules/site_status.py): one systemctl
call, nothing changed, the sites in the order given."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.onebox.deploy.plugins.modules import site_status
from module_runner import invoke

SHOW = ("Id=blog.socket\nActiveState=active\nSubState=listening\n\n"
        "Id=blog.service\nActiveState=inactive\nSubState=dead\nMainPID=0\nNRestarts=0\nMemoryCurrent=[not set]\n\n"
        "Id=shop.socket\nActiveState=failed\nSubState=failed\n\n"
        "Id=shop.service\nActiveState=inactive\nSubState=dead\nMainPID=0\nNRestarts=5\n")


def test_site_status_reads_every_unit_in_one_call_and_changes_nothing(tmp_path):
    calls = []

    def run_command(self, args, **kwargs):
        calls.append(list(args))
        return 0, SHOW, ""

    sites = [dict(name="shop", version="2", site_dir=str(tmp_path / "shop"), service_units=["shop.service"]),
             dict(name="blog", version="1", site_dir=str(tmp_path / "blog"), service_units=["blog.service"],
                  readiness_url="http://127.0.0.1:1/readyz")]
    patches = {"run_command": run_command, "get_bin_path": lambda self, name, required=False: "/bin/" + name}
    failed, res, seconds = invoke(site_status.main, dict(sites=sites, audit_log=str(tmp_path / "log")),
                                  check_mode=True, patches=patches)
    assert not failed, res
    assert seconds < 5
    assert res["changed"] is False
    assert [s["site"] for s in res["sites"]] == ["shop", "blog"]
    assert len(calls) == 1 and calls[0][:2] == ["/bin/systemctl", "show"]
    assert res["sites"][0]["units"][0]["active"] == "failed" and res["sites"][0]["restarts"] == 5
    assert res["sites"][1]["readyz"] == {} and res["sites"][1]["current"] is None


def test_site_status_fails_when_systemctl_does(tmp_path):
    patches = {"run_command": lambda self, args, **kw: (1, "", "Failed to connect to bus"),
               "get_bin_path": lambda self, name, required=False: "/bin/" + name}
    failed, res, seconds = invoke(site_status.main, dict(sites=[dict(name="blog", service_units=["blog.service"])]),
                                  patches=patches)
    assert failed and "Failed to connect to bus" in res["msg"] and seconds < 5
