"""The blocks of docs/quickstart.md and what the tests do with each.

Every fenced block of the page has a marker on the line right before its
opening fence, an HTML comment that rendered Markdown does not show:

``<!-- quickstart: run -->`` or ``<!-- quickstart: run STEP -->``
    a shell block: the Molecule scenario ``quickstart`` runs it with bash,
    in the infra repo's root; STEP (``[a-z][a-z0-9.-]*``) names the checks
    the scenario's test makes after it;
``<!-- quickstart: file PATH -->``
    a file: the scenario writes the block to PATH (relative to the infra repo
    root) at this point of the page; the block's first line is ``# PATH``;
``<!-- quickstart: skip WHY -->``
    shown, not run (an alternative, an example for another app), with the reason.

Used by tests/unit/test_quickstart.py (the markers, without a container)
and molecule/quickstart/tests/test_quickstart.py (the page, carried out).
"""

import collections
import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "quickstart.md"

Block = collections.namedtuple("Block", "line kind arg lang body")

MARKER = re.compile(r"<!-- quickstart: (?:(run)(?: ([a-z][a-z0-9.-]*))?|(file) ([\w./-]+)|(skip) (\S.*?)) -->$")
FENCE = re.compile(r"^```(\w*)$")


class PageError(Exception):
    pass


def blocks(text=None):
    """Every fenced block of the page in order, each with its marker.

    Raises PageError for a block without a marker, a marker without a block
    right after it, or a malformed marker."""
    lines = (PAGE.read_text() if text is None else text).splitlines()
    out, errors, i = [], [], 0
    while i < len(lines):
        line = lines[i]
        if "<!-- quickstart" in line and not MARKER.match(line):
            errors.append("line %d: malformed marker %r" % (i + 1, line))
        match = MARKER.match(line)
        if match and not (i + 1 < len(lines) and FENCE.match(lines[i + 1])):
            errors.append("line %d: marker without a fenced block on the next line" % (i + 1))
        if re.match(r"^\s+```", line):
            errors.append("line %d: indented fence (the markers apply to fences at the start of a line)" % (i + 1))
        fence = FENCE.match(line)
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j] == "```"), None)
        if end is None:
            errors.append("line %d: fenced block never closed" % (i + 1))
            break
        body = "\n".join(lines[i + 1:end]) + "\n"
        marker = MARKER.match(lines[i - 1]) if i else None
        if not marker:
            errors.append("line %d: fenced block without a <!-- quickstart: ... --> marker on the line before"
                          % (i + 1))
        else:
            run, step, file_, path, skip, why = marker.groups()
            kind, arg = (run, step) if run else (file_, path) if file_ else (skip, why)
            out.append(Block(i + 1, kind, arg, fence.group(1), body))
        i = end + 1
    if errors:
        raise PageError("docs/quickstart.md:\n  " + "\n  ".join(errors))
    return out
