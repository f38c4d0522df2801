# -*- coding: utf-8 -*-
"""Make this repository importable as ``ansible_collections.onebox.deploy``.

Tests live in a tree that mirrors ``plugins/`` (``plugins/modules/test_<module>.py``,
``plugins/module_utils/test_<util>.py``, ``plugins/filter/test_<file>.py``,
``plugins/action/test_<action>.py``); rendering of the roles' templates is in
``roles/``, the reference app and the variable reference at the top. Each of
those directories is a package, so test files of the same name in two of them
(``plugins/modules/test_releases.py``, ``plugins/module_utils/test_releases.py``)
do not clash under pytest's default import mode. Shared helpers:
``module_runner`` (run a module's ``main()`` in-process), ``release_trees``,
and ``role_settings``/``make_tree``/``trees`` here.

The repository root is the collection root. A temporary directory gets
``ansible_collections/onebox/deploy -> <repo root>``; ``ansible_collections``
and ``ansible_collections.onebox`` stay implicit namespace packages.
"""

from __future__ import absolute_import, division, print_function

import atexit
import importlib
import os
import shutil
import sys
import tempfile

import pytest

# The tests import files that ship (the reference app, the Traefik gate) from
# the working tree: no bytecode next to them, where a __pycache__ would change
# the content of an artifact that a Molecule scenario deploys meanwhile.
sys.dont_write_bytecode = True

_UNIT_DIR = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(os.path.dirname(_UNIT_DIR))

# The shared helpers (``module_runner``, ``role_settings`` from this file) are
# imported by their plain names from tests in every subdirectory, whatever
# import mode pytest (or ansible-test) uses for the test modules themselves.
if _UNIT_DIR not in sys.path:
    sys.path.insert(0, _UNIT_DIR)

#: The repository root (the collection root) and this directory, for tests in any subdirectory.
REPO_ROOT = _REPO_ROOT
UNIT_DIR = _UNIT_DIR


def _install_collection_path():
    base = tempfile.mkdtemp(prefix='onebox-collections-')
    atexit.register(shutil.rmtree, base, True)  # removes the symlink, not its target
    ns = os.path.join(base, 'ansible_collections', 'onebox')
    os.makedirs(ns)
    os.symlink(_REPO_ROOT, os.path.join(ns, 'deploy'))
    sys.path.insert(0, base)
    # an already imported namespace package ``ansible_collections`` recomputes
    # its __path__ from sys.path; a regular one needs the entry added by hand
    pkg = sys.modules.get('ansible_collections')
    if pkg is not None and isinstance(getattr(pkg, '__path__', None), list):
        pkg.__path__.insert(0, os.path.join(base, 'ansible_collections'))
    importlib.invalidate_caches()


try:
    importlib.import_module('ansible_collections.onebox.deploy.plugins.module_utils.readiness')
except ImportError:
    _install_collection_path()


def role_settings(**overrides):
    """The site role's settings as roles/site/vars/main.yml passes them to the
    planner (``_onebox_settings``), with the role defaults filled in."""
    import re

    import yaml

    root = _REPO_ROOT
    with open(os.path.join(root, "roles", "site", "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    with open(os.path.join(root, "roles", "site", "vars", "main.yml")) as handle:
        template = yaml.safe_load(handle)["_onebox_settings"]
    out = {}
    for key, value in template.items():
        match = re.match(r"^\{\{ (onebox_[a-z_]+) \}\}$", str(value))
        if match:
            out[key] = defaults[match.group(1)]
    out.update(overrides)
    return out


def make_tree(root):
    """A directory artifact: an executable, nested files, an empty directory and a symlink."""
    os.makedirs(os.path.join(root, "bin"))
    os.makedirs(os.path.join(root, "static", "css"))
    os.makedirs(os.path.join(root, "empty"))
    with open(os.path.join(root, "bin", "app"), "w") as handle:
        handle.write("#!/bin/sh\necho hi\n")
    os.chmod(os.path.join(root, "bin", "app"), 0o755)
    with open(os.path.join(root, "static", "css", "site.css"), "w") as handle:
        handle.write("body{}\n")
    os.chmod(os.path.join(root, "static", "css", "site.css"), 0o644)
    with open(os.path.join(root, "README"), "w") as handle:
        handle.write("readme\n")
    os.chmod(os.path.join(root, "README"), 0o644)
    os.symlink("bin/app", os.path.join(root, "run"))
    return root


@pytest.fixture
def trees(tmp_path):
    """Two identical directory artifacts: ``<tmp>/one/blog-1.4.2`` and ``<tmp>/two/elsewhere``."""
    a = make_tree(str(tmp_path / "one" / "blog-1.4.2"))
    b = make_tree(str(tmp_path / "two" / "elsewhere"))
    return a, b


@pytest.fixture
def tree_base(trees, tmp_path):
    """The artifact base of ``trees``, with an executable file artifact ``tool`` too."""
    tool = tmp_path / "tool"
    tool.write_bytes(b"#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    return str(tmp_path)


def user_site(artifact="one/blog-1.4.2", command="bin/app", **kw):
    """A site as a user writes it: blog 1.4.2 on 127.0.0.1:8001, health on 127.0.0.1:19001."""
    out = {"name": "blog", "listen": "127.0.0.1:8001", "health_listen": "127.0.0.1:19001",
           "version": "1.4.2", "artifact": artifact, "command": command}
    out.update(kw)
    return out


def checksum_errors(errors):
    """The errors about the field 'checksum'."""
    return [e for e in errors if "'checksum'" in e]


def normalized_site(name, port, version, strategy="restart", root="/srv/onebox"):
    """A site as the planner normalises it, health on port + 10000, from /opt/artifacts."""
    from ansible_collections.onebox.deploy.plugins.plugin_utils import _sites

    raw = {"name": name, "listen": "127.0.0.1:%d" % port, "health_listen": "127.0.0.1:%d" % (port + 10000),
           "version": version, "artifact": "/opt/artifacts/%s-%s/" % (name, version), "command": "bin/app",
           "strategy": strategy, "root": root}
    return _sites.normalize_site(raw, role_settings(), "/opt/artifacts")


def sample_preflight():
    """What preflight reports of blog, shop and wiki: their current and earlier releases."""
    return {
        "blog": {"current_release": "1.4.1", "previous_release": "1.4.0",
                 "releases": [{"version": "1.3.9"}, {"version": "1.4.0"}, {"version": "1.4.1"}]},
        "shop": {"current_release": "2.0.0", "previous_release": None, "releases": [{"version": "2.0.0"}]},
        "wiki": {"current_release": "2.9.0", "previous_release": "2.8.0",
                 "releases": [{"version": "2.8.0"}, {"version": "2.9.0"}]},
    }
