"""docs/recipes.md shows exactly what the Molecule scenario `apps` deploys.

A recipe marks each code block with the file it shows,
``<!-- recipe-file: PATH -->``, and each site entry with the site it shows,
``<!-- recipe-site: NAME -->`` (a site of molecule/apps/molecule.yml); the block
follows the marker.
"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "docs" / "recipes.md"
SCENARIO = ROOT / "molecule" / "apps"
MARKED = re.compile(r"<!-- recipe-(file|site): (\S+) -->\n```\w+\n(.*?)^```$", re.S | re.M)
FENCED = re.compile(r"^```\w*\n(.*?)^```$", re.S | re.M)


def marked(kind):
    return [(ref, body) for k, ref, body in MARKED.findall(RECIPES.read_text()) if k == kind]


def scenario_sites():
    data = yaml.safe_load((SCENARIO / "molecule.yml").read_text())
    return {s["name"]: s for s in data["provisioner"]["inventory"]["group_vars"]["onebox"]["onebox_sites"]}


def app_files():
    """The apps' files (each site's release directory) and the Go app's source and build script."""
    files = {str(p.relative_to(ROOT)) for p in (SCENARIO / "files").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts}
    return files | {"molecule/apps/go/main.go", "tests/harness/build-go-app.sh"}


def test_every_app_file_and_site_of_the_scenario_has_its_recipe():
    assert {ref for ref, body in marked("file")} == app_files()
    assert sorted(ref for ref, body in marked("site")) == sorted(scenario_sites())
    # A marker without its block right after it would escape the checks below.
    assert RECIPES.read_text().count("<!-- recipe-") == len(marked("file")) + len(marked("site"))


@pytest.mark.parametrize("ref,body", marked("file"), ids=[ref for ref, body in marked("file")])
def test_recipe_code_block_is_the_scenario_file(ref, body):
    assert body == (ROOT / ref).read_text(), "docs/recipes.md differs from %s" % ref


@pytest.mark.parametrize("ref,body", marked("site"), ids=[ref for ref, body in marked("site")])
def test_recipe_site_entry_is_the_scenario_site(ref, body):
    assert yaml.safe_load(body) == {"onebox_sites": [scenario_sites()[ref]]}, \
        "docs/recipes.md: site %s differs from molecule/apps/molecule.yml" % ref


@pytest.mark.parametrize("doc", sorted(p.name for p in (ROOT / "docs").glob("*.md")))
def test_docs_show_no_code_that_debian_12_rejects(doc):
    """Debian 12's uvicorn 0.17.6 has no --timeout-graceful-shutdown; its go-systemd (GOPATH) has no /v22 path."""
    for block in FENCED.findall((ROOT / "docs" / doc).read_text()):
        code = "\n".join(line for line in block.splitlines() if not line.lstrip().startswith(("#", "//")))
        assert "--timeout-graceful-shutdown" not in code, block
        assert "go-systemd/v22" not in code, block
    # and no command line in the text either
    text = (ROOT / "docs" / doc).read_text()
    assert not re.search(r"`[^`\n]*uvicorn [^`\n]*--timeout-graceful-shutdown[^`\n]*`", text)
