# -*- coding: utf-8 -*-
"""The site role warns when sites are in maintenance mode but Traefik is not
enabled (roles/site/tasks/converge.yml): maintenance mode is Traefik's
routing, so without it nothing answers 503. The task's condition and message
are rendered with Ansible's own templating."""

from __future__ import absolute_import, division, print_function

import os

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

try:  # ansible-core 2.19 and later template only text marked as trusted (as a task file's is)
    from ansible.template import trust_as_template
except ImportError:  # earlier releases template any text
    def trust_as_template(text):
        return text

from conftest import REPO_ROOT


def warning_task():
    with open(os.path.join(REPO_ROOT, "roles", "site", "tasks", "converge.yml")) as handle:
        items = yaml.safe_load(handle)
    assert items[0]["name"] == "Warn that maintenance mode needs Traefik", "the warning comes before the deploy"
    return items[0]


def evaluate(variables):
    task = warning_task()
    templar = Templar(loader=DataLoader(), variables=variables)
    shown = templar.template(trust_as_template("{{ %s }}" % task["when"])) in (True, "True")
    msg = templar.template(trust_as_template(task["ansible.builtin.debug"]["msg"])) if shown else ""
    return shown, " ".join(msg.split())


@pytest.mark.parametrize("variables,shown", [
    ({"onebox_site_plan": {"maintenance": ["blog", "shop"]}}, True),
    ({"onebox_site_plan": {"maintenance": ["blog"]}, "onebox_traefik_enabled": False}, True),
    ({"onebox_site_plan": {"maintenance": ["blog"]}, "onebox_traefik_enabled": True}, False),
    ({"onebox_site_plan": {"maintenance": []}, "onebox_traefik_enabled": False}, False),
    ({"onebox_site_plan": {}}, False),
])
def test_a_warning_names_the_sites_in_maintenance_without_traefik(variables, shown):
    when, msg = evaluate(variables)
    assert when is shown
    if shown:
        names = ", ".join(variables["onebox_site_plan"]["maintenance"])
        assert msg.startswith("WARNING: %s in maintenance" % names), msg
        assert "without the onebox.deploy.traefik role nothing answers 503 for them" in msg
