# -*- coding: utf-8 -*-
"""onebox.deploy.stage_releases (plugins/modules/stage_releases.py over
``releases.stage``), run in-process with ``releases`` and ``bundle`` as the
action plugin sends them; the bundle is built with ``artifacts.pack_artifact``
like the action plugin builds it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import json
import os
import tarfile

import pytest

from ansible_collections.onebox.deploy.plugins.plugin_utils import _artifacts as A
from ansible_collections.onebox.deploy.plugins.module_utils import releases as R
from ansible_collections.onebox.deploy.plugins.modules import stage_releases
from conftest import make_tree
from module_runner import invoke

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="stage_releases unpacks root-owned files")


def run(args, check_mode=False, warnings=None):
    patches = {}
    if warnings is not None:
        patches["warn"] = lambda self, msg: warnings.append(msg)
    return invoke(stage_releases.main, args, check_mode, patches=patches)[:2]


def build_bundle(path, artifacts):
    """``artifacts``: [(prefix, kind, source path)], packed as the action plugin packs them."""
    with tarfile.open(str(path), "w:gz", compresslevel=1) as tar:
        for prefix, kind, source in artifacts:
            A.pack_artifact(kind, source, tar, prefix)
    return str(path)


def release(name, site_dir, version, stage=True, point_current=True, **meta):
    return dict(name=name, version=version, site_dir=str(site_dir), stage=stage, point_current=point_current,
                meta=dict(dict(sha256="a" * 64, artifact="/controller/%s" % name, by="alice@laptop"), **meta))


@pytest.fixture
def app(tmp_path):
    return make_tree(str(tmp_path / "controller" / "blog-1.0"))


@pytest.fixture
def site_dir(tmp_path):
    return tmp_path / "srv" / "blog"


def test_first_release_is_unpacked_and_current_pointed(tmp_path, app, site_dir):
    bundle = build_bundle(tmp_path / "b.tar.gz", [("blog", "dir", app)])
    failed, res = run(dict(releases=[release("blog", site_dir, "1.0", sha256=A.sha256_of(app))], bundle=bundle,
                           run_id="run-1"))
    assert not failed, res.get("msg")
    rel = site_dir / "releases" / "1.0"
    assert res["changed"] is True
    assert res["sites"] == {"blog": dict(changed=True, staged=True, replaced=False, current=str(rel),
                                         dropped_bits=[])}
    assert os.readlink(str(site_dir / "current")) == str(rel)
    with open(str(rel / ".onebox-release.json")) as handle:
        meta = json.load(handle)
    assert meta["version"] == "1.0" and meta["run_id"] == "run-1" and meta["by"] == "alice@laptop"
    assert meta["sha256"] == A.sha256_of(app) and meta["artifact"] == "/controller/blog"
    assert isinstance(meta["installed_at"], float)
    # the unpacked tree is the artifact (the metadata file aside), owned by root, no leftovers
    os.unlink(str(rel / ".onebox-release.json"))
    assert A.sha256_of(str(rel)) == A.sha256_of(app)
    for top, dirs, files in os.walk(str(site_dir)):
        for entry in dirs + files:
            st = os.lstat(os.path.join(top, entry))
            assert (st.st_uid, st.st_gid) == (0, 0)
    assert sorted(os.listdir(str(site_dir / "releases"))) == ["1.0"]
    assert R.list_releases(str(site_dir))[0]["version"] == "1.0"


def test_nothing_to_stage_and_current_in_place_changes_nothing(tmp_path, app, site_dir):
    bundle = build_bundle(tmp_path / "b.tar.gz", [("blog", "dir", app)])
    assert not run(dict(releases=[release("blog", site_dir, "1.0")], bundle=bundle, run_id="run-1"))[0]
    listing = sorted(os.listdir(str(site_dir / "releases" / "1.0")))
    failed, res = run(dict(releases=[release("blog", site_dir, "1.0", stage=False)], run_id="run-2"))
    assert not failed, res.get("msg")
    assert res["changed"] is False
    assert res["sites"]["blog"] == dict(changed=False, staged=False, replaced=False, current=None, dropped_bits=[])
    assert sorted(os.listdir(str(site_dir / "releases" / "1.0"))) == listing
    with open(str(site_dir / "releases" / "1.0" / ".onebox-release.json")) as handle:
        assert json.load(handle)["run_id"] == "run-1"


def test_a_serving_site_keeps_current_until_the_roll(tmp_path, app, site_dir):
    bundle = build_bundle(tmp_path / "b.tar.gz", [("blog", "dir", app)])
    assert not run(dict(releases=[release("blog", site_dir, "1.0")], bundle=bundle, run_id="run-1"))[0]
    failed, res = run(dict(releases=[release("blog", site_dir, "1.1", point_current=False)], bundle=bundle,
                           run_id="run-2"))
    assert not failed, res.get("msg")
    assert res["sites"]["blog"]["staged"] is True and res["sites"]["blog"]["current"] is None
    assert os.readlink(str(site_dir / "current")) == str(site_dir / "releases" / "1.0")
    assert sorted(os.listdir(str(site_dir / "releases"))) == ["1.0", "1.1"]


def test_replacing_a_release_renames_the_old_one_aside(tmp_path, app, site_dir):
    bundle = build_bundle(tmp_path / "b.tar.gz", [("blog", "dir", app)])
    assert not run(dict(releases=[release("blog", site_dir, "1.0")], bundle=bundle, run_id="run-1"))[0]
    with open(os.path.join(app, "README"), "w") as handle:
        handle.write("other content, same version\n")
    bundle = build_bundle(tmp_path / "b2.tar.gz", [("blog", "dir", app)])
    failed, res = run(dict(releases=[release("blog", site_dir, "1.0", sha256="b" * 64)], bundle=bundle,
                           run_id="run-2"))
    assert not failed, res.get("msg")
    assert res["sites"]["blog"]["replaced"] is True and res["sites"]["blog"]["staged"] is True
    releases = site_dir / "releases"
    assert sorted(os.listdir(str(releases))) == [".1.0.replaced-run-2", "1.0"]
    assert (releases / "1.0" / "README").read_text() == "other content, same version\n"
    assert (releases / ".1.0.replaced-run-2" / "README").read_text() == "readme\n"
    with open(str(releases / "1.0" / ".onebox-release.json")) as handle:
        assert json.load(handle)["sha256"] == "b" * 64
    # the aside copy is no release: it is not listed, the next prune removes it
    assert [r["version"] for r in R.list_releases(str(site_dir))] == ["1.0"]
    assert os.readlink(str(site_dir / "current")) == str(releases / "1.0")


def test_several_sites_from_one_bundle(tmp_path, app):
    tool = tmp_path / "controller" / "tool"
    tool.write_bytes(b"\x7fELF tool")
    tool.chmod(0o700)
    bundle = build_bundle(tmp_path / "b.tar.gz", [("blog", "dir", app), ("tool", "file", str(tool))])
    blog, tool_dir, wiki = (tmp_path / "srv" / n for n in ("blog", "tool", "wiki"))
    failed, res = run(dict(releases=[release("blog", blog, "1.0"), release("tool", tool_dir, "7"),
                                     release("wiki", wiki, "3", stage=False, point_current=False)],
                           bundle=bundle, run_id="run-1"))
    assert not failed, res.get("msg")
    assert [n for n in sorted(res["sites"]) if res["sites"][n]["changed"]] == ["blog", "tool"]
    assert os.stat(str(tool_dir / "releases" / "7" / "tool")).st_mode & 0o777 == 0o755
    assert (blog / "releases" / "1.0" / "bin" / "app").exists()
    assert not wiki.exists()


def test_check_mode_writes_nothing(tmp_path, site_dir):
    failed, res = run(dict(releases=[release("blog", site_dir, "1.0")], run_id="run-1"), check_mode=True)
    assert not failed, res.get("msg")
    assert res["changed"] is True
    assert res["sites"]["blog"] == dict(changed=True, staged=True, replaced=False,
                                        current=str(site_dir / "releases" / "1.0"), dropped_bits=[])
    assert not (tmp_path / "srv").exists()


def test_staging_without_a_bundle_fails(site_dir):
    failed, res = run(dict(releases=[release("blog", site_dir, "1.0")], run_id="run-1"))
    assert failed and "no bundle was sent" in res["msg"]
    assert not site_dir.exists()


def test_dropped_bits_are_reported(tmp_path, site_dir):
    bundle = tmp_path / "b.tar"
    with tarfile.open(str(bundle), "w") as tar:
        info = tarfile.TarInfo("blog/bin/app")
        info.mode, info.size = 0o4775, 3
        tar.addfile(info, io.BytesIO(b"app"))
    warnings = []
    failed, res = run(dict(releases=[release("blog", site_dir, "1.0")], bundle=str(bundle), run_id="r"),
                      warnings=warnings)
    assert not failed, res.get("msg")
    assert res["sites"]["blog"]["dropped_bits"] == ["bin/app"]
    assert warnings == ["site blog: dropped set-id, sticky or group/other write bits of bin/app"]
    assert os.stat(str(site_dir / "releases" / "1.0" / "bin" / "app")).st_mode & 0o7777 == 0o755


def test_a_bad_member_fails_naming_the_site_and_leaves_no_release(tmp_path, site_dir):
    bundle = tmp_path / "b.tar"
    with tarfile.open(str(bundle), "w") as tar:
        info = tarfile.TarInfo("blog/app")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
        link = tarfile.TarInfo("blog/h")
        link.type, link.linkname = tarfile.LNKTYPE, "/etc/passwd"
        tar.addfile(link)
    failed, res = run(dict(releases=[release("blog", site_dir, "1.0")], bundle=str(bundle), run_id="r"))
    assert failed
    assert res["msg"].startswith("site blog: link 'h' points outside the release")
    assert not (site_dir / "releases" / "1.0").exists() and not os.path.lexists(str(site_dir / "current"))


# --------------------------------------------------------------------------
# diff mode
# --------------------------------------------------------------------------

def test_diff_shows_each_release_staged_and_each_current_pointed(tmp_path, app, site_dir):
    bundle = build_bundle(tmp_path / "b.tar.gz", [("blog", "dir", app)])
    first = dict(releases=[release("blog", site_dir, "1.0")], bundle=bundle, run_id="run-1", _ansible_diff=True)
    failed, res = run(first)
    assert not failed, res.get("msg")
    rel = str(site_dir / "releases" / "1.0")
    current = str(site_dir / "current")
    assert res["diff"] == [
        dict(before_header=rel, after_header=rel, before="", after="release 1.0, artifact sha256:%s\n" % ("a" * 64)),
        dict(before_header=current, after_header=current, before="-> (nothing)\n", after="-> %s\n" % rel),
    ]
    # the next release: current moves from the one before
    failed, res = run(dict(releases=[release("blog", site_dir, "1.1", sha256="c" * 64)], bundle=bundle,
                           run_id="run-2", _ansible_diff=True))
    assert not failed, res.get("msg")
    new = str(site_dir / "releases" / "1.1")
    assert res["diff"] == [
        dict(before_header=new, after_header=new, before="", after="release 1.1, artifact sha256:%s\n" % ("c" * 64)),
        dict(before_header=current, after_header=current, before="-> %s\n" % rel, after="-> %s\n" % new),
    ]


def test_diff_of_a_replaced_release_and_of_a_serving_site(tmp_path, app, site_dir):
    bundle = build_bundle(tmp_path / "b.tar.gz", [("blog", "dir", app)])
    assert not run(dict(releases=[release("blog", site_dir, "1.0")], bundle=bundle, run_id="run-1"))[0]
    failed, res = run(dict(releases=[release("blog", site_dir, "1.0", point_current=False, sha256=None)],
                           bundle=bundle, run_id="run-2", _ansible_diff=True))
    assert not failed, res.get("msg")
    rel = str(site_dir / "releases" / "1.0")
    # other content under the same version; current untouched (the roll points it); no checksum known
    assert res["diff"] == [dict(before_header=rel, after_header=rel, before="(a release of other content)\n",
                                after="release 1.0, artifact sha256:?\n")]


def test_diff_is_empty_when_nothing_changes_and_absent_without_diff_mode(tmp_path, app, site_dir):
    bundle = build_bundle(tmp_path / "b.tar.gz", [("blog", "dir", app)])
    failed, res = run(dict(releases=[release("blog", site_dir, "1.0")], bundle=bundle, run_id="run-1"))
    assert not failed and "diff" not in res
    failed, res = run(dict(releases=[release("blog", site_dir, "1.0", stage=False)], run_id="run-2",
                           _ansible_diff=True))
    assert not failed and res["changed"] is False and res["diff"] == []


def test_diff_in_check_mode_shows_what_would_be_done(tmp_path, site_dir):
    shop = tmp_path / "srv" / "shop"
    failed, res = run(dict(releases=[release("blog", site_dir, "1.0"), release("shop", shop, "2", stage=False)],
                           run_id="run-1", _ansible_diff=True), check_mode=True)
    assert not failed, res.get("msg")
    assert [(d["after_header"], d["after"]) for d in res["diff"]] == [
        (str(site_dir / "releases" / "1.0"), "release 1.0, artifact sha256:%s\n" % ("a" * 64)),
        (str(site_dir / "current"), "-> %s\n" % (site_dir / "releases" / "1.0")),
        (str(shop / "current"), "-> %s\n" % (shop / "releases" / "2")),
    ]
    assert not (tmp_path / "srv").exists()
