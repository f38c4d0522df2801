# -*- coding: utf-8 -*-
"""The systemctl client of the modules (plugins/module_utils/systemd.py), with
``run_command`` of a stand-in module."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.onebox.deploy.plugins.module_utils import systemd as SD


class Module(object):
    """What Systemctl needs of an AnsibleModule: get_bin_path and run_command."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def get_bin_path(self, name, required=False):
        return "/usr/bin/" + name

    def run_command(self, args):
        self.calls.append(list(args))
        return self.answers.pop(0) if self.answers else (0, "", "")


def test_parse_show_many():
    text = ("Id=blog.socket\nActiveState=active\nListen=127.0.0.1:8001 (Stream)\n\n"
            "Id=blog.service\nActiveState=inactive\nUnitFileState=enabled\n\n\n"
            "ActiveState=orphan block without Id\n\n"
            "Id=shop.service\nExecStart={ path=/x ; argv[]=/x a=b }\n")
    assert SD.parse_show_many(text) == {
        "blog.socket": {"Id": "blog.socket", "ActiveState": "active", "Listen": "127.0.0.1:8001 (Stream)"},
        "blog.service": {"Id": "blog.service", "ActiveState": "inactive", "UnitFileState": "enabled"},
        "shop.service": {"Id": "shop.service", "ExecStart": "{ path=/x ; argv[]=/x a=b }"},
    }
    assert SD.parse_show_many("") == {} and SD.parse_show_many(None) == {}


def test_show_many_is_one_call_and_lists_every_unit_asked_for():
    module = Module((0, "Id=a.service\nActiveState=active\n\nId=b.socket\nActiveState=failed\n", ""))
    props = SD.Systemctl(module).show_many(["a.service", "b.socket", "c.service"], ("ActiveState", "Id"))
    assert module.calls == [["/usr/bin/systemctl", "show", "-p", "Id", "-p", "ActiveState", "--",
                             "a.service", "b.socket", "c.service"]]
    assert props == {"a.service": {"Id": "a.service", "ActiveState": "active"},
                     "b.socket": {"Id": "b.socket", "ActiveState": "failed"}, "c.service": {}}
    assert SD.Systemctl(Module()).show_many([], ("ActiveState",)) == {}


def test_failing_commands_raise_naming_the_command():
    module = Module((1, "", "Access denied\n"))
    with pytest.raises(SD.SystemdError) as info:
        SD.Systemctl(module).show_many(["a.service"], ("ActiveState",))
    assert info.value.msg == "systemctl show failed (rc=1): Access denied"
    module = Module((5, "", "Unit x.service not found.\n"))
    client = SD.Systemctl(module)
    with pytest.raises(SD.SystemdError) as info:
        client.mutate("enable", "x.service", "", None, now=True)
    assert module.calls == [["/usr/bin/systemctl", "enable", "--now", "--", "x.service"]]
    assert info.value.msg == "systemctl enable x.service failed (rc=5): Unit x.service not found."
    assert info.value.unit == "x.service" and client.changed is True


def test_mutate_without_units_runs_nothing():
    module = Module()
    client = SD.Systemctl(module)
    client.mutate("stop")
    client.mutate("stop", "", None)
    assert module.calls == [] and client.changed is False


def test_journal_lines():
    module = Module((0, "\n".join("line %d" % i for i in range(40)) + "\n", ""), (1, "", "no journal"))
    client = SD.Systemctl(module)
    assert client.journal("blog.service", lines=3) == ["line 37", "line 38", "line 39"]
    assert client.journal("blog.service") == ["(journalctl rc=1: no journal)"]
