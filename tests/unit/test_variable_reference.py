# -*- coding: utf-8 -*-
"""docs/variables.md must be what tools/gen_variable_reference.py generates
from roles/*/meta/argument_specs.yml. When an option is added or changed,
regenerate it:

    python tools/gen_variable_reference.py > docs/variables.md
"""

from __future__ import absolute_import, division, print_function

import difflib
import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "gen_variable_reference.py")
DOC = os.path.join(ROOT, "docs", "variables.md")
REGENERATE = "python tools/gen_variable_reference.py > docs/variables.md"


def _load_tool():
    spec = importlib.util.spec_from_file_location("gen_variable_reference", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_tool()


def _spec_files(root):
    return sorted(
        os.path.join(dirpath, name)
        for dirpath, _dirnames, names in os.walk(os.path.join(root, "roles"))
        for name in names
        if name in ("argument_specs.yml", "argument_specs.yaml")
    )


def _all_options(options, prefix=""):
    for name, spec in (options or {}).items():
        spec = spec or {}
        yield prefix + name, spec
        if spec.get("options"):
            nested = prefix + name + ("[]." if spec.get("type") == "list" else ".")
            yield from _all_options(spec["options"], nested)


def test_docs_variables_md_is_up_to_date():
    expected = gen.render(ROOT)
    with open(DOC, encoding="utf-8") as handle:
        current = handle.read()
    if current != expected:
        diff = "".join(list(difflib.unified_diff(
            current.splitlines(True), expected.splitlines(True),
            fromfile="docs/variables.md", tofile="generated"))[:80])
        pytest.fail("docs/variables.md is out of date with roles/*/meta/argument_specs.yml.\n"
                    "Run from the repository root:\n    %s\n\n%s" % (REGENERATE, diff), pytrace=False)


def test_every_option_and_field_is_documented():
    text = gen.render(ROOT)
    files = _spec_files(ROOT)
    assert files, "no roles/*/meta/argument_specs.yml found"
    for path in files:
        role = os.path.basename(os.path.dirname(os.path.dirname(path)))
        with open(path, encoding="utf-8") as handle:
            specs = yaml.safe_load(handle)["argument_specs"]
        for entry_point, spec in specs.items():
            assert "Role `onebox.deploy.%s`" % role in text
            for name, option in _all_options(spec.get("options")):
                leaf = name.rsplit(".", 1)[-1]
                assert "| `%s` |" % leaf in text, "%s: option %s missing" % (role, name)
                for choice in option.get("choices") or []:
                    assert "`%s`" % choice in text, "%s: choice %r of %s missing" % (role, choice, name)


def test_check_passes_on_the_repository():
    proc = subprocess.run([sys.executable, TOOL, "--check"], capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, "%s\n%s\nRun: %s" % (proc.stdout, proc.stderr, REGENERATE)


def test_check_fails_with_a_diff_when_a_spec_changes(tmp_path):
    # A copy of the roles' specs with one new option: the committed doc no
    # longer matches, and --check must say so (exit 1, a diff, the fix).
    for path in _spec_files(ROOT):
        target = tmp_path / os.path.relpath(path, ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    site_spec = tmp_path / "roles" / "site" / "meta" / "argument_specs.yml"
    data = yaml.safe_load(site_spec.read_text(encoding="utf-8"))
    data["argument_specs"]["main"]["options"]["onebox_brand_new_option"] = {
        "description": "Added to prove the check fails.", "type": "int", "default": 7}
    data["argument_specs"]["main"]["options"]["onebox_sites"]["options"]["brand_new_field"] = {
        "description": "A new site field.", "type": "str"}
    site_spec.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    proc = subprocess.run([sys.executable, TOOL, "--check", "--root", str(tmp_path), "--doc", DOC],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "+| `onebox_brand_new_option` | int | no | `7` |" in proc.stdout
    assert "+| `brand_new_field` | str | no |" in proc.stdout
    assert REGENERATE in proc.stderr


def test_stdout_is_the_reference():
    proc = subprocess.run([sys.executable, TOOL], capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == gen.render(ROOT)


@pytest.mark.parametrize("source,expected", [
    ("O(onebox_sites[].listen)", "`onebox_sites[].listen`"),
    ("O(units[].strategy=overlap)", "`units[].strategy=overlap`"),
    ("C(<name>.socket) owns V(80)", "`<name>.socket` owns `80`"),
    ("I(never) and B(always)", "*never* and **always**"),
    ("E(PATH), RV(probe.sent), M(ansible.builtin.copy)", "`PATH`, `probe.sent`, `ansible.builtin.copy`"),
    ("P(onebox.deploy.site_errors#filter)", "`onebox.deploy.site_errors` filter"),
    ("L(Traefik, https://doc.traefik.io/) and U(https://example.org)",
     "[Traefik](https://doc.traefik.io/) and <https://example.org>"),
    ("C(a`b)", "``a`b``"),
    ("O(x=a\\)b)", "`x=a)b`"),
    ("O(rollback:onebox_rollback_to)", "`onebox_rollback_to`"),
    ("O(ignore:foo.bar)", "`foo.bar`"),
    ("O(onebox.deploy.site#role:rollback:onebox_rollback_to=1.4.1)",
     "`onebox_rollback_to=1.4.1` (of role `onebox.deploy.site`, entry point `rollback`)"),
    ("O(onebox.deploy.rolling_restart#module:units[].strategy)",
     "`units[].strategy` (of module `onebox.deploy.rolling_restart`)"),
    ("5 * 2 <= 10_000 and [x]", "5 \\* 2 \\<= 10_000 and \\[x\\]"),
    ("prefix _private", "prefix \\_private"),
    ("CONFIG(x) is not markup, nor C without parens", "CONFIG(x) is not markup, nor C without parens"),
])
def test_markup(source, expected):
    assert gen.markup(source) == expected


def test_markup_in_table_escapes_pipes():
    assert gen.markup("a|b C(x|y)", in_table=True) == "a\\|b `x\\|y`"


def test_internal_links_resolve():
    text = gen.render(ROOT)
    anchors = set()
    for line in text.splitlines():
        match = re.match(r"^#{1,6} (.*)$", line)
        if match:
            anchors.add(gen.slug(match.group(1)))
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert links
    for link in links:
        assert link in anchors, "link #%s has no heading" % link


def test_markdown_is_clean():
    text = gen.render(ROOT)
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert "\n\n\n" not in text
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        assert line == line.rstrip(), "trailing whitespace on line %d" % number
        assert "\t" not in line, "tab on line %d" % number
        if line.startswith("#"):
            assert number == 1 or lines[number - 2] == "", "no blank line before heading on line %d" % number
            assert number == len(lines) or lines[number] == "", "no blank line after heading on line %d" % number
    # Every table row has the header's number of cells.
    for number, line in enumerate(lines, 1):
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line)[1:-1]
            assert len(cells) == 6, "line %d has %d cells" % (number, len(cells))
