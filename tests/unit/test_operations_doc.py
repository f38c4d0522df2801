"""docs/operations.md: the example of scheduled jobs passes the site role's
validation, and its units are named as the section says."""

import re
from pathlib import Path

import yaml

from ansible_collections.onebox.deploy.plugins.plugin_utils import _sites as S
from conftest import role_settings

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations.md"


def example():
    match = re.search(r"<!-- ops-timers-example -->\n```yaml\n(.*?)^```$", DOC.read_text(), re.S | re.M)
    assert match, "the timers example of docs/operations.md lost its marker"
    return yaml.safe_load(match.group(1))["onebox_sites"]


def test_the_timers_example_passes_validation():
    sites = example()
    for site in sites:
        site["secret_env"] = dict((k, "x") for k in site.get("secret_env") or {})
    errors, _parsed = S.parse_sites(sites, str(ROOT), check_artifacts=False)
    assert errors == []
    blog = S.normalize_site(sites[0], role_settings(root="/srv/onebox"), str(ROOT))
    assert [(j["timer_unit"], j["service_unit"], j["timeout"]) for j in blog["jobs"]] == [
        ("blog_cleanup.timer", "blog_cleanup.service", 300.0), ("blog_report.timer", "blog_report.service", 600.0)]
    assert "blog_cleanup.timer, blog_cleanup.service" in DOC.read_text()


def _responder():
    import importlib.machinery
    import importlib.util
    path = str(ROOT / "roles" / "traefik" / "files" / "onebox-maintenance")
    loader = importlib.machinery.SourceFileLoader("onebox_maintenance", path)
    spec = importlib.util.spec_from_file_location("onebox_maintenance", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_the_maintenance_answer_is_what_the_responder_sends():
    match = re.search(r"<!-- maintenance-answer -->\n```\n(.*?)^```$", DOC.read_text(), re.S | re.M)
    assert match, "the maintenance answer of docs/operations.md lost its marker"
    head, _sep, body = match.group(1).partition("\n\n")
    assert head.splitlines()[0] == "HTTP/1.1 503 Service Unavailable"
    assert "Retry-After: 300" in head.splitlines() and "Cache-Control: no-store" in head.splitlines()
    assert body.encode("utf-8") == _responder().page(300)


def test_the_documented_maintenance_errors_are_the_ones_given():
    from ansible_collections.onebox.deploy.plugins.plugin_utils import _plan as P
    text = " ".join(DOC.read_text().split())
    sites = [{"name": name, "listen": "127.0.0.1:%d" % (8001 + n), "version": "1", "artifact": "files/reference-app",
              "command": "bin/onebox-app"} for n, name in enumerate(("blog", "shop", "wiki"))]
    unknown = P.plan_sites(sites, role_settings(artifact_base=str(ROOT), maintenance_sites="nope"))["errors"]
    assert unknown == ["onebox_maintenance_sites names unknown sites: nope (known: blog, shop, wiki)"]
    assert "(`%s`)" % unknown[0] in text
    sites[0]["maintenance"] = "yes"
    bad = P.plan_sites(sites, role_settings(artifact_base=str(ROOT)))["errors"]
    assert bad == ["site 'blog' (onebox_sites[0]): field 'maintenance' must be true or false, got 'yes'"]
    assert "(`%s`)" % bad[0] in text
