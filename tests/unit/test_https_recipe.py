"""docs/traefik.md's HTTPS recipe is what the Molecule scenario `https` runs.

The recipe is the YAML block after ``<!-- https-recipe -->`` in
docs/traefik.md; the scenario marks the same variables in
molecule/https/molecule.yml between ``# https recipe: begin`` and
``# https recipe: end``. Both must be the same YAML, comments aside.
"""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "traefik.md"
SCENARIO = ROOT / "molecule" / "https" / "molecule.yml"


def doc_recipe():
    match = re.search(r"<!-- https-recipe -->\n```yaml\n(.*?)^```$", DOC.read_text(), re.S | re.M)
    assert match, "docs/traefik.md has no block after <!-- https-recipe -->"
    return yaml.safe_load(match.group(1))


def scenario_recipe():
    text = SCENARIO.read_text()
    region = re.search(r"^( *)# https recipe: begin.*?\n(.*?)^ *# https recipe: end", text, re.S | re.M)
    assert region, "molecule/https/molecule.yml has no marked recipe"
    indent = len(region.group(1))
    return yaml.safe_load("\n".join(line[indent:] for line in region.group(2).splitlines()))


def test_the_https_recipe_is_what_the_scenario_runs():
    assert doc_recipe() == scenario_recipe()


def test_the_marked_recipe_is_part_of_the_scenario_variables():
    group_vars = yaml.safe_load(SCENARIO.read_text())["provisioner"]["inventory"]["group_vars"]["onebox"]
    recipe = scenario_recipe()
    assert {key: group_vars[key] for key in recipe} == recipe
    assert recipe["onebox_traefik_install"] is True and recipe["onebox_traefik_cert_resolvers"]
