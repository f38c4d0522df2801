# -*- coding: utf-8 -*-
"""docs/how-it-works.md's map ("Which file does what") names every file of
the collection that runs or is rendered, every path it names exists, and no
import crosses between controller code (plugins/plugin_utils/, filter/,
action/) and host code (plugins/modules/, module_utils/) but through
plugins/module_utils/shared.py."""

from __future__ import absolute_import, division, print_function

import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "how-it-works.md")
PACKAGE = "ansible_collections.onebox.deploy.plugins."
#: Short names the map uses, by their first part, for paths under plugins/.
SHORT = {"filter": "plugins/filter", "action": "plugins/action", "modules": "plugins/modules",
         "module_utils": "plugins/module_utils", "doc_fragments": "plugins/doc_fragments"}


def map_table():
    text = open(DOC, encoding="utf-8").read()
    section = text.split("### Which file does what", 1)[1].split("\n#", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| step")]


def named_paths():
    paths = set()
    for line in map_table():
        for name in re.findall(r"`([^`]+)`", line):
            if name.startswith("_") and name.endswith(".py"):
                paths.add("plugins/plugin_utils/" + name)
            elif name.split("/", 1)[0] in SHORT:
                paths.add(SHORT[name.split("/", 1)[0]] + "/" + name.split("/", 1)[1])
            else:
                paths.add(name)
    return paths


def collection_files():
    """Every file of the collection that runs or is rendered (filter documentation aside)."""
    out = set()
    for top in ("plugins", "roles", "playbooks", "templates"):
        for dirpath, dirnames, names in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for name in names:
                rel = os.path.relpath(os.path.join(dirpath, name), ROOT)
                if name == "__init__.py" or (rel.startswith("plugins/filter/") and name.endswith(".yml")):
                    continue
                out.add(rel)
    return out


def test_the_map_names_every_file_and_only_files_that_exist():
    named = named_paths()
    files = collection_files()
    assert sorted(files - named) == [], "files missing from the map in docs/how-it-works.md"
    assert sorted(named - files) == [], "the map in docs/how-it-works.md names files that do not exist"


def imports(path):
    tree = ast.parse(open(os.path.join(ROOT, path), encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            yield node.module[len(PACKAGE):]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE):
                    yield alias.name[len(PACKAGE):]


@pytest.mark.parametrize("path", sorted(p for p in collection_files() if p.endswith(".py")))
def test_no_import_crosses_between_controller_and_host_code_but_through_shared(path):
    side = "host" if path.startswith(("plugins/modules/", "plugins/module_utils/")) else "controller"
    for module in imports(path):
        if side == "host":
            assert module.startswith("module_utils."), (path, module)
        elif module.startswith("module_utils."):
            assert module == "module_utils.shared", (path, module)
