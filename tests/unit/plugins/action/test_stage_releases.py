# -*- coding: utf-8 -*-
"""The controller side of onebox.deploy.stage_releases
(plugins/action/stage_releases.py): the one archive of new releases it packs
from the planned sites (``build_bundle``), unpacked as the module unpacks it."""

from __future__ import absolute_import, division, print_function

import os
import tarfile

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.onebox.deploy.plugins.action import stage_releases as action
from ansible_collections.onebox.deploy.plugins.module_utils import artifacts as U
from ansible_collections.onebox.deploy.plugins.plugin_utils import _artifacts as A
from ansible_collections.onebox.deploy.plugins.plugin_utils import _plan as P
from conftest import make_tree, role_settings


@pytest.fixture
def planned(tmp_path):
    """Three planned sites on the controller: a directory, an executable file and a tarball with a top directory."""
    make_tree(str(tmp_path / "blog-1.0"))
    tool = tmp_path / "tool"
    tool.write_bytes(b"#!/bin/sh\necho tool\n")
    tool.chmod(0o755)
    shop = make_tree(str(tmp_path / "build" / "shop-2.0"))
    with tarfile.open(str(tmp_path / "shop-2.0.tar.gz"), "w:gz") as tar:
        tar.add(shop, arcname="shop-2.0")
    sites = [
        dict(name="blog", listen="127.0.0.1:8001", version="1.0", artifact="blog-1.0/", command="bin/app"),
        dict(name="tool", listen="127.0.0.1:8002", version="1", artifact="tool"),
        dict(name="shop", listen="127.0.0.1:8003", version="2.0", artifact="shop-2.0.tar.gz", command="bin/app"),
    ]
    result = P.plan_sites(sites, role_settings(artifact_base=str(tmp_path)))
    assert result["errors"] == []
    return result["sites"]


@pytest.mark.skipif(os.geteuid() != 0, reason="extract_bundle chowns every file to root")
def test_bundle_holds_each_named_site_under_its_name(tmp_path, planned):
    path = str(tmp_path / "releases.tar.gz")
    action.build_bundle(planned, ["blog", "tool", "shop"], path)
    with tarfile.open(path) as tar:
        assert sorted(set(m.name.split("/", 1)[0] for m in tar)) == ["blog", "shop", "tool"]
    dests = {}
    for name in ("blog", "tool", "shop"):
        dests[name] = str(tmp_path / "host" / name)
        os.makedirs(dests[name])
    with tarfile.open(path) as tar:
        U.extract_bundle(tar, dests)
    assert A.sha256_of(dests["blog"]) == A.sha256_of(str(tmp_path / "blog-1.0"))
    assert os.listdir(dests["tool"]) == ["tool"] and os.stat(os.path.join(dests["tool"], "tool")).st_mode & 0o111
    # the tarball's lone top directory is gone: the command is at the release's top
    assert A.sha256_of(dests["shop"]) == A.sha256_of(str(tmp_path / "build" / "shop-2.0"))


def test_bundle_holds_only_the_sites_to_send(tmp_path, planned):
    path = str(tmp_path / "releases.tar.gz")
    action.build_bundle(planned, ["tool"], path)
    with tarfile.open(path) as tar:
        assert [m.name for m in tar] == ["tool/tool"]


def test_an_unreadable_artifact_fails_naming_the_site_and_field(tmp_path, planned):
    os.unlink(str(tmp_path / "tool"))
    with pytest.raises(AnsibleActionFail) as info:
        action.build_bundle(planned, ["blog", "tool"], str(tmp_path / "releases.tar.gz"))
    assert str(info.value).startswith("site tool: field 'artifact': cannot read %s" % (tmp_path / "tool"))


def test_a_tarball_changed_into_a_bad_one_fails_naming_the_site(tmp_path, planned):
    # checked by site_plan, then changed on the controller before the bundle was packed
    with tarfile.open(str(tmp_path / "shop-2.0.tar.gz"), "w:gz") as tar:
        info = tarfile.TarInfo("shop-2.0/bin/../../../evil")
        tar.addfile(info)
    with pytest.raises(AnsibleActionFail) as info:
        action.build_bundle(planned, ["shop"], str(tmp_path / "releases.tar.gz"))
    assert str(info.value).startswith("site shop: field 'artifact': %s" % (tmp_path / "shop-2.0.tar.gz"))
    assert "contains '..'" in str(info.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="extract_bundle chowns every file to root")
def test_a_directory_changed_into_a_bad_one_is_refused_on_the_host_at_the_latest(tmp_path, planned):
    os.symlink("../../etc/passwd", str(tmp_path / "blog-1.0" / "leak"))
    path = str(tmp_path / "releases.tar.gz")
    try:
        action.build_bundle(planned, ["blog"], path)
    except AnsibleActionFail as exc:          # refused on the controller already: fine too
        assert str(exc).startswith("site blog: field 'artifact'") and "points outside the release" in str(exc)
        return
    os.makedirs(str(tmp_path / "host" / "blog"))
    with tarfile.open(path) as tar:
        with pytest.raises(A.ArtifactError, match="blog: link 'leak' points outside the release"):
            U.extract_bundle(tar, {"blog": str(tmp_path / "host" / "blog")})


def test_the_bits_an_untrusted_artifact_loses_are_reported_per_site(tmp_path):
    """set-id, sticky and group/other write bits are dropped on the controller, and named."""
    tree = tmp_path / "blog-1.0"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "app").write_bytes(b"#!/bin/sh\n")
    (tree / "bin" / "app").chmod(0o755)
    (tree / "bin" / "helper").write_bytes(b"#!/bin/sh\n")
    (tree / "bin" / "helper").chmod(0o4755)
    (tree / "data").mkdir()
    (tree / "data").chmod(0o2777)
    with tarfile.open(str(tmp_path / "shop.tar.gz"), "w:gz") as tar:
        for name, mode in (("bin/app", 0o755), ("bin/suid", 0o6755), ("open", 0o666)):
            info = tarfile.TarInfo(name)
            info.mode, info.size = mode, 0
            tar.addfile(info)
    sites = [dict(name="blog", listen="127.0.0.1:8001", version="1.0", artifact="blog-1.0/", command="bin/app"),
             dict(name="shop", listen="127.0.0.1:8002", version="1.0", artifact="shop.tar.gz", command="bin/app")]
    result = P.plan_sites(sites, role_settings(artifact_base=str(tmp_path)))
    assert result["errors"] == []
    dropped = action.build_bundle(result["sites"], ["blog", "shop"], str(tmp_path / "bundle.tar.gz"))
    assert dict((k, sorted(v)) for k, v in dropped.items()) == {"blog": ["bin/helper", "data"], "shop": ["bin/suid", "open"]}
    with tarfile.open(str(tmp_path / "bundle.tar.gz")) as tar:
        assert all(m.mode & 0o7022 == 0 for m in tar if not m.issym())
