"""docs/quickstart.md keeps its markers, without a container.

The Molecule scenario ``quickstart`` carries out the page; these checks catch
what would make it skip or misread a block, and what it cannot see: every
fenced block has a ``<!-- quickstart: run|file PATH|skip WHY -->`` marker
(tests/harness/quickstart_page.py), file blocks name their path and parse,
and what the page refers to exists (the collection version, the files it
copies out of the installed collection, the playbooks, the links). The
README's short version uses the page's commands and files.
"""

import configparser
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "harness"))
import quickstart_page  # noqa: E402  pylint: disable=wrong-import-position

PAGE = ROOT / "docs" / "quickstart.md"
BLOCKS = quickstart_page.blocks()
SCENARIO_TEST = ROOT / "molecule" / "quickstart" / "tests" / "test_quickstart.py"
VERSION = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
INSTALLED = "collections/ansible_collections/onebox/deploy/"


def ids(blocks):
    return ["line%d-%s" % (b.line, b.kind) for b in blocks]


def of(kind):
    return [b for b in BLOCKS if b.kind == kind]


def commands(blocks):
    """The command lines of shell blocks, without trailing comments."""
    out = []
    for block in blocks:
        for line in block.body.splitlines():
            line = re.sub(r"\s+# .*$", "", line).strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def test_every_fenced_block_has_a_marker():
    assert BLOCKS
    text = PAGE.read_text()
    # every marker was read with its block, and every fence pair is one block
    assert text.count("<!-- quickstart:") == len(BLOCKS)
    assert len(re.findall(r"^```\w*$", text, re.M)) == 2 * len(BLOCKS)


@pytest.mark.parametrize("text,error", [
    ("```sh\nls\n```\n", "without a <!-- quickstart"),
    ("<!-- quickstart: run -->\n\n```sh\nls\n```\n", "marker without a fenced block"),
    ("<!-- quickstart: skip -->\n```sh\nls\n```\n", "malformed marker"),
    ("<!-- quickstart: runs -->\n```sh\nls\n```\n", "malformed marker"),
    ("- a list\n\n  ```sh\n  ls\n  ```\n", "indented fence"),
    ("<!-- quickstart: run -->\n```sh\nls\n", "never closed"),
])
def test_the_reader_rejects_a_page_with(text, error):
    with pytest.raises(quickstart_page.PageError, match=re.escape(error)):
        quickstart_page.blocks(text)


def test_the_page_runs_something_of_each_kind():
    assert of("run") and of("file")
    steps = [b.arg for b in of("run") if b.arg]
    assert len(steps) == len(set(steps)), "a step name is used twice"
    assert all(re.match(r"^[a-z][a-z0-9.-]*$", s) for s in steps), steps


def test_every_named_step_has_checks_in_the_scenario():
    checks = re.findall(r'^    "([a-z][a-z0-9.-]*)": check_\w+,$', SCENARIO_TEST.read_text(), re.M)
    assert sorted(checks) == sorted(b.arg for b in of("run") if b.arg)


@pytest.mark.parametrize("block", of("run"), ids=ids(of("run")))
def test_run_blocks_are_shell(block):
    assert block.lang == "sh"


@pytest.mark.parametrize("block", of("skip"), ids=ids(of("skip")))
def test_skip_blocks_say_why(block):
    assert block.arg and len(block.arg.split()) >= 3, block


@pytest.mark.parametrize("block", of("file"), ids=ids(of("file")))
def test_file_blocks_name_their_path_and_parse(block):
    path = block.arg
    assert not path.startswith("/") and ".." not in path.split("/"), path
    assert block.body.splitlines()[0] == "# " + path, "the reader sees the path in the block's first line"
    if block.lang == "yaml":
        assert path.endswith((".yml", ".yaml"))
        assert yaml.safe_load(block.body) is not None
    else:
        assert block.lang == "ini" and path.endswith(".cfg")
        parser = configparser.ConfigParser()
        parser.read_string(block.body)
        assert parser.sections()


def test_the_collection_version_is_galaxy_ymls():
    names = set(re.findall(r"onebox-deploy-(\d[^/\s`]*?)\.tar\.gz", PAGE.read_text()))
    names |= set(re.findall(r"onebox-deploy-(\d[^/\s`]*?)\.tar\.gz", (ROOT / "README.md").read_text()))
    assert names == {VERSION}


def test_what_the_page_copies_out_of_the_installed_collection_is_shipped():
    paths = re.findall(re.escape(INSTALLED) + r"(\S+)", " ".join(b.body for b in of("run")))
    assert paths
    ignored = yaml.safe_load((ROOT / "galaxy.yml").read_text())["build_ignore"]
    for path in paths:
        assert (ROOT / path).exists(), path
        assert not any(path == i or path.startswith(i + "/") for i in ignored), path


def test_the_playbooks_the_page_runs_exist():
    names = set(re.findall(r"\bonebox\.deploy\.(\w+)", "".join(b.body for b in BLOCKS)))
    roles = {"site", "traefik"}
    for name in names - roles:
        assert (ROOT / "playbooks" / (name + ".yml")).is_file(), name
    assert {"site", "deploy", "history", "rollback"} <= names


def slug(heading):
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(doc):
    return {slug(h) for h in re.findall(r"^#+ (.+)$", re.sub(r"^```.*?^```$", "", doc.read_text(), flags=re.S | re.M),
                                        re.M)}


@pytest.mark.parametrize("doc", sorted(p.name for p in (ROOT / "docs").glob("*.md")) + ["../README.md"])
def test_links_to_the_quickstart_and_from_it_resolve(doc):
    source = ROOT / "docs" / doc
    for target, anchor in re.findall(r"\]\(([\w./-]+\.md)(?:#([\w-]+))?\)", source.read_text()):
        path = (source.parent / target).resolve()
        if doc != "quickstart.md" and path != PAGE:
            continue
        assert path.is_file(), (doc, target)
        if anchor:
            assert anchor in anchors(path), (doc, target, anchor)


def test_the_readme_short_version_is_the_pages():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Quick start in an infra repo"):]
    section = section[:section.index("\n## ", 1)]
    assert "[docs/quickstart.md](docs/quickstart.md)" in section
    fenced = re.findall(r"^```(\w+)\n(.*?)^```$", section, re.S | re.M)
    page_commands = set(commands(of("run")) + commands(of("skip")))
    shown = commands([quickstart_page.Block(0, "", "", lang, body) for lang, body in fenced if lang == "sh"])
    assert shown and set(shown) <= page_commands, set(shown) - page_commands
    files = dict((b.arg, b.body) for b in reversed(of("file")))  # each path's first version
    for lang, body in fenced:
        if lang == "yaml":
            path = body.splitlines()[0][2:]
            assert body == files[path], "README.md shows %s other than the page" % path
