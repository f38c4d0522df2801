#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generate docs/variables.md from the roles' argument specs.

Every role's ``meta/argument_specs.yml`` (every entry point, every option and
the suboptions of list/dict options such as the fields of ``onebox_sites``)
becomes one Markdown reference. Ansible markup (``O(x)``, ``C(x)``, ``V(x)``,
``I(x)``, ...) is converted to Markdown.

Usage, from the repository root::

    python tools/gen_variable_reference.py > docs/variables.md   # regenerate
    python tools/gen_variable_reference.py --check              # exit 1 with a diff when out of date

Needs only the standard library and PyYAML.
"""

import argparse
import difflib
import glob
import json
import os
import re
import sys

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC_PATH = os.path.join("docs", "variables.md")
REGENERATE = "python tools/gen_variable_reference.py > docs/variables.md"
COLLECTION = "onebox.deploy"

# --------------------------------------------------------------------------
# Ansible markup -> Markdown

# Markup with two comma-separated parameters: L(text, url) and R(text, reference).
_TWO_PARAMS = ("L", "R")
# "Semantic" markup allows backslash escapes in its parameter; the classic
# markup ends at the first closing parenthesis.
_ESCAPING = ("O", "V", "E", "RV", "P")
_MARKUP_RE = re.compile(r"\b(RV|HORIZONTALLINE|[IBMUCOVEPLR])(\()?")

# Characters that mean something in Markdown text.
_MD_SPECIAL = set("\\`*[]<>$")


def _escape_text(text, in_table):
    """Escape plain text for Markdown (and for a table cell when asked)."""
    out = []
    for index, char in enumerate(text):
        if char in _MD_SPECIAL or (in_table and char == "|"):
            out.append("\\" + char)
        elif char == "_":
            before = text[index - 1] if index > 0 else " "
            after = text[index + 1] if index + 1 < len(text) else " "
            # An underscore inside a word never starts emphasis (GFM).
            out.append("_" if before.isalnum() and after.isalnum() else "\\_")
        else:
            out.append(char)
    return "".join(out)


def code(text, in_table=False):
    """A Markdown code span holding ``text`` literally."""
    text = str(text)
    if in_table:
        # GFM splits table cells on "|" before it looks at code spans.
        text = text.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return "%s%s%s%s%s" % (fence, pad, text, pad, fence)


def _read_param(text, start, escaping):
    """Parameter of a markup starting at ``start``; returns (value, end) or None."""
    value = []
    index = start
    while index < len(text):
        char = text[index]
        if escaping and char == "\\" and index + 1 < len(text):
            value.append(text[index + 1])
            index += 2
            continue
        if char == ")":
            return "".join(value), index + 1
        value.append(char)
        index += 1
    return None


def markup(text, in_table=False):
    """Convert one Ansible documentation string to Markdown."""
    text = str(text)
    out = []
    pos = 0
    while True:
        match = _MARKUP_RE.search(text, pos)
        if match is None:
            out.append(_escape_text(text[pos:], in_table))
            break
        name, paren = match.group(1), match.group(2)
        if name == "HORIZONTALLINE":
            out.append(_escape_text(text[pos:match.start()], in_table))
            out.append(" ")
            pos = match.end()
            continue
        if not paren:
            out.append(_escape_text(text[pos:match.end()], in_table))
            pos = match.end()
            continue
        parsed = _read_param(text, match.end(), name in _ESCAPING)
        if parsed is None:  # no closing parenthesis: not markup
            out.append(_escape_text(text[pos:match.end()], in_table))
            pos = match.end()
            continue
        value, end = parsed
        out.append(_escape_text(text[pos:match.start()], in_table))
        out.append(_render_markup(name, value, in_table))
        pos = end
    return "".join(out)


_FQCN_TYPE_PREFIX_RE = re.compile(r"^([^.]+\.[^.]+\.[^#]+)#([a-z]+):(.*)$")


def _option_reference(value, in_table):
    """``O()``/``RV()``: ``[fqcn#type:][entrypoint:]name[=value]``, as ansible-doc reads it."""
    text, equals, assigned = value.partition("=")
    plugin = plugin_type = ""
    match = _FQCN_TYPE_PREFIX_RE.match(text)
    if match:
        plugin, plugin_type, text = match.groups()
    elif text.startswith("ignore:"):
        text = text[len("ignore:"):]
    entrypoint = ""
    if ":" in text:
        entrypoint, text = text.split(":", 1)
    rendered = code(text + equals + assigned, in_table)
    if plugin:
        where = "%s %s" % (plugin_type, code(plugin, in_table))
        if plugin_type == "role" and entrypoint:
            where += ", entry point %s" % code(entrypoint, in_table)
        rendered += " (of %s)" % where
    return rendered


def _render_markup(name, value, in_table):
    if name in ("O", "RV"):
        return _option_reference(value, in_table)
    if name in ("C", "V", "E", "M"):
        return code(value, in_table)
    if name == "P":
        plugin, _, kind = value.partition("#")
        return code(plugin, in_table) + ((" " + kind) if kind else "")
    if name == "I":
        return "*%s*" % _escape_text(value, in_table)
    if name == "B":
        return "**%s**" % _escape_text(value, in_table)
    if name == "U":
        return "<%s>" % value
    if name in _TWO_PARAMS:
        label, _, target = value.partition(",")
        label = _escape_text(label.strip(), in_table)
        if name == "L":
            return "[%s](%s)" % (label, target.strip())
        return label
    return _escape_text(value, in_table)  # pragma: no cover - every name is handled above


def paragraphs(description):
    """A spec description (a string or a list of strings) as a list of strings."""
    if description is None:
        return []
    if isinstance(description, (list, tuple)):
        return [str(item) for item in description if str(item).strip()]
    return [str(description)] if str(description).strip() else []


# --------------------------------------------------------------------------
# Spec values -> table cells


def suboptions(spec):
    """Nested options of an option (``options`` in role specs, ``suboptions`` in module docs)."""
    return spec.get("options") or spec.get("suboptions") or {}


def type_label(spec):
    kind = spec.get("type", "str")
    elements = spec.get("elements")
    if kind == "list" and elements:
        return "list of %s" % elements
    return str(kind)


def default_label(spec):
    if "default" not in spec or spec["default"] is None:
        return ""
    value = spec["default"]
    if isinstance(value, bool):
        return code("true" if value else "false", True)
    if isinstance(value, (int, float)):
        return code(value, True)
    if isinstance(value, str):
        return code(value if value else '""', True)
    return code(json.dumps(value, sort_keys=False), True)


def choices_label(spec):
    choices = spec.get("choices")
    if not choices:
        return ""
    return ", ".join(code(json.dumps(c) if not isinstance(c, str) else c, True) for c in choices)


def slug(heading):
    """The anchor GitHub gives a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


# --------------------------------------------------------------------------
# Document


class Section(object):
    """One heading with its anchor, for links and the table of contents."""

    def __init__(self, title, level):
        self.title = title
        self.level = level
        self.anchor = slug(title)


def load_specs(root):
    """``[(role, {entry_point: spec})]`` for every role with argument specs, sorted by role."""
    found = []
    for role_dir in sorted(glob.glob(os.path.join(root, "roles", "*"))):
        if not os.path.isdir(role_dir):
            continue
        specs = None
        for name in ("argument_specs.yml", "argument_specs.yaml"):
            path = os.path.join(role_dir, "meta", name)
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as handle:
                    specs = (yaml.safe_load(handle) or {}).get("argument_specs")
                break
        else:
            path = os.path.join(role_dir, "meta", "main.yml")
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as handle:
                    specs = (yaml.safe_load(handle) or {}).get("argument_specs")
        if specs:
            found.append((os.path.basename(role_dir), specs))
    return found


def _entry_title(role, entry_point):
    title = "Role `%s.%s`" % (COLLECTION, role)
    if entry_point != "main":
        title += " (entry point `%s`)" % entry_point
    return title


def _nested_title(role, entry_point, path):
    where = "%s.%s" % (COLLECTION, role) + ("" if entry_point == "main" else ":%s" % entry_point)
    return "`%s` fields (`%s`)" % (path, where)


def _option_rows(options, nested_links):
    rows = []
    for name, spec in options.items():
        spec = spec or {}
        text = [markup(p, in_table=True) for p in paragraphs(spec.get("description"))]
        if spec.get("aliases"):
            text.append("Aliases: %s." % ", ".join(code(a, True) for a in spec["aliases"]))
        if spec.get("version_added"):
            text.append("Added in %s." % code(spec["version_added"], True))
        if name in nested_links:
            section = nested_links[name]
            text.append("Fields: see [%s fields](#%s)." % (code(section[1], True), section[0].anchor))
        rows.append("| %s | %s | %s | %s | %s | %s |" % (
            code(name, True),
            _escape_text(type_label(spec), True),
            "yes" if spec.get("required") else "no",
            default_label(spec),
            choices_label(spec),
            "<br><br>".join(text),
        ))
    return rows


def _constraints(spec, in_table=False):
    """Lines for the entry point's (or an option's) cross-option rules."""
    lines = []

    def names(group):
        return ", ".join(code(n, in_table) for n in group)

    for group in spec.get("mutually_exclusive") or []:
        lines.append("Mutually exclusive: %s." % names(group))
    for group in spec.get("required_together") or []:
        lines.append("Required together: %s." % names(group))
    for group in spec.get("required_one_of") or []:
        lines.append("At least one of: %s." % names(group))
    for rule in spec.get("required_if") or []:
        key, value, needed = rule[0], rule[1], rule[2]
        any_of = len(rule) > 3 and rule[3]
        lines.append("When %s is %s: %s %s." % (code(key, in_table), code(value, in_table),
                                                 "one of" if any_of else "required", names(needed)))
    for key, needed in (spec.get("required_by") or {}).items():
        needed = [needed] if isinstance(needed, str) else needed
        lines.append("%s requires %s." % (code(key, in_table), names(needed)))
    return lines


def _table(rows):
    header = ["| Name | Type | Required | Default | Choices | Description |", "|---|---|---|---|---|---|"]
    return header + rows


def _render_options(role, entry_point, options, prefix, level, out, toc):
    """Render one options table; nested suboptions get their own section after it."""
    nested = []
    nested_links = {}
    for name, spec in options.items():
        spec = spec or {}
        if suboptions(spec):
            path = "%s%s%s" % (prefix, name, "[]" if spec.get("type") == "list" else "")
            section = Section(_nested_title(role, entry_point, path), level)
            nested.append((path, spec, section))
            nested_links[name] = (section, path)
    out.append("")
    out.extend(_table(_option_rows(options, nested_links)))
    for path, spec, section in nested:
        toc.append(section)
        out.append("")
        out.append("%s %s" % ("#" * section.level, section.title))
        out.append("")
        where = path[:-2] if path.endswith("[]") else path
        out.append("The fields of %s%s (%s)." % ("each element of " if spec.get("type") == "list" else "",
                                                 code(where), _escape_text(type_label(spec), False)))
        for line in _constraints(spec):
            out.append("")
            out.append(line)
        _render_options(role, entry_point, suboptions(spec), path + ".", level, out, toc)


def render(root=REPO_ROOT):
    """The complete Markdown reference for the roles under ``root``."""
    roles = load_specs(root)
    toc = []
    body = []
    for role, entry_points in roles:
        for entry_point, spec in entry_points.items():
            spec = spec or {}
            section = Section(_entry_title(role, entry_point), 2)
            toc.append(section)
            body.append("")
            body.append("## %s" % section.title)
            if spec.get("short_description"):
                body.append("")
                body.append(markup(spec["short_description"]).rstrip(".") + ".")
            for paragraph in paragraphs(spec.get("description")):
                body.append("")
                body.append(markup(paragraph))
            body.append("")
            body.append("`ansible-doc -t role %s%s.%s` shows the same." % (
                "" if entry_point == "main" else "-e %s " % entry_point, COLLECTION, role))
            for line in _constraints(spec):
                body.append("")
                body.append(line)
            options = spec.get("options") or {}
            if options:
                _render_options(role, entry_point, options, "", 3, body, toc)
            else:
                body.append("")
                body.append("No options.")

    head = [
        "# Variable reference",
        "",
        "<!-- Generated by tools/gen_variable_reference.py from roles/*/meta/argument_specs.yml. Do not edit. -->",
        "",
        "Every variable of the collection's roles, generated from their argument specs",
        "(`roles/*/meta/argument_specs.yml`), which Ansible also uses to validate the",
        "variables when a role starts. Do not edit this file; after changing a spec, run",
        "",
        "```sh",
        REGENERATE,
        "```",
        "",
        "`tests/unit/test_variable_reference.py` fails while this file and the specs",
        "differ. The playbooks also read `onebox_hosts` (host pattern, default `onebox`)",
        "and `onebox_become` (default `true`); see [quickstart.md](quickstart.md).",
        "",
        "Contents:",
        "",
    ]
    for section in toc:
        indent = "  " * (section.level - 2)
        head.append("%s- [%s](#%s)" % (indent, section.title, section.anchor))
    return "\n".join(head + body) + "\n"


# --------------------------------------------------------------------------
# Command line


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the reference file instead of printing; exit 1 with a diff when it differs")
    parser.add_argument("--root", default=REPO_ROOT, help="collection root with roles/ (default: this repository)")
    parser.add_argument("--doc", default=None, help="reference file for --check (default: ROOT/docs/variables.md)")
    args = parser.parse_args(argv)

    text = render(args.root)
    if not args.check:
        sys.stdout.write(text)
        return 0

    doc = args.doc or os.path.join(args.root, DOC_PATH)
    try:
        with open(doc, encoding="utf-8") as handle:
            current = handle.read()
    except FileNotFoundError:
        current = ""
    if current == text:
        return 0
    shown = os.path.relpath(doc)
    diff = difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                fromfile=shown, tofile="generated from roles/*/meta/argument_specs.yml")
    sys.stdout.writelines(diff)
    sys.stderr.write("%s is out of date with the argument specs; regenerate it with:\n    %s\n" % (shown, REGENERATE))
    return 1


if __name__ == "__main__":
    sys.exit(main())
