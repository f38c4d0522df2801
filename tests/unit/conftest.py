# -*- coding: utf-8 -*-
"""Make this repository importable as ``ansible_collections.onebox.deploy``.

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

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
