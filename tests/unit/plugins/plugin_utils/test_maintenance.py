# -*- coding: utf-8 -*-
"""Maintenance mode: the site field ``maintenance`` and ``onebox_maintenance_sites``
(``_sites.py``, ``_plan.py``), the routers and service of the dynamic file and
which sites leave maintenance (``_traefik.py``), the checker's rule for the
responder's service, and the responder itself (roles/traefik/files/onebox-maintenance)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import yaml

from ansible_collections.onebox.deploy.plugins.plugin_utils import _plan as P
from ansible_collections.onebox.deploy.plugins.plugin_utils import _traefik as T
from conftest import REPO_ROOT as ROOT
from conftest import role_settings


def _traefik_tests():
    """The helpers of test_traefik.py beside this file (the checker, the role's template, a site)."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_traefik.py")
    spec = importlib.util.spec_from_file_location("onebox_test_traefik_helpers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_HELPERS = _traefik_tests()
CHECK, render, site = _HELPERS.CHECK, _HELPERS.render, _HELPERS.site

RESPONDER = os.path.join(ROOT, "roles", "traefik", "files", "onebox-maintenance")


def sites():
    return [site("blog", 8001, domain="blog.x.org"),
            site("shop", 8002, listen="8002", domains=["shop.x.org", "www.shop.x.org"]),
            site("wiki", 8003, domain="wiki.x.org", strategy="overlap"),
            site("worker", 8005)]


def plan(raw, maintenance_sites=None):
    return P.plan_sites(raw, role_settings(artifact_base=ROOT, maintenance_sites=maintenance_sites))


def normalized(raw, maintenance_sites=None):
    result = plan(raw, maintenance_sites)
    assert result["errors"] == []
    return result["sites"]


# ---------------------------------------------------------------------------
# input

@pytest.mark.parametrize("value", ["yes", 1, "true", [], {}])
def test_the_field_must_be_a_boolean(value):
    raw = sites()
    raw[0]["maintenance"] = value
    assert plan(raw)["errors"] == ["site 'blog' (onebox_sites[0]): field 'maintenance' must be true or false, got %r"
                                   % (value,)]


@pytest.mark.parametrize("value,expected", [
    (None, []), ("", []), ([], []),
    ("blog", ["blog"]), ("shop,blog", ["blog", "shop"]), (" blog , wiki ", ["blog", "wiki"]),
    (["wiki"], ["wiki"]),
])
def test_sites_for_one_run_by_list_or_comma_separated_string(value, expected):
    result = plan(sites(), value)
    assert result["errors"] == []
    assert result["maintenance"] == expected
    assert [s["name"] for s in result["sites"] if s["maintenance"]] == expected


def test_the_field_and_the_run_variable_add_up():
    raw = sites()
    raw[1]["maintenance"] = True
    assert plan(raw, "blog")["maintenance"] == ["blog", "shop"]
    assert plan(raw)["maintenance"] == ["shop"]
    raw[1]["maintenance"] = False
    assert plan(raw)["maintenance"] == []


def test_an_unknown_site_is_refused_naming_the_field_and_the_name():
    result = plan(sites(), "blog,nope")
    assert result["errors"] == ["onebox_maintenance_sites names unknown sites: nope (known: blog, shop, wiki, worker)"]
    assert result["sites"] == []


def test_a_site_with_state_absent_cannot_be_put_into_maintenance():
    raw = sites() + [{"name": "old", "state": "absent"}]
    assert plan(raw, ["old"])["errors"] == [
        "onebox_maintenance_sites names unknown sites: old (known: blog, shop, wiki, worker)"]


def test_a_mapping_is_refused():
    assert plan(sites(), {"blog": True})["errors"] == [
        "onebox_maintenance_sites must be a list of site names or a comma-separated string, got dict"]


def test_the_responder_options_are_checked():
    base = {"maintenance_listen": "127.0.0.1:8099", "maintenance_retry_after": 300}
    assert T.option_errors(base) == []
    assert T.option_errors(dict(base, maintenance_retry_after="60")) == []  # as -e gives it
    assert T.option_errors(dict(base, maintenance_listen="[::1]:8099")) == []
    assert T.option_errors(dict(base, maintenance_listen="0.0.0.0:8099")) == [
        "onebox_traefik_maintenance_listen must be a loopback address (127.0.0.1:8099), got '0.0.0.0:8099': only "
        "Traefik on this host talks to the maintenance responder"]
    assert T.option_errors(dict(base, maintenance_listen="127.0.0.1:8080")) == [
        "onebox_traefik_maintenance_listen: 127.0.0.1:8080 is also onebox_traefik_api_listen"]
    assert T.option_errors(dict(base, maintenance_listen="localhost:8099")) == [
        "onebox_traefik_maintenance_listen: 'localhost:8099' cannot be a systemd socket: must be :PORT, IPv4:PORT "
        "or [IPv6]:PORT (systemd binds an IP address, not a host name)"]
    for bad in (-1, 86401, True, "5m", 1.5):
        assert T.option_errors(dict(base, maintenance_retry_after=bad)) == [
            "onebox_maintenance_retry_after must be a whole number of seconds from 0 to 86400, got %r" % (bad,)]


def test_a_routed_site_named_maintenance_is_refused():
    norm = normalized([site("maintenance", 8001, domain="m.x.org")])
    assert T.traefik_errors(norm) == [
        "site maintenance: field 'name': a routed site cannot be named maintenance: its Traefik service would be "
        "onebox-maintenance, the maintenance responder's"]
    assert T.traefik_errors(normalized([site("maintenance", 8001)])) == []


# ---------------------------------------------------------------------------
# the dynamic file

def test_only_the_router_of_a_site_in_maintenance_changes():
    before = T.traefik_dynamic(normalized(sites()))
    after = T.traefik_dynamic(normalized(sites(), "blog"), {"maintenance_listen": "127.0.0.1:8123"})
    routers, services = after["http"]["routers"], after["http"]["services"]
    assert routers["onebox-blog"] == dict(before["http"]["routers"]["onebox-blog"], service="onebox-maintenance",
                                          middlewares=[])
    for name in ("onebox-shop", "onebox-wiki"):
        assert routers[name] == before["http"]["routers"][name]
    # The site's own service stays as it was (its health check keeps running); one more service.
    assert dict((k, v) for k, v in services.items() if k != "onebox-maintenance") == before["http"]["services"]
    assert services["onebox-maintenance"] == {
        "loadBalancer": {"servers": [{"url": "http://127.0.0.1:8123"}], "passHostHeader": True}}
    assert after["http"]["middlewares"] == before["http"]["middlewares"]
    assert "onebox-maintenance" not in before["http"]["services"]


def test_a_redirect_router_of_a_site_in_maintenance_still_redirects():
    options = {"entrypoints": {"web": {"address": ":80"}, "websecure": {"address": ":443"}},
               "router_entrypoints": ["websecure"], "tls": True,
               "site_options": {"blog": {"redirect_https": True}}}
    doc = T.traefik_dynamic(normalized(sites(), ["blog"]), options)
    assert doc["http"]["routers"]["onebox-blog-redirect"]["middlewares"] == ["onebox-redirect-https"]
    assert doc["http"]["routers"]["onebox-blog"]["service"] == "onebox-maintenance"


def test_the_checker_accepts_the_responder_service_only_without_a_health_check():
    doc = yaml.safe_load(render([site("blog", 8001, domain="blog.x.org", maintenance=True)]))
    assert CHECK.check(doc, {"web"}, {"/readyz"}) == []
    lb = doc["http"]["services"]["onebox-maintenance"]["loadBalancer"]
    lb["healthCheck"] = {"path": "/livez", "interval": "1s", "timeout": "3s"}
    assert CHECK.check(doc, {"web"}, {"/readyz"}) == [
        "http.services.onebox-maintenance.loadBalancer: the maintenance responder has one server and no health check"]
    # Every other service still needs its health check.
    del doc["http"]["services"]["onebox-blog"]["loadBalancer"]["healthCheck"]
    assert "http.services.onebox-blog.loadBalancer: healthCheck is required" in CHECK.check(doc, {"web"}, {"/readyz"})


# ---------------------------------------------------------------------------
# leaving maintenance

def live(raw, maintenance_sites=None):
    """The live file as the role wrote it, as ansible.builtin.slurp returns it."""
    text = render(raw) if maintenance_sites is None else None
    if text is None:
        raw = [dict(s, maintenance=s["name"] in maintenance_sites) for s in raw]
        text = render(raw)
    return {"content": base64.b64encode(text.encode("utf-8")).decode("ascii"), "encoding": "base64"}


def test_the_sites_leaving_maintenance_with_their_readiness_urls():
    now = live(sites(), ["blog", "shop", "wiki"])
    assert T.maintenance_ends(now, normalized(sites())) == [
        {"site": "blog", "urls": ["http://127.0.0.1:19001/readyz"]},
        # listen on all interfaces: Traefik dials 127.0.0.1, at the health port
        {"site": "shop", "urls": ["http://127.0.0.1:19002/readyz"]},
        # overlap: the public port, as Traefik's health check
        {"site": "wiki", "urls": ["http://127.0.0.1:8003/readyz"]},
    ]
    # Still in maintenance: not leaving.
    assert T.maintenance_ends(now, normalized(sites(), "blog,shop,wiki")) == []
    assert [e["site"] for e in T.maintenance_ends(now, normalized(sites(), "shop"))] == ["blog", "wiki"]


def test_no_site_leaves_maintenance_without_having_been_in_it():
    assert T.maintenance_ends(live(sites()), normalized(sites())) == []
    # No live file yet (slurp failed), an unreadable one, or its text.
    assert T.maintenance_ends({"failed": True, "msg": "file not found"}, normalized(sites())) == []
    assert T.maintenance_ends({"content": base64.b64encode(b"# half a file\n{").decode()}, normalized(sites())) == []
    assert T.maintenance_ends(render(sites()), normalized(sites())) == []


def test_a_site_that_is_no_longer_routed_does_not_wait():
    now = live(sites(), ["blog"])
    raw = [dict(s, domain=None) if s["name"] == "blog" else s for s in sites()]
    assert T.maintenance_ends(now, normalized(raw)) == []


def test_with_several_backends_every_backend_must_be_ready():
    raw = [site("blog", 8001, listen="8001", health_listen="19001", domain="blog.x.org")]
    options = {"backends": [{"host": "web1", "address": "10.0.0.1", "sites": ["blog"]},
                            {"host": "web2", "address": "10.0.0.2", "sites": ["blog"]}]}
    now = {"content": base64.b64encode(
        ("---\n" + T.json.dumps(T.traefik_dynamic(normalized(raw, "blog"), options))).encode()).decode()}
    assert T.maintenance_ends(now, normalized(raw), options) == [
        {"site": "blog", "urls": ["http://10.0.0.1:19001/readyz", "http://10.0.0.2:19001/readyz"]}]


def test_a_run_that_writes_no_dynamic_file_is_refused_a_maintenance_change():
    """--limit or --tags left out the part of the run that writes the dynamic file: a site whose maintenance
    this run would switch on or off is named, per Traefik host; one already as wanted is not."""
    on_lb1 = dict(live(sites(), ["blog"]), item="lb1")
    assert T.maintenance_left_out([on_lb1], normalized(sites(), "blog")) == []
    ends = T.maintenance_left_out([on_lb1], normalized(sites()))
    assert ends == ["site blog: field 'maintenance': this run ends its maintenance, but writes no Traefik dynamic "
                    "file on lb1, where Traefik routes blog to the maintenance page now: --limit or --tags left out "
                    "the part of the run that switches it (the hosts of onebox_traefik_group, the tag "
                    "onebox_traefik). Nothing was changed; run it with them."]
    starts = T.maintenance_left_out([on_lb1, dict(live(sites()), item="lb2")], normalized(sites(), "blog,shop"))
    assert [e.split(", but")[0] for e in starts] == [
        "site shop: field 'maintenance': this run puts it in maintenance",
        "site blog: field 'maintenance': this run puts it in maintenance",
        "site shop: field 'maintenance': this run puts it in maintenance"]
    assert "on lb2, where Traefik routes blog to its own service now" in starts[1]


def test_nothing_to_compare_without_a_live_file_or_a_router():
    assert T.maintenance_left_out([{"failed": True, "msg": "file not found", "item": "lb1"}],
                                  normalized(sites(), "blog")) == []
    # A site that is not routed now (new, or without a domain) has no router to compare.
    now = dict(live([s for s in sites() if s["name"] != "blog"]), item="lb1")
    assert T.maintenance_left_out([now], normalized(sites(), "blog")) == []
    raw = [dict(s, domain=None) if s["name"] == "blog" else s for s in sites()]
    assert T.maintenance_left_out([dict(live(sites(), ["blog"]), item="lb1")], normalized(raw)) == []


@pytest.mark.parametrize("run_tags,skip_tags,runs", [
    (["all"], [], True),
    ([], [], True),
    (["onebox_traefik"], [], True),
    (["onebox_roll"], [], False),
    (["tagged"], [], True),
    (["untagged"], [], False),
    (["all"], ["onebox_traefik"], False),
    (["all"], ["tagged"], False),
    (["all"], ["onebox_roll"], True),
    (["onebox_traefik", "onebox_roll"], ["all"], False),
])
def test_whether_the_tasks_that_write_the_dynamic_file_run(run_tags, skip_tags, runs):
    """Ansible's rules for --tags and --skip-tags, for tasks tagged onebox_traefik."""
    assert T.tag_runs(run_tags, skip_tags) is runs


def test_tag_rules_for_always_and_never():
    assert T.tag_runs(["onebox_roll"], [], tags=["always"]) is True
    assert T.tag_runs(["all"], ["all"], tags=["always"]) is True
    assert T.tag_runs(["all"], ["always"], tags=["always"]) is False
    assert T.tag_runs(["all"], [], tags=["never"]) is False
    assert T.tag_runs(["never"], [], tags=["never"]) is True


def test_the_responder_socket():
    assert T.maintenance_socket({"maintenance_listen": "127.0.0.1:8099"}) == {
        "unit": "onebox-maintenance.socket", "listen": "127.0.0.1:8099"}
    assert T.maintenance_socket({"maintenance_listen": "[::1]:9000"})["listen"] == "[::1]:9000"


# ---------------------------------------------------------------------------
# the responder

def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def responder():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, RESPONDER, "--listen", "127.0.0.1:%d" % port, "--retry-after", "120"])
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "the responder did not start"
            time.sleep(0.05)
    yield "http://127.0.0.1:%d" % port
    proc.terminate()
    proc.wait(10)


@pytest.mark.parametrize("method", ["GET", "POST", "HEAD", "DELETE"])
def test_the_responder_answers_every_request_with_503_a_page_and_retry_after(responder, method):
    request = urllib.request.Request(responder + "/any/path?q=1", method=method,
                                     data=b"x=1" if method == "POST" else None)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    answer = info.value
    assert answer.code == 503
    assert answer.headers["Retry-After"] == "120"
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    body = answer.read()
    if method == "HEAD":
        assert body == b""
    else:
        assert b"<h1>Down for maintenance</h1>" in body and b"about 2 minutes" in body
        assert int(answer.headers["Content-Length"]) == len(body)


def test_the_responder_needs_a_socket():
    proc = subprocess.run([sys.executable, RESPONDER], capture_output=True, text=True, check=False,
                          env=dict(os.environ, LISTEN_FDS="", LISTEN_PID=""))
    assert proc.returncode == 2 and "no socket from systemd" in proc.stderr
