# -*- coding: utf-8 -*-
"""Unit tests for onebox.deploy.preflight: the same-version-different-content check."""

from __future__ import absolute_import, division, print_function

import json
import os

import pytest

from ansible_collections.onebox.deploy.plugins.modules import preflight
from module_runner import invoke

INSTALLED = "a" * 64
ARTIFACT = "b" * 64


def run_preflight(tmp_path, sums, force_release=False):
    site = dict(name="blog", version="1.0.0", listen="127.0.0.1:1", listen_port=1, health_port=1,
                instances=[], service_units=["blog.service"])
    args = dict(sites=[site], unit_dir=str(tmp_path / "units"), root=str(tmp_path / "srv"), sums=sums,
                force_release=force_release)
    return invoke(preflight.main, args, patches={
        "run_command": lambda self, args, **kw: (0, "", ""),
        "get_bin_path": lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name})[:2]


def release(tmp_path, current):
    site_dir = tmp_path / "srv" / "blog"
    rel = site_dir / "releases" / "1.0.0"
    rel.mkdir(parents=True)
    (rel / ".onebox-release.json").write_text(json.dumps(dict(sha256=INSTALLED, installed_at=1.0)))
    (tmp_path / "units").mkdir()
    if current:
        os.symlink(str(rel), str(site_dir / "current"))


@pytest.mark.parametrize("force_release", [False, True])
def test_same_version_other_content_is_refused_once_a_release_served(tmp_path, force_release):
    release(tmp_path, current=True)
    failed, res = run_preflight(tmp_path, {"blog": ARTIFACT}, force_release)
    assert res["sites"]["blog"]["release_differs"] is True
    assert res["sites"]["blog"]["current_release"] == "1.0.0"
    if force_release:
        assert not failed and res["errors"] == []
    else:
        assert failed and len(res["errors"]) == 1
        assert "release 1.0.0 is already installed with different content" in res["errors"][0]


def test_same_version_other_content_is_replaced_when_nothing_ever_served(tmp_path):
    release(tmp_path, current=False)     # a first install that was rolled back: no current symlink
    failed, res = run_preflight(tmp_path, {"blog": ARTIFACT})
    assert not failed, res.get("msg")
    assert res["errors"] == []
    assert res["sites"]["blog"]["release_differs"] is True
    assert res["sites"]["blog"]["current_release"] is None


@pytest.mark.parametrize("current", [False, True])
def test_same_content_does_not_differ(tmp_path, current):
    release(tmp_path, current=current)
    failed, res = run_preflight(tmp_path, {"blog": INSTALLED})
    assert not failed and res["sites"]["blog"]["release_differs"] is False
