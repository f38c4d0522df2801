# -*- coding: utf-8 -*-
"""Runs a module's ``main()`` in-process, as AnsibleModule would on a host.

``exit_json``/``fail_json`` raise instead of exiting, so a test gets the
result back; ``patches`` maps further AnsibleModule attributes to stand-ins
(``run_command`` for a fake systemctl, ``warn`` to collect warnings, ...).
"""

from __future__ import absolute_import, division, print_function

import contextlib
import json
import time
from unittest import mock

from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # older ansible-core
    @contextlib.contextmanager
    def patch_module_args(args=None):
        payload = json.dumps({'ANSIBLE_MODULE_ARGS': args or {}}).encode()
        with mock.patch.object(basic, '_ANSIBLE_ARGS', payload):
            yield


class ExitJson(Exception):
    def __init__(self, kwargs):
        super(ExitJson, self).__init__(kwargs.get('msg'))
        self.kwargs = kwargs


class FailJson(ExitJson):
    pass


def _exit_json(self, **kwargs):
    kwargs.setdefault('changed', False)
    raise ExitJson(kwargs)


def _fail_json(self, msg, **kwargs):
    kwargs['failed'] = True
    kwargs['msg'] = msg
    raise FailJson(kwargs)


def invoke(main, args, check_mode=False, patches=None):
    """Run ``main()`` with ``args``; returns ``(failed, result, seconds)``."""
    args = dict(args)
    if check_mode:
        args['_ansible_check_mode'] = True
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        stack.enter_context(patch_module_args(args))
        stack.enter_context(mock.patch.object(AnsibleModule, 'exit_json', _exit_json))
        stack.enter_context(mock.patch.object(AnsibleModule, 'fail_json', _fail_json))
        for name, value in (patches or {}).items():
            stack.enter_context(mock.patch.object(AnsibleModule, name, value))
        try:
            main()
        except FailJson as exc:
            return True, exc.kwargs, time.monotonic() - started
        except ExitJson as exc:
            return False, exc.kwargs, time.monotonic() - started
    raise AssertionError('module neither exited nor failed')
