# -*- coding: utf-8 -*-
"""The order and the tags of the site role's deploy steps
(roles/site/tasks/deploy.yml): the data snapshot is planned and taken right
after the read-only preflight, before anything on the host changes and before
the before_roll hooks, and belongs to the roll (tag onebox_roll), so
``--tags onebox_roll`` takes it and ``--skip-tags onebox_roll`` does not."""

from __future__ import absolute_import, division, print_function

import os

import yaml

from conftest import REPO_ROOT


def tasks():
    with open(os.path.join(REPO_ROOT, "roles", "site", "tasks", "deploy.yml")) as handle:
        return yaml.safe_load(handle)


def position(items, module):
    return next(i for i, task in enumerate(items) if module in task)


def test_the_snapshot_comes_right_after_preflight_and_before_anything_changes():
    items = tasks()
    order = [position(items, m) for m in ("onebox.deploy.preflight", "onebox.deploy.snapshots",
                                          "onebox.deploy.stage_releases", "onebox.deploy.site_files")]
    assert order == sorted(order) and order[1] == order[0] + 2, order
    plan = items[order[0] + 1]
    assert "_onebox_snapshot" in plan["ansible.builtin.set_fact"]
    hooks = next(i for i, task in enumerate(items) if task.get("name") == "Run the before_roll hooks")
    assert order[1] < hooks


def test_the_snapshot_belongs_to_the_roll():
    items = tasks()
    at = position(items, "onebox.deploy.snapshots")
    for task in items[at - 1:at + 1]:
        assert task["tags"] == ["onebox_roll"], task
    assert items[at]["register"] == "_onebox_snapshots"
