# -*- coding: utf-8 -*-
"""Traefik dynamic configuration (plugins/module_utils/traefik.py, roles/traefik/templates/traefik-dynamic.yml.j2).

The sites are normalised the way the role does it (``site_plan``, which also
validates them) before the Traefik functions see them.

Golden files: tests/unit/golden/traefik/<case>.yml hold the rendered dynamic
file of each site mix. Regenerate after an intended change with
ONEBOX_UPDATE_GOLDEN=1 pytest tests/unit/plugins/module_utils/test_traefik.py and review the diff.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import json
import os

import jinja2
import pytest
import yaml
from ansible.plugins.filter.core import comment, to_nice_json

from ansible_collections.onebox.deploy.plugins.plugin_utils import _plan as P
from ansible_collections.onebox.deploy.plugins.plugin_utils import _traefik as T
from conftest import REPO_ROOT as ROOT
from conftest import UNIT_DIR, role_settings

GOLDEN = os.path.join(UNIT_DIR, "golden", "traefik")


def _checker():
    spec = importlib.util.spec_from_file_location(
        "onebox_traefik_check", os.path.join(ROOT, "roles", "traefik", "files", "onebox-traefik-check"),
        loader=importlib.machinery.SourceFileLoader(
            "onebox_traefik_check", os.path.join(ROOT, "roles", "traefik", "files", "onebox-traefik-check")))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHECK = _checker()


def site(name, port, **kw):
    out = {"name": name, "listen": "127.0.0.1:%d" % port, "health_listen": "127.0.0.1:%d" % (port + 11000),
           "version": "1.0.0", "artifact": "files/reference-app", "command": "bin/onebox-app"}
    out.update(kw)
    return out


def plan(sites):
    """``site_plan`` of *sites* with the site role's default settings (artifacts relative to the repository)."""
    return P.plan_sites(sites, role_settings(artifact_base=ROOT))


def normalize(sites):
    """The sites as the Traefik filters get them: validated and normalised by ``site_plan``."""
    result = plan(sites)
    assert result["errors"] == []
    return result["sites"]


def render(sites, options=None):
    """The dynamic file exactly as the role's template writes it."""
    with open(os.path.join(ROOT, "roles", "traefik", "templates", "traefik-dynamic.yml.j2")) as handle:
        source = handle.read()
    header, _sep, body = source.partition("\n")
    assert header == "#jinja2: lstrip_blocks: True"
    env = jinja2.Environment(lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["comment"] = comment
    env.filters["to_nice_json"] = to_nice_json
    return env.from_string(body).render(
        ansible_managed="Ansible managed", inventory_hostname="web1.example.org",
        _onebox_traefik_marker="Managed by onebox.deploy",
        _onebox_traefik_dynamic=T.traefik_dynamic(normalize(sites), options))


CASES = {
    # One site, one domain, defaults: plain HTTP on "web", health check on the health port.
    "single": ([site("blog", 8001, domain="blog.example.org")], {}),
    # Three sites: domains list, a site with no health_listen (checked on the public port),
    # a wildcard listen (server on 127.0.0.1), a site without domain (not routed).
    "mix": ([site("blog", 8001, domain="blog.example.org"),
             site("shop", 8002, listen="8002", domains=["shop.example.org", "www.shop.example.org"]),
             site("wiki", 8003, health_listen=None, domain="wiki.example.org"),
             site("worker", 8004)], {}),
    # TLS with a cert resolver for every router, a shared middleware chain, per-site overrides,
    # a rule override and a custom liveness path.
    "tls-middlewares": ([site("blog", 8001, domain="blog.example.org"),
                         site("api", 8002, rule="Host(`example.org`) && PathPrefix(`/api`)", liveness_path="/alive"),
                         site("admin", 8003, domain="admin.example.org")],
                        {"entrypoints": {"web": {"address": ":80"}, "websecure": {"address": ":443"}},
                         "router_entrypoints": ["websecure"], "cert_resolver": "le",
                         "middlewares": ["secure-headers@file"],
                         "site_options": {"admin": {"middlewares": ["admin-auth"], "priority": 10},
                                          "api": {"entrypoints": ["web", "websecure"], "tls": False,
                                                  "cert_resolver": ""}}}),
    # Traefik before 3.7: the retry middleware has no status codes.
    "traefik-3.6": ([site("blog", 8001, domain="blog.example.org")], {"version": "v3.6.2"}),
    # overlap strategy: the health check goes to the public port (no "port").
    "overlap": ([site("blog", 8001, domain="blog.example.org", strategy="overlap")], {}),
    # blog in maintenance (its own middleware stays, no retry; its service stays), shop as ever.
    "maintenance": ([site("blog", 8001, domain="blog.example.org", maintenance=True),
                     site("shop", 8002, domain="shop.example.org")],
                    {"site_options": {"blog": {"middlewares": ["blog-auth"]}}}),
    # No routed site at all: an empty but valid file (removes every onebox route).
    "empty": ([site("worker", 8004)], {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case):
    sites, options = CASES[case]
    assert T.traefik_errors(normalize(sites), options) == []
    text = render(sites, options)
    path = os.path.join(GOLDEN, case + ".yml")
    if os.environ.get("ONEBOX_UPDATE_GOLDEN"):
        with open(path, "w") as handle:
            handle.write(text)
    with open(path) as handle:
        assert text == handle.read(), "rendered file differs from %s" % path
    # The file is YAML (what Traefik reads) and the checker the role ships accepts it.
    doc = yaml.safe_load(text)
    assert doc == json.loads(json.dumps(doc))
    assert CHECK.check(doc, set((options.get("entrypoints") or {"web": {}}).keys()), {"/readyz"}) == []


def test_every_router_ends_with_retry_and_health_checks_follow_liveness():
    sites, options = CASES["mix"]
    doc = T.traefik_dynamic(normalize(sites), options)
    for name, router in doc["http"]["routers"].items():
        assert router["middlewares"][-1] == "onebox-retry", name
    for name, service in doc["http"]["services"].items():
        assert service["loadBalancer"]["healthCheck"]["path"] == "/livez", name
        assert len(service["loadBalancer"]["servers"]) == 1
    assert "onebox-worker" not in doc["http"]["routers"]
    retry = doc["http"]["middlewares"]["onebox-retry"]["retry"]
    assert retry == {"attempts": 4, "initialInterval": "100ms", "status": ["502", "503"],
                     "retryNonIdempotentMethod": False}


def errors(sites, options=None):
    """What the traefik role reports: the site errors of ``site_plan`` first, then ``traefik_errors``."""
    result = plan(sites)
    return result["errors"] or T.traefik_errors(result["sites"], options)


def test_same_domain_on_two_sites():
    assert errors([site("blog", 8001, domain="www.x.org"), site("shop", 8002, domains=["shop.x.org", "WWW.x.org"])]) \
        == ["site shop: field 'domains': www.x.org is also used by site blog"]
    assert errors([site("blog", 8001, domain="www.x.org"), site("shop", 8002, domain="www.x.org")]) \
        == ["site shop: field 'domain': www.x.org is also used by site blog"]


def test_unreachable_health_endpoint():
    msgs = errors([site("blog", 8001, domain="blog.x.org", health_listen="10.0.0.5:19001")])
    assert len(msgs) == 1 and msgs[0].startswith("site blog: field 'health_listen': 10.0.0.5:19001 is not reachable")
    # all interfaces, or the same host, are reachable; no health_listen means the public port
    assert errors([site("blog", 8001, domain="blog.x.org", health_listen="19001")]) == []
    assert errors([site("blog", 8001, domain="blog.x.org", health_listen=None)]) == []
    # a site without a domain is not routed and not checked
    assert errors([site("blog", 8001, health_listen="10.0.0.5:19001")]) == []


def test_liveness_equal_to_readiness_is_refused():
    msgs = errors([site("blog", 8001, domain="blog.x.org", liveness_path="/readyz")])
    assert msgs == ["site blog: field 'liveness_path': /readyz equals readiness_path: with one backend Traefik's "
                    "health check must follow liveness, not readiness"]


def test_unknown_entry_point():
    assert errors([site("blog", 8001, domain="blog.x.org")], {"site_options": {"blog": {"entrypoints": ["websecure"]}}}) \
        == ["site blog: field 'entrypoints': unknown entry point 'websecure' (known: web)"]
    assert errors([site("blog", 8001, domain="blog.x.org")], {"router_entrypoints": ["https"]}) \
        == ["onebox_traefik_router_entrypoints: unknown entry point 'https' (known: web)"]
    assert "reserved" in errors([], {"entrypoints": {"traefik": {"address": ":8080"}}})[0]


@pytest.mark.parametrize("options,needle", [
    ({"site_options": {"nope": {}}}, "onebox_traefik_site_options: 'nope' is not a site"),
    ({"site_options": {"blog": {"tsl": True}}}, "site blog: field 'onebox_traefik_site_options.tsl'"),
    ({"health_interval": "1 second"}, "onebox_traefik_health_interval must be a duration"),
    ({"retry_attempts": 0}, "onebox_traefik_retry_attempts must be a whole number >= 1"),
    ({"retry_status": ["5xx"]}, "onebox_traefik_retry_status: '5xx'"),
    ({"version": "latest"}, "onebox_traefik_version must look like 3.7"),
    ({"middlewares": ["bad name"]}, "onebox_traefik_middlewares: invalid middleware name"),
])
def test_bad_options(options, needle):
    msgs = errors([site("blog", 8001, domain="blog.x.org")], options)
    assert any(needle in m for m in msgs), msgs


def test_bad_domains_and_rules():
    assert "is not a host name" in errors([site("blog", 8001, domain="*.x.org")])[0]
    assert "must be a list of host names" in errors([site("blog", 8001, domains="a.x.org")])[0]
    assert "one-line Traefik rule" in errors([site("blog", 8001, rule="Host(`a`)\n")])[0]


def test_invalid_sites_are_reported_first():
    msgs = errors([site("Blog", 8001, domain="blog.x.org")])
    assert msgs and "field 'name'" in msgs[0]


def test_checker_rejects_what_traefik_would_reject():
    doc = T.traefik_dynamic(normalize([site("blog", 8001, domain="blog.x.org")]), {})
    doc["http"]["services"]["onebox-blog"]["loadBalancer"]["healthCheck"]["bogus"] = 1
    doc["http"]["routers"]["onebox-blog"]["entryPoints"] = ["websecure"]
    doc["http"]["services"]["onebox-blog"]["loadBalancer"]["healthCheck"]["path"] = "/readyz"
    problems = CHECK.check(doc, {"web"}, {"/readyz"})
    assert any("unknown key 'bogus'" in p for p in problems)
    assert any("unknown entry point 'websecure'" in p for p in problems)
    assert any("readiness path" in p for p in problems)


def test_checker_cli(tmp_path):
    good = tmp_path / "onebox.yml"
    good.write_text(render([site("blog", 8001, domain="blog.x.org")]))
    assert CHECK.main(["--entrypoint", "web", "--forbid-path", "/readyz", str(good)]) == 0
    bad = tmp_path / "bad.yml"
    bad.write_text("# header\n{\"http\": ")
    assert CHECK.main([str(bad)]) == 1


def test_version_parsing():
    assert T.parse_version("v3.7.15") == (3, 7)
    assert T.parse_version("3.10") == (3, 10)
    assert T.parse_version("") is None


@pytest.mark.parametrize("options,needle", [
    ({"api_listen": "0.0.0.0:8080"}, "onebox_traefik_api_listen must be a loopback address"),
    ({"api_listen": ":8080"}, "onebox_traefik_api_listen must be a loopback address"),
    ({"dynamic_file": "../onebox.yml"}, "onebox_traefik_dynamic_file must be a plain file name"),
    ({"dynamic_file": "onebox.json"}, "onebox_traefik_dynamic_file must be a plain file name"),
    ({"dynamic_dir": "etc/traefik"}, "onebox_traefik_dynamic_dir must be an absolute path"),
    ({"install": True}, "exactly one of onebox_traefik_binary_src"),
    ({"install": True, "binary_src": "/x", "binary_url": "https://x/t.tgz"}, "exactly one of onebox_traefik_binary_src"),
    ({"install": True, "binary_url": "https://x/t.tgz"}, "onebox_traefik_binary_url needs onebox_traefik_binary_checksum"),
    ({"install": True, "binary_src": "/nonexistent/traefik"}, "onebox_traefik_binary_src: /nonexistent/traefik is not a file"),
])
def test_option_errors_of_the_installed_traefik(options, needle):
    msgs = T.option_errors(options)
    assert any(needle in m for m in msgs), msgs
    assert any(needle in m for m in errors([site("blog", 8001, domain="blog.x.org")], options))


@pytest.mark.parametrize("options", [
    {"api_listen": "127.0.0.1:8080"}, {"api_listen": "[::1]:9000"}, {"dynamic_file": "onebox.yaml"},
    {"install": True, "binary_url": "https://x/t.tgz", "binary_checksum": "sha256:" + "a" * 64},
    {"install": False, "binary_src": "/nonexistent"},
])
def test_option_errors_accept(options, tmp_path):
    assert T.option_errors(options) == []
    binary = tmp_path / "traefik"
    binary.write_bytes(b"\x7fELF")
    assert T.option_errors({"install": True, "binary_src": str(binary)}) == []


# --------------------------------------------------------------------------
# the version of the installed Traefik
# --------------------------------------------------------------------------

VERSION_OUTPUT = ("Version:      {}\nCodename:     cheddar\nGo version:   go1.24.4\nBuilt:        2025-06-26T13:20:51Z\n"
                  "OS/Arch:      linux/amd64\n")


@pytest.mark.parametrize("options,version", [
    ({"version": "", "version_output": VERSION_OUTPUT.format("3.7.15")}, "3.7.15"),
    ({"version": "", "version_output": VERSION_OUTPUT.format("v3.6.2")}, "v3.6.2"),
    ({"version": "", "version_output": VERSION_OUTPUT.format("3.10.1")}, "3.10.1"),
    ({"version": "", "version_output": ""}, "3.7"),
    ({"version": "", "version_output": "traefik: command not found"}, "3.7"),
    ({"version": "", "version_output": None}, "3.7"),
    ({"version": "3.6", "version_output": VERSION_OUTPUT.format("3.7.15")}, "3.6"),   # set: the output is not read
    ({}, "3.7"),
])
def test_the_version_is_read_from_traefik_version_when_not_set(options, version):
    assert T._options(options)["version"] == version


@pytest.mark.parametrize("output,statuses", [
    (VERSION_OUTPUT.format("3.7.15"), True),
    (VERSION_OUTPUT.format("v3.6.2"), False),
    ("", True),
])
def test_the_retry_middleware_follows_the_detected_version(output, statuses):
    doc = T.traefik_dynamic(normalize([site("blog", 8001, domain="blog.x.org")]),
                            {"version": "", "version_output": output})
    retry = doc["http"]["middlewares"]["onebox-retry"]["retry"]
    assert ("status" in retry) is statuses
    if statuses:
        assert retry["status"] == ["502", "503"] and retry["retryNonIdempotentMethod"] is False


def test_an_empty_version_is_no_option_error():
    assert T.option_errors({"version": "", "version_output": ""}) == []
    assert T.option_errors({"version": "", "version_output": VERSION_OUTPUT.format("3.7.15")}) == []


# --------------------------------------------------------------------------
# option_errors: entry points, router entry points, unit directives, lists
# --------------------------------------------------------------------------

@pytest.mark.parametrize("options,message", [
    ({"entrypoints": {}},
     "onebox_traefik_entrypoints must be a non-empty mapping of entry point name to settings"),
    ({"entrypoints": [":80"]},
     "onebox_traefik_entrypoints must be a non-empty mapping of entry point name to settings"),
    ({"entrypoints": {"web": {"address": ":80"}, "bad name": {"address": ":81"}}},
     "onebox_traefik_entrypoints: invalid entry point name 'bad name'"),
    ({"entrypoints": {"web": {"address": ":80"}, "alt": {}}},
     "onebox_traefik_entrypoints: entry point alt needs an 'address'"),
    ({"entrypoints": {"web": ":80"}},
     "onebox_traefik_entrypoints: entry point web needs an 'address'"),
    ({"entrypoints": {"web": {"address": ":http"}}},
     "onebox_traefik_entrypoints: the address of entry point web must end in :PORT (optionally /tcp or /udp), "
     "got ':http'"),
    ({"router_entrypoints": []}, "onebox_traefik_router_entrypoints must name at least one entry point"),
    ({"router_entrypoints": "web"}, "onebox_traefik_router_entrypoints must be a list"),
    ({"middlewares": "secure-headers@file"}, "onebox_traefik_middlewares must be a list"),
    ({"retry_status": "502"}, "onebox_traefik_retry_status must be a list"),
    ({"service_directives": ["LimitNOFILE=1"]}, "onebox_traefik_service_directives must be a mapping"),
    ({"service_directives": {"LimitNOFILE": {"soft": 1}}},
     "onebox_traefik_service_directives: LimitNOFILE must be a string, a number, a boolean or a list of those"),
    ({"service_directives": {"Environment": ["A=1", "B=2\nExecStartPre=/bin/sh"]}},
     "onebox_traefik_service_directives: Environment must not contain a newline"),
    ({"service_directives": {"limitNOFILE": 1}}, "onebox_traefik_service_directives: invalid directive name"),
    ({"cert_resolver": "lets encrypt"}, "onebox_traefik_cert_resolver: invalid resolver name 'lets encrypt'"),
    ({"site_options": ["blog"]}, "onebox_traefik_site_options must be a mapping of site name to options"),
    ({"retry_initial_interval": "0.1"}, "onebox_traefik_retry_initial_interval must be a duration"),
])
def test_option_errors_name_the_variable(options, message):
    msgs = T.option_errors(options)
    assert any(m.startswith(message) for m in msgs), msgs


@pytest.mark.parametrize("options", [
    {"entrypoints": {"web": {"address": "0.0.0.0:80"}, "websecure": {"address": "[::]:443/tcp"},
                     "dns": {"address": ":53/udp"}}},
    {"service_directives": {"LimitNOFILE": 65536, "Environment": ["A=1", "B=2"], "ProcSubset": "",
                            "MemoryDenyWriteExecute": True, "Nice": None}},
    {"cert_resolver": "le", "router_entrypoints": ["web"]},
])
def test_option_errors_accept_valid_options(options):
    assert T.option_errors(options) == []


# --------------------------------------------------------------------------
# HTTPS: sockets of the entry points, resolvers, redirects, the gate
# --------------------------------------------------------------------------

HTTPS = {"entrypoints": {"web": {"address": ":80"}, "websecure": {"address": ":443"}},
         "router_entrypoints": ["websecure"], "cert_resolver": "pebble",
         "cert_resolvers": {"pebble": {"acme": {"email": "ops@example.org", "storage": "/var/lib/traefik/acme.json",
                                                "httpChallenge": {"entryPoint": "web"}}}}}


def installed(**extra):
    out = dict(HTTPS, install=True, binary_url="https://example.org/traefik", binary_checksum="sha256:" + "a" * 64)
    out.update(extra)
    return out


@pytest.mark.parametrize("address,listen", [
    (":80", "80"), (":443/tcp", "443"), ("0.0.0.0:443", "0.0.0.0:443"), ("[::]:443", "[::]:443"),
    ("127.0.0.1:8080", "127.0.0.1:8080"), ("[::1]:8080", "[::1]:8080"), ("10.0.0.05:80", None),
])
def test_socket_listen(address, listen):
    if listen is None:
        with pytest.raises(ValueError):
            T.socket_listen(address)
    else:
        assert T.socket_listen(address) == listen


@pytest.mark.parametrize("entrypoints,message", [
    ({"web": {"address": "example.org:80"}},
     "onebox_traefik_entrypoints.web.address: 'example.org:80' cannot be a systemd socket: must be :PORT"),
    ({"web": {"address": ":0"}}, "onebox_traefik_entrypoints.web.address: ':0' cannot be a systemd socket: port 0"),
    ({"web": {"address": ":53/udp"}},
     "onebox_traefik_entrypoints.web.address: ':53/udp' cannot be a systemd socket: is udp"),
    ({"web": {"address": "[1.2.3.4]:80"}}, "onebox_traefik_entrypoints.web.address: '[1.2.3.4]:80' cannot be"),
    ({"web": {"address": ":80", "transport": {"lifeCycle": {"graceTimeOut": "60s"}}}},
     "onebox_traefik_entrypoints.web.transport.lifeCycle: the role sets it from onebox_traefik_grace_timeout"),
])
def test_an_entry_point_that_cannot_be_a_socket_is_refused(entrypoints, message):
    opts = installed(entrypoints=dict(HTTPS["entrypoints"], **entrypoints))
    msgs = T.option_errors(opts)
    assert any(m.startswith(message) for m in msgs), msgs
    # Without install the entry points are the user's own Traefik's: not sockets of ours.
    assert not any("cannot be a systemd socket" in m for m in T.option_errors(dict(HTTPS, **{
        "entrypoints": dict(HTTPS["entrypoints"], **entrypoints)})))


@pytest.mark.parametrize("acme,message", [
    ({"storage": "/var/lib/traefik/acme.json", "httpChallenge": {"entryPoint": "web"}},
     "onebox_traefik_cert_resolvers.pebble.acme.email: is required"),
    ({"email": "ops", "storage": "/var/lib/traefik/acme.json", "tlsChallenge": {}},
     "onebox_traefik_cert_resolvers.pebble.acme.email: 'ops' is not an e-mail address"),
    ({"email": "ops@example.org", "tlsChallenge": {}}, "onebox_traefik_cert_resolvers.pebble.acme.storage: is required"),
    ({"email": "ops@example.org", "storage": "/etc/traefik/acme.json", "tlsChallenge": {}},
     "onebox_traefik_cert_resolvers.pebble.acme.storage: '/etc/traefik/acme.json' must be a file in /var/lib/traefik"),
    ({"email": "ops@example.org", "storage": "/var/lib/traefik/../acme.json", "tlsChallenge": {}},
     "onebox_traefik_cert_resolvers.pebble.acme.storage: '/var/lib/traefik/../acme.json' must be a file"),
    ({"email": "ops@example.org", "storage": "/var/lib/traefik/acme.json"},
     "onebox_traefik_cert_resolvers.pebble.acme: needs exactly one of httpChallenge, tlsChallenge, dnsChallenge"),
    ({"email": "ops@example.org", "storage": "/var/lib/traefik/acme.json", "httpChallenge": {"entryPoint": "http"}},
     "onebox_traefik_cert_resolvers.pebble.acme.httpChallenge.entryPoint: must name an entry point"),
])
def test_a_resolver_is_checked_field_by_field(acme, message):
    msgs = T.option_errors(installed(cert_resolvers={"pebble": {"acme": acme}}))
    assert any(m.startswith(message) for m in msgs), msgs


def test_resolvers_must_exist():
    msgs = T.option_errors(installed(cert_resolver="le"))
    assert any(m.startswith("onebox_traefik_cert_resolver: unknown resolver 'le' (known: pebble)") for m in msgs), msgs
    msgs = errors([site("blog", 8001, domain="blog.x.org")],
                  installed(site_options={"blog": {"cert_resolver": "le"}}))
    assert "site blog: field 'cert_resolver': unknown resolver 'le' (known: pebble)" in msgs
    assert T.option_errors(installed()) == []


def test_redirect_to_https_needs_tls_and_gets_a_router_of_its_own():
    sites = [site("blog", 8001, domain="blog.x.org"), site("shop", 8002, domain="shop.x.org")]
    options = dict(HTTPS, site_options={"blog": {"redirect_https": True}})
    assert T.traefik_errors(normalize(sites), options) == []
    doc = T.traefik_dynamic(normalize(sites), options)
    routers = doc["http"]["routers"]
    assert sorted(routers) == ["onebox-blog", "onebox-blog-redirect", "onebox-shop"]
    assert routers["onebox-blog-redirect"] == {"rule": "Host(`blog.x.org`)", "entryPoints": ["web"],
                                               "service": "onebox-blog", "middlewares": ["onebox-redirect-https"]}
    assert doc["http"]["middlewares"]["onebox-redirect-https"] == {"redirectScheme": {"scheme": "https",
                                                                                      "permanent": True}}
    assert CHECK.check(doc, {"web", "websecure"}, {"/readyz"}) == []
    # Another TLS port ends up in the redirect.
    other = dict(options, entrypoints={"web": {"address": ":80"}, "websecure": {"address": ":8443"}})
    doc = T.traefik_dynamic(normalize(sites), other)
    assert doc["http"]["middlewares"]["onebox-redirect-https-8443"]["redirectScheme"]["port"] == "8443"
    assert CHECK.check(doc, {"web", "websecure"}, {"/readyz"}) == []
    # Without TLS there is nothing to redirect to.
    plain = dict(options, cert_resolver="", router_entrypoints=["web"])
    assert ("site blog: field 'redirect_https': redirects to HTTPS, but the site's router has no TLS (set tls or "
            "cert_resolver)") in T.traefik_errors(normalize(sites), plain)
    bad = dict(options, site_options={"blog": {"redirect_https": "yes"}})
    assert "site blog: field 'redirect_https': must be true or false, got 'yes'" in T.traefik_errors(
        normalize(sites), bad)
    assert any(m.startswith("onebox_traefik_redirect_entrypoints: unknown entry point 'http'")
               for m in T.option_errors(dict(options, redirect_entrypoints=["http"])))


def test_sockets_static_entry_points_and_the_gate():
    opts = installed(grace_timeout=20)
    assert T.traefik_sockets(opts) == [
        {"entrypoint": "traefik", "unit": "traefik-traefik.socket", "listen": "127.0.0.1:8080", "public": False},
        {"entrypoint": "web", "unit": "traefik-web.socket", "listen": "80", "public": True},
        {"entrypoint": "websecure", "unit": "traefik-websecure.socket", "listen": "443", "public": True}]
    static = T.static_entrypoints(opts)
    assert sorted(static) == ["traefik", "web", "websecure"]
    for conf in static.values():
        assert conf["transport"]["lifeCycle"] == {"graceTimeOut": "20s", "requestAcceptGraceTimeout": "0s"}
    sites = normalize([site("blog", 8001, domain="blog.x.org"), site("shop", 8002, domains=["shop.x.org", "www.shop.x.org"]),
                       site("api", 8003, rule="Host(`api.x.org`)"), site("worker", 8004)])
    assert T.gate_config(sites, opts) == {"tls_hosts": {"websecure": ["blog.x.org", "shop.x.org", "www.shop.x.org"]},
                                          "acme_storage": ["/var/lib/traefik/acme.json"]}
    assert T.gate_config(sites, {}) == {"tls_hosts": {}, "acme_storage": []}


def _slurped(unit, text):
    import base64
    return {"item": unit, "content": base64.b64encode(text.encode()).decode()} if text is not None else {"item": unit}


def test_unit_changes():
    sockets = T.traefik_sockets(installed())
    ours = "# Managed by onebox.deploy: x\n[Socket]\nListenStream=%s\n"
    result = T.unit_changes([
        _slurped("traefik.service", "# Managed by onebox.deploy\n[Service]\nExecStart=/usr/local/bin/traefik\n"),
        _slurped("traefik-web.socket", ours % "80"),
        _slurped("traefik-websecure.socket", ours % "0.0.0.0:443"),
        _slurped("traefik-traefik.socket", None)], sockets)
    assert result == {"foreign": [], "rebind": ["traefik-websecure.socket"], "legacy": True}
    result = T.unit_changes([_slurped("traefik.service", "# Managed by onebox.deploy\nSockets=traefik-web.socket\n"),
                             _slurped("traefik-web.socket", "[Socket]\nListenStream=80\n")], sockets)
    assert result == {"foreign": ["traefik-web.socket"], "rebind": [], "legacy": False}


def test_a_host_rejoins_once_its_shared_sites_answer_readiness_where_traefik_reaches_them():
    sites = normalize([site("blog", 8001, listen="8001", health_listen="19001", domain="blog.x.org"),
                       site("shop", 8002, listen="8002", health_listen="19002", domain="shop.x.org"),
                       site("solo", 8003, listen="8003", health_listen="19003", domain="solo.x.org")])
    backends = [{"host": "web1", "address": "10.0.0.1", "sites": ["blog", "shop", "solo"]},
                {"host": "web2", "address": "10.0.0.2", "sites": ["blog", "shop"]}]
    options = {"backends": backends}
    # solo runs on web1 only: its one server never leaves, so there is nothing to wait for.
    assert T.rejoin_urls(sites, options, "web1") == ["http://10.0.0.1:19001/readyz", "http://10.0.0.1:19002/readyz"]
    assert T.rejoin_urls(sites, options, "web2") == ["http://10.0.0.2:19001/readyz", "http://10.0.0.2:19002/readyz"]
    assert T.rejoin_urls(sites, {}, "web1") == []
