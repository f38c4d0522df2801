# -*- coding: utf-8 -*-
"""Release artifacts: the checks on the controller (inspect_tarball,
directory_problem), the bundle (pack_artifact, repack_tarball) and the
artifact SHA-256 (sha256_of) of plugins/plugin_utils/_artifacts.py, and
unpacking the bundle on the host (extract_bundle, plugins/module_utils/artifacts.py),
both by the rules of plugins/module_utils/shared.py.

Artifacts are untrusted: every test of a refused member also checks that the
error says which member and why.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import io
import os
import shutil
import stat
import tarfile
from unittest import mock

import pytest

from ansible_collections.onebox.deploy.plugins.module_utils import artifacts as U
from ansible_collections.onebox.deploy.plugins.plugin_utils import _artifacts as A
from ansible_collections.onebox.deploy.plugins.plugin_utils import _sites as S
from conftest import make_tree

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="extract_bundle chowns every file to root")


# --------------------------------------------------------------------------
# building archives
# --------------------------------------------------------------------------

def member(name, kind="file", data=b"", mode=None, link=None, uid=1000, gid=1000):
    """A tar member spec: kind is file, dir, sym, hard, chr or fifo."""
    return dict(name=name, kind=kind, data=data, mode=mode, link=link, uid=uid, gid=gid)


def _add(tar, spec):
    info = tarfile.TarInfo(spec["name"])
    info.uid, info.gid = spec["uid"], spec["gid"]
    info.uname = info.gname = "someone"
    kind = spec["kind"]
    if kind == "file":
        info.mode = 0o644 if spec["mode"] is None else spec["mode"]
        info.size = len(spec["data"])
        tar.addfile(info, io.BytesIO(spec["data"]))
        return
    info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
                 "chr": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
    info.mode = (0o755 if kind == "dir" else 0o777) if spec["mode"] is None else spec["mode"]
    if spec["link"] is not None:
        info.linkname = spec["link"]
    if kind == "chr":
        info.devmajor, info.devminor = 1, 3
    tar.addfile(info)


def write_tarball(path, members):
    """A .tar.gz artifact on the controller holding *members*."""
    with tarfile.open(str(path), "w:gz") as tar:
        for spec in members:
            _add(tar, spec)
    return str(path)


def bundle(members):
    """An open (uncompressed, in-memory) bundle holding *members*, as the host reads it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for spec in members:
            _add(tar, spec)
    buf.seek(0)
    return tarfile.open(fileobj=buf)


@pytest.fixture
def dests(tmp_path):
    """``dests(name, ...)`` -> ``{name: <tmp>/dest/<name>}``, each an empty directory."""
    def make(*names):
        out = {}
        for name in names:
            path = tmp_path / "dest" / name
            path.mkdir(parents=True)
            out[name] = str(path)
        return out
    return make


def mode_of(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


# --------------------------------------------------------------------------
# inspect_tarball: what the controller refuses
# --------------------------------------------------------------------------

@pytest.mark.parametrize("members", [
    [],
    [member(".", "dir")],
    [member("./", "dir")],
], ids=["no-member", "only-dot", "only-dot-slash"])
def test_inspect_refuses_an_empty_tarball(tmp_path, members):
    path = write_tarball(tmp_path / "empty.tar.gz", members)
    with pytest.raises(A.ArtifactError, match="is an empty archive"):
        A.inspect_tarball(path, "bin/app")
    site = {"name": "blog", "listen": "8001", "version": "1", "artifact": str(path), "command": "bin/app"}
    assert "is an empty archive" in " ".join(S.validate_sites([site], str(tmp_path)))


def test_inspect_refuses_what_is_not_a_tarball(tmp_path):
    path = tmp_path / "app.tar.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(A.ArtifactError, match="cannot be read as a .tar.gz"):
        A.inspect_tarball(str(path))


@pytest.mark.parametrize("bad,problem", [
    (member("/etc/cron.d/evil", data=b"x"), "member '/etc/cron.d/evil' has an absolute path"),
    (member("bin/../../evil", data=b"x"), "member 'bin/../../evil' contains '..'"),
    (member("../evil", data=b"x"), "contains '..'"),
    (member("bin/up", "sym", link="../../etc"), "link 'bin/up' points outside the release ('../../etc')"),
    (member("bin/abs", "sym", link="/etc/shadow"), "link 'bin/abs' points outside the release ('/etc/shadow')"),
    (member("bin/far", "sym", link="../lib/../../x"), "points outside the release"),
    (member("bin/hard", "hard", link="/etc/shadow"), "link 'bin/hard' points outside the release"),
    (member("bin/hard", "hard", link="../../etc/shadow"), "points outside the release"),
    (member("dev/null", "chr"), "member 'dev/null' is a device, FIFO or socket"),
    (member("run/pipe", "fifo"), "member 'run/pipe' is a device, FIFO or socket"),
])
def test_inspect_refuses_members_that_escape_or_are_special(tmp_path, bad, problem):
    path = write_tarball(tmp_path / "bad.tar.gz", [member("bin/app", data=b"#!/bin/sh\n", mode=0o755), bad])
    with pytest.raises(A.ArtifactError) as info:
        A.inspect_tarball(path, "bin/app")
    assert problem in str(info.value)


def test_inspect_accepts_links_that_stay_inside(tmp_path):
    path = write_tarball(tmp_path / "ok.tar.gz", [
        member("lib/app.py", data=b"print()\n"),
        member("bin/app", "sym", link="../lib/app.py"),
        member("bin/again", "hard", link="lib/app.py"),
        member("self", "sym", link="."),
    ])
    # names are the members' own (after stripping), not the directories they imply
    assert A.inspect_tarball(path, "bin/app")["names"] == {"lib/app.py", "bin/app", "bin/again", "self"}


def test_inspect_strips_a_lone_top_directory_holding_the_command(tmp_path):
    path = write_tarball(tmp_path / "app-1.2.tar.gz", [
        member("app-1.2", "dir"),
        member("app-1.2/bin", "dir"),
        member("app-1.2/bin/app", data=b"#!/bin/sh\n", mode=0o755),
        member("app-1.2/README", data=b"hi\n"),
    ])
    out = A.inspect_tarball(path, "bin/app")
    assert out["strip"] == "app-1.2"
    assert out["names"] == {"bin", "bin/app", "README"}


def test_inspect_strips_also_with_dot_slash_names(tmp_path):
    path = write_tarball(tmp_path / "app.tar.gz", [
        member("./app-1.2/bin/app", data=b"#!/bin/sh\n", mode=0o755),
    ])
    out = A.inspect_tarball(path, "bin/app")
    assert out["strip"] == "app-1.2" and out["names"] == {"bin/app"}


def test_inspect_keeps_a_lone_top_directory_when_the_command_is_found_at_the_top(tmp_path):
    # The only top-level entry is the directory bin/, and the command bin/app is
    # right there: bin/ is part of the release, not a wrapper to strip.
    path = write_tarball(tmp_path / "app.tar.gz", [member("bin/app", data=b"#!/bin/sh\n", mode=0o755)])
    out = A.inspect_tarball(path, "bin/app")
    assert out["strip"] == ""
    assert out["names"] == {"bin/app"}


def test_inspect_keeps_several_top_entries(tmp_path):
    path = write_tarball(tmp_path / "app.tar.gz", [
        member("app-1.2/bin/app", data=b"x", mode=0o755),
        member("NOTICE", data=b"x"),
    ])
    assert A.inspect_tarball(path, "bin/app")["strip"] == ""
    # and a command found nowhere: nothing stripped (validate_sites then names the command)
    path = write_tarball(tmp_path / "app2.tar.gz", [member("app-1.2/bin/app", data=b"x", mode=0o755)])
    assert A.inspect_tarball(path, "bin/other")["strip"] == ""


def test_validate_sites_finds_the_command_inside_a_stripped_directory(tmp_path):
    write_tarball(tmp_path / "app-1.2.tar.gz", [member("app-1.2/bin/app", data=b"#!/bin/sh\n", mode=0o755)])
    site = {"name": "blog", "listen": "127.0.0.1:8001", "version": "1.2", "artifact": "app-1.2.tar.gz",
            "command": "bin/app serve"}
    assert S.validate_sites([site], str(tmp_path)) == []
    errs = S.validate_sites([dict(site, command="bin/nope")], str(tmp_path))
    assert len(errs) == 1 and "field 'command'" in errs[0] and "'bin/nope' is not a file" in errs[0], errs


def test_directory_problem(tmp_path):
    tree = make_tree(str(tmp_path / "app"))
    assert A.directory_problem(tree) is None
    os.symlink("../../etc/passwd", os.path.join(tree, "static", "leak"))
    assert "link 'static/leak' points outside the release" in A.directory_problem(tree)
    os.unlink(os.path.join(tree, "static", "leak"))
    os.mkfifo(os.path.join(tree, "pipe"))
    assert A.directory_problem(tree) == "member 'pipe' is a device, FIFO or socket"


# --------------------------------------------------------------------------
# extract_bundle: what the host refuses and what it writes
# --------------------------------------------------------------------------

@needs_root
def test_extract_drops_set_id_sticky_and_group_other_write_bits(dests):
    dest = dests("blog")
    stats = U.extract_bundle(bundle([
        member("blog/bin", "dir", mode=0o3777),
        member("blog/bin/app", data=b"#!/bin/sh\n", mode=0o6777),
        member("blog/data", "dir", mode=0o1777),
        member("blog/data/file", data=b"x", mode=0o666),
        member("blog/plain", data=b"x", mode=0o640),
    ]), dest)
    root = dest["blog"]
    assert mode_of(os.path.join(root, "bin")) == 0o755
    assert mode_of(os.path.join(root, "bin", "app")) == 0o755
    assert mode_of(os.path.join(root, "data")) == 0o755
    assert mode_of(os.path.join(root, "data", "file")) == 0o644
    assert mode_of(os.path.join(root, "plain")) == 0o640
    assert sorted(stats["blog"]["dropped_bits"]) == ["bin", "bin/app", "data", "data/file"]
    assert stats["blog"]["files"] == 5


@needs_root
def test_extract_makes_everything_root_owned(dests):
    dest = dests("blog")
    U.extract_bundle(bundle([
        member("blog/bin", "dir", uid=4242, gid=4242),
        member("blog/bin/app", data=b"#!/bin/sh\n", mode=0o755, uid=4242, gid=4242),
        member("blog/run", "sym", link="bin/app", uid=4242, gid=4242),
        member("blog/deep/er/file", data=b"x", uid=4242, gid=4242),   # parents made on the way
    ]), dest)
    for top, dirs, files in os.walk(dest["blog"]):
        for entry in dirs + files:
            st = os.lstat(os.path.join(top, entry))
            assert (st.st_uid, st.st_gid) == (0, 0), os.path.join(top, entry)
    assert os.readlink(os.path.join(dest["blog"], "run")) == "bin/app"


@needs_root
def test_extract_refuses_a_member_path_through_a_symlink(dests, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = dests("blog")
    with pytest.raises(A.ArtifactError, match="goes through a symlink"):
        U.extract_bundle(bundle([
            member("blog/sub", "dir"),
            member("blog/lnk", "sym", link="sub"),
            member("blog/lnk/file", data=b"x"),
        ]), dest)
    assert not os.path.exists(os.path.join(dest["blog"], "sub", "file"))
    assert os.listdir(str(outside)) == []


@needs_root
def test_extract_refuses_a_member_written_over_a_symlink(dests):
    dest = dests("blog")
    with pytest.raises(A.ArtifactError, match="member 'app' appears twice"):
        U.extract_bundle(bundle([
            member("blog/real", data=b"x"),
            member("blog/app", "sym", link="real"),
            member("blog/app", data=b"overwrite"),
        ]), dest)
    with open(os.path.join(dest["blog"], "real"), "rb") as handle:
        assert handle.read() == b"x"


@needs_root
@pytest.mark.parametrize("link,problem", [
    ("shop/file", "blog: link 'h' points outside the release ('shop/file')"),   # another site's release
    ("/etc/passwd", "blog: link 'h' points outside the release ('/etc/passwd')"),
    ("blog/../shop/file", "points outside the release"),
    ("blog", "points outside the release"),
])
def test_extract_refuses_hardlinks_outside_the_release(dests, link, problem):
    dest = dests("blog", "shop")
    with pytest.raises(A.ArtifactError) as info:
        U.extract_bundle(bundle([
            member("shop/file", data=b"shop"),
            member("blog/app", data=b"blog"),
            member("blog/h", "hard", link=link),
        ]), dest)
    assert problem in str(info.value)
    assert not os.path.lexists(os.path.join(dest["blog"], "h"))


@needs_root
def test_extract_links_a_hardlink_inside_the_release(dests):
    dest = dests("blog")
    U.extract_bundle(bundle([member("blog/bin/app", data=b"app", mode=0o755),
                             member("blog/bin/alias", "hard", link="blog/bin/app")]), dest)
    a, b = (os.stat(os.path.join(dest["blog"], "bin", n)) for n in ("app", "alias"))
    assert a.st_ino == b.st_ino


@needs_root
def test_extract_refuses_a_hardlink_to_a_symlink(dests):
    dest = dests("blog")
    with pytest.raises(A.ArtifactError, match="hard link 'h' does not point at a file of the release"):
        U.extract_bundle(bundle([member("blog/app", data=b"x"), member("blog/l", "sym", link="app"),
                                 member("blog/h", "hard", link="blog/l")]), dest)


@needs_root
def test_extract_several_sites_from_one_bundle(dests):
    dest = dests("blog", "shop", "wiki")
    stats = U.extract_bundle(bundle([
        member("blog/bin/blog", data=b"blog", mode=0o755),
        member("shop/app.py", data=b"shop"),
        member("shop/static/a.css", data=b"css"),
        member("wiki/wiki", data=b"wiki", mode=0o755),
    ]), dest)
    assert {k: v["files"] for k, v in stats.items()} == {"blog": 1, "shop": 2, "wiki": 1}
    with open(os.path.join(dest["shop"], "static", "a.css"), "rb") as handle:
        assert handle.read() == b"css"
    assert sorted(os.listdir(dest["blog"])) == ["bin"]
    assert sorted(os.listdir(dest["wiki"])) == ["wiki"]


@needs_root
def test_extract_refuses_a_member_of_no_site(dests):
    with pytest.raises(A.ArtifactError, match="member 'evil/x' belongs to no release of this run"):
        U.extract_bundle(bundle([member("blog/a", data=b"x"), member("evil/x", data=b"x")]), dests("blog"))


@needs_root
def test_extract_refuses_a_site_without_any_member(dests):
    with pytest.raises(A.ArtifactError, match="shop: the artifact is empty"):
        U.extract_bundle(bundle([member("blog/a", data=b"x")]), dests("blog", "shop"))


@needs_root
@pytest.mark.parametrize("bad,problem", [
    (member("blog/../x", data=b"x"), "contains '..'"),
    (member("blog/up", "sym", link="../../../etc"), "points outside the release"),
    (member("blog/dev", "chr"), "is a device, FIFO or socket"),
])
def test_extract_checks_members_again_on_the_host(dests, bad, problem):
    with pytest.raises(A.ArtifactError) as info:
        U.extract_bundle(bundle([member("blog/app", data=b"x"), bad]), dests("blog"))
    assert problem in str(info.value) and str(info.value).startswith("blog")


# --------------------------------------------------------------------------
# pack_artifact / repack_tarball -> extract_bundle
# --------------------------------------------------------------------------

def pack(tmp_path, *items):
    """Write a bundle of (kind, path, prefix[, strip]) items; returns its path."""
    path = str(tmp_path / "bundle.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        for item in items:
            if item[0] == "tarball":
                A.repack_tarball(item[1], tar, item[2], item[3] if len(item) > 3 else "")
            else:
                A.pack_artifact(item[0], item[1], tar, item[2])
    return path


@needs_root
def test_pack_directory_then_extract_round_trip(tmp_path, dests):
    tree = make_tree(str(tmp_path / "src" / "blog-1.4.2"))
    os.chmod(os.path.join(tree, "README"), 0o664)   # group write: dropped on the way
    path = pack(tmp_path, ("dir", tree + "/", "blog"))
    dest = dests("blog")
    with tarfile.open(path) as tar:
        U.extract_bundle(tar, dest)
    out = dest["blog"]
    # Same content, same executable bits, same symlinks, same (empty) directories.
    assert A.sha256_of(out) == A.sha256_of(tree)
    assert os.path.islink(os.path.join(out, "run")) and os.readlink(os.path.join(out, "run")) == "bin/app"
    assert mode_of(os.path.join(out, "bin", "app")) == 0o755
    assert mode_of(os.path.join(out, "README")) == 0o644
    assert os.path.isdir(os.path.join(out, "empty"))
    with open(os.path.join(out, "static", "css", "site.css")) as handle:
        assert handle.read() == "body{}\n"


@needs_root
def test_pack_file_and_repacked_tarball_in_one_bundle(tmp_path, dests):
    tool = tmp_path / "tool"
    tool.write_bytes(b"\x7fELF tool")
    tool.chmod(0o700)
    tarball = write_tarball(tmp_path / "shop-2.1.tar.gz", [
        member("shop-2.1", "dir", mode=0o775),
        member("shop-2.1/bin/shop", data=b"#!/bin/sh\n", mode=0o4755),
        member("shop-2.1/lib/shop.py", data=b"print()\n"),
        member("shop-2.1/bin/lib", "sym", link="../lib"),
        member("shop-2.1/bin/again", "hard", link="shop-2.1/lib/shop.py"),
    ])
    strip = A.inspect_tarball(tarball, "bin/shop")["strip"]
    assert strip == "shop-2.1"
    path = pack(tmp_path, ("file", str(tool), "tool"), ("tarball", tarball, "shop", strip))
    dest = dests("tool", "shop")
    with tarfile.open(path) as tar:
        for info in tar:
            assert (info.uid, info.gid, info.uname, info.gname) == (0, 0, "root", "root"), info.name
            assert not info.mode & 0o7022 or info.issym(), (info.name, oct(info.mode))
    with tarfile.open(path) as tar:
        U.extract_bundle(tar, dest)
    assert sorted(os.listdir(dest["tool"])) == ["tool"]
    assert mode_of(os.path.join(dest["tool"], "tool")) == 0o755
    shop = dest["shop"]
    assert sorted(os.listdir(shop)) == ["bin", "lib"]
    assert mode_of(os.path.join(shop, "bin", "shop")) == 0o755
    assert os.readlink(os.path.join(shop, "bin", "lib")) == "../lib"
    assert os.stat(os.path.join(shop, "bin", "again")).st_ino == os.stat(os.path.join(shop, "lib", "shop.py")).st_ino


def test_repack_refuses_a_hardlink_out_of_the_stripped_directory(tmp_path):
    tarball = write_tarball(tmp_path / "x.tar.gz", [
        member("app/bin/app", data=b"x", mode=0o755),
        member("app/h", "hard", link="other/file"),
    ])
    with tarfile.open(str(tmp_path / "b.tar"), "w") as tar:
        with pytest.raises(A.ArtifactError, match="link 'app/h' points outside the release"):
            A.repack_tarball(tarball, tar, "blog", "app")


def test_pack_refuses_unknown_kinds_and_special_files(tmp_path):
    with tarfile.open(str(tmp_path / "b.tar"), "w") as tar:
        with pytest.raises(A.ArtifactError, match="cannot pack artifact kind 'tarball'"):
            A.pack_artifact("tarball", str(tmp_path), tar, "blog")
        tree = tmp_path / "tree"
        tree.mkdir()
        os.mkfifo(str(tree / "pipe"))
        with pytest.raises(A.ArtifactError, match="is a device, FIFO or socket"):
            A.pack_artifact("dir", str(tree), tar, "blog")


# --------------------------------------------------------------------------
# Links followed through each other ('s -> .' plus 'e -> s/..' leaves the
# release although each looks harmless on its own), directories over links,
# and errors that name the site.
# --------------------------------------------------------------------------


def test_inspect_refuses_a_chain_of_links_that_leaves_the_release(tmp_path):
    path = write_tarball(tmp_path / "chain.tar.gz", [
        member("bin/app", data=b"x", mode=0o755),
        member("s", "sym", link="."),
        member("e", "sym", link="s/.."),     # s/.. is the directory above the release
    ])
    with pytest.raises(A.ArtifactError, match="points outside the release"):
        A.inspect_tarball(path, "bin/app")


@needs_root
def test_extract_never_hardlinks_a_file_from_outside_the_release(tmp_path, dests):
    secret = tmp_path / "dest" / "secret"
    dest = dests("blog")
    secret.write_text("not part of any release\n")
    try:
        U.extract_bundle(bundle([
            member("blog/app", data=b"x"),
            member("blog/s", "sym", link="."),
            member("blog/e", "sym", link="s/.."),
            member("blog/h", "hard", link="blog/e/secret"),
        ]), dest)
    except A.ArtifactError:
        pass
    linked = os.path.lexists(os.path.join(dest["blog"], "h"))
    assert not (linked and os.stat(os.path.join(dest["blog"], "h")).st_ino == os.stat(str(secret)).st_ino)


@needs_root
def test_extract_never_changes_a_directory_outside_the_release(tmp_path, dests):
    dest = dests("blog")
    victim = tmp_path / "dest" / "victim"      # next to the release directory
    victim.mkdir()
    os.chmod(str(victim), 0o1777)
    try:
        U.extract_bundle(bundle([
            member("blog/app", data=b"x"),
            member("blog/s", "sym", link="."),
            member("blog/e", "sym", link="s/../victim"),      # lexically inside, really ../victim
            member("blog/e", "dir", mode=0o700),
        ]), dest)
    except A.ArtifactError:
        pass
    assert mode_of(victim) == 0o1777


@needs_root
def test_extract_error_through_a_symlink_names_the_site(dests):
    with pytest.raises(A.ArtifactError) as info:
        U.extract_bundle(bundle([member("blog/sub", "dir"), member("blog/lnk", "sym", link="sub"),
                                 member("blog/lnk/file", data=b"x")]), dests("blog"))
    assert str(info.value).startswith("blog: ")


# --------------------------------------------------------------------------
# sha256_of
# --------------------------------------------------------------------------

def test_sha256_same_tree_in_two_places(trees):
    a, b = trees
    digest = A.sha256_of(a)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert A.sha256_of(b) == digest
    assert A.sha256_of(a + "/") == digest


def test_sha256_is_stable_over_mtime_and_copy(trees, tmp_path):
    a = trees[0]
    digest = A.sha256_of(a)
    copy = str(tmp_path / "copy")
    shutil.copytree(a, copy, symlinks=True)
    for top, dirs, files in os.walk(copy):
        for name in files:
            path = os.path.join(top, name)
            if not os.path.islink(path):
                os.utime(path, (1, 1))
    assert A.sha256_of(copy) == digest


def test_sha256_content_change(trees):
    a, b = trees
    with open(os.path.join(b, "static", "css", "site.css"), "w") as handle:
        handle.write("body{color:red}\n")
    assert A.sha256_of(a) != A.sha256_of(b)


def test_sha256_exec_bit_change(trees):
    a, b = trees
    os.chmod(os.path.join(b, "README"), 0o755)
    assert A.sha256_of(a) != A.sha256_of(b)
    os.chmod(os.path.join(b, "README"), 0o644)
    assert A.sha256_of(a) == A.sha256_of(b)


def test_sha256_added_file(trees):
    a, b = trees
    with open(os.path.join(b, "static", "extra.txt"), "w") as handle:
        handle.write("")
    assert A.sha256_of(a) != A.sha256_of(b)


def test_sha256_added_empty_directory(trees):
    a, b = trees
    os.makedirs(os.path.join(b, "static", "img"))
    assert A.sha256_of(a) != A.sha256_of(b)


def test_sha256_renamed_file(trees):
    a, b = trees
    os.rename(os.path.join(b, "README"), os.path.join(b, "README.md"))
    assert A.sha256_of(a) != A.sha256_of(b)


def test_sha256_symlink_target_change(trees):
    a, b = trees
    os.unlink(os.path.join(b, "run"))
    os.symlink("./bin/app", os.path.join(b, "run"))   # same file, other target text
    assert A.sha256_of(a) != A.sha256_of(b)


def test_sha256_symlink_vs_file_copy(trees):
    a, b = trees
    os.unlink(os.path.join(b, "run"))
    shutil.copy2(os.path.join(b, "bin", "app"), os.path.join(b, "run"))
    assert A.sha256_of(a) != A.sha256_of(b)


def test_sha256_of_file_is_sha256_of_bytes(tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)   # more than one read chunk
    path = tmp_path / "tool"
    path.write_bytes(data)
    assert A.sha256_of(str(path)) == hashlib.sha256(data).hexdigest()
    empty = tmp_path / "empty.tar.gz"
    empty.write_bytes(b"")
    assert A.sha256_of(str(empty)) == hashlib.sha256(b"").hexdigest()


def test_sha256_exec_bit_does_not_depend_on_caller(trees):
    a = trees[0]
    path = os.path.join(a, "bin", "app")
    os.chmod(path, 0o744)   # executable by its owner only
    as_owner = A.sha256_of(a)

    real_access = os.access

    def access_as_other_user(p, mode, *args, **kwargs):
        # the kernel's answer for a user that is neither the owner nor in the group
        if mode == os.X_OK:
            return bool(os.stat(p).st_mode & 0o001)
        return real_access(p, mode, *args, **kwargs)

    with mock.patch.object(A.os, "access", side_effect=access_as_other_user):
        as_other = A.sha256_of(a)
    assert as_other == as_owner
