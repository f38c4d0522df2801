"""Offline stand-in for the get-pip.py script that ansible-test bootstraps pip with.

ansible-test creates every sanity test virtual environment without pip and then
runs ``~/.ansible/test/cache/get_pip_<version>.py``, which it downloads from a
host that is not reachable from this project's machines.  ``make sanity`` puts
this file there instead, next to the pip wheel(s) it fetched from PyPI.

It behaves like the real script for the way ansible-test calls it
(``--disable-pip-version-check pip==X --no-setuptools --no-wheel``): it runs pip
from the wheel and force-installs the requested packages from the wheels beside
this file, without an index.
"""

from __future__ import annotations

import glob
import os
import sys


def main() -> int:
    """Install the requested packages with a pip run from the cached wheel."""
    here, name = os.path.split(os.path.abspath(__file__))
    # Saved as get_pip_24_2.py for pip 24.2, as ansible-test names it.
    version = os.path.splitext(name)[0].replace('get_pip_', '').replace('_', '.')
    wheels = glob.glob(os.path.join(here, 'pip-%s-*.whl' % version))
    if not wheels:
        sys.stderr.write('get_pip_offline: no pip %s wheel in %s\n' % (version, here))
        return 1
    sys.path.insert(0, wheels[0])
    from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel

    args = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
    return pip_main(['install', '--upgrade', '--force-reinstall', '--no-index', '--find-links', here] + args)


if __name__ == '__main__':
    sys.exit(main())
