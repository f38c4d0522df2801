# -*- coding: utf-8 -*-
# Copyright: onebox.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Traefik v3 dynamic configuration (file provider) built from the normalised
sites (the ``sites`` of ``onebox_site_plan``, see ``_sites.py``).

Pure functions, no side effects. Used by the ``onebox.deploy.traefik_*``
filters on the controller and by the golden-file unit tests.

Every routed site (one with ``domain``, ``domains`` or ``rule``) gets:

* a router ``onebox-<name>`` (Host rule, entry points, optional TLS with a
  cert resolver, the site's middlewares, then the shared retry middleware);
* a service ``onebox-<name>`` whose load balancer has exactly one server, the
  site's public ``listen``, and an active health check on ``/livez`` (the
  site's ``liveness_path``) at ``health_listen``; never on the readiness path:
  with one backend, a server marked down by a 503 during drain means "no
  available server" for every request until the next check.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.onebox.deploy.plugins.plugin_utils._sites import DIRECTIVE_RE, WILDCARD_HOSTS, format_listen, url_host
from ansible_collections.onebox.deploy.plugins.plugin_utils._units import SANDBOX_DEFAULTS, merge_directives

PREFIX = "onebox-"
RETRY_MIDDLEWARE = PREFIX + "retry"
# A lower-case DNS name with at least two labels; Traefik's Host() has no wildcards.
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Go's time.ParseDuration subset we accept: "500ms", "1s", "1.5s", "2m".
DURATION_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(ms|s|m)$")
MIDDLEWARE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(@[a-z][a-z0-9-]*)?$")
ENTRYPOINT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
# The entry point Traefik reserves for its API, dashboard and ping.
API_ENTRYPOINT = "traefik"
SITE_OPTION_KEYS = frozenset(["entrypoints", "middlewares", "tls", "cert_resolver", "priority"])
# Status codes the retry middleware re-sends on (Traefik >= 3.7 only; idempotent
# methods only, retryNonIdempotentMethod stays false).
RETRY_STATUS_MIN_VERSION = (3, 7)

DEFAULT_OPTIONS = {
    "entrypoints": {"web": {"address": ":80"}},
    "router_entrypoints": ["web"],
    "tls": False,
    "cert_resolver": "",
    "middlewares": [],
    "site_options": {},
    "health_interval": "1s",
    "health_unhealthy_interval": "100ms",
    "health_timeout": "3s",
    "retry_attempts": 4,
    "retry_initial_interval": "100ms",
    "retry_status": ["502", "503"],
    "version": "3.7",
    "api_listen": "127.0.0.1:8080",
    "service_directives": {},
    "install": False,
    "binary_src": "",
    "binary_url": "",
    "binary_checksum": "",
    "dynamic_dir": "/etc/traefik/dynamic",
    "dynamic_file": "onebox.yml",
    "version_output": "",
    # More than one server: [{host, address, sites}] from traefik_backends();
    # empty means one server per site, the site's own listen address.
    "backends": [],
    # Inventory hosts whose servers are out of rotation (a host-by-host roll).
    "exclude": [],
}
LOOPBACK_API_RE = re.compile(r"^(127\.[0-9]+\.[0-9]+\.[0-9]+|\[::1\]|localhost):[0-9]+$")
DYNAMIC_FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.(yml|yaml)$")


# Sandboxing of the installed traefik.service (docs/traefik.md#the-installed-unit),
# written after its own settings; onebox_traefik_service_directives replaces
# them by name (an empty value removes one), like a site's service_directives.
def _traefik_sandbox():
    """The site services' sandbox without ReadWritePaths (Traefik writes
    nothing), with MemoryDenyWriteExecute (Go has no JIT: Traefik never needs
    writable executable memory), a UMask of 0077 and without the set*id
    calls (Traefik never drops privileges itself)."""
    out = []
    for key, value in SANDBOX_DEFAULTS:
        if key == "ReadWritePaths":
            continue
        if key == "SystemCallFilter":
            value = [item for item in value if item != "@setuid"]
        out.append((key, "0077" if key == "UMask" else value))
        if key == "LockPersonality":
            out.append(("MemoryDenyWriteExecute", "yes"))
    return tuple(out)


TRAEFIK_SANDBOX = _traefik_sandbox()
# The port at the end of a Traefik address: ":80", "0.0.0.0:443", "[::]:8443/udp".
ADDRESS_PORT_RE = re.compile(r":([0-9]{1,5})(/(tcp|udp))?$")


def parse_version(text):
    """``'v3.7.15'`` -> ``(3, 7)``; ``None`` when it is not a version."""
    match = re.match(r"^v?(\d+)\.(\d+)", str(text or "").strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def _options(options):
    out = dict(DEFAULT_OPTIONS)
    out.update({k: v for k, v in (options or {}).items() if v is not None})
    if not (options or {}).get("version"):
        # What `traefik version` printed on the host ("Version:      3.7.15"), else the default.
        match = re.search(r"Version:\s+(v?[0-9]+\.[0-9]+[0-9.]*)", str(out.get("version_output") or ""))
        out["version"] = match.group(1) if match else DEFAULT_OPTIONS["version"]
    return out


def site_domains(site):
    """The host names of a site: ``domain`` first, then ``domains``, lower-cased, no repeats."""
    names = []
    values = []
    if site.get("domain"):
        values.append(site["domain"])
    domains = site.get("domains")
    if isinstance(domains, list):
        values.extend(domains)
    for value in values:
        name = str(value).strip().lower().rstrip(".")
        if name not in names:
            names.append(name)
    return names


def is_routed(site):
    return bool(site.get("domain") or site.get("domains") or site.get("rule"))


def _err(label, field, message):
    return "site %s: field '%s': %s" % (label, field, message)


def _site_label(site, index):
    name = site.get("name") if isinstance(site, dict) else None
    return name if isinstance(name, str) and name else "onebox_sites[%d]" % index


def _health_reachable(listen, health):
    """Can Traefik's healthCheck reach ``health`` for a server at ``listen``?

    The check dials the server URL's host; only the port can be changed.
    """
    server_host = url_host(listen[0])
    if health[0] in WILDCARD_HOSTS:
        return True
    return url_host(health[0]) == server_host


def option_errors(options):
    """Problems in the role options themselves (not tied to a site)."""
    opts = _options(options)
    errors = []
    entrypoints = opts["entrypoints"]
    if not isinstance(entrypoints, dict) or not entrypoints:
        errors.append("onebox_traefik_entrypoints must be a non-empty mapping of entry point name to settings")
        entrypoints = {}
    for name, conf in entrypoints.items():
        if not ENTRYPOINT_RE.match(str(name)):
            errors.append("onebox_traefik_entrypoints: invalid entry point name %r" % (name,))
        elif name == API_ENTRYPOINT:
            errors.append("onebox_traefik_entrypoints: '%s' is reserved for Traefik's API and ping "
                          "(onebox_traefik_api_listen)" % API_ENTRYPOINT)
        if not isinstance(conf, dict) or not conf.get("address"):
            errors.append("onebox_traefik_entrypoints: entry point %s needs an 'address'" % name)
        elif not ADDRESS_PORT_RE.search(str(conf["address"])):
            errors.append("onebox_traefik_entrypoints: the address of entry point %s must end in :PORT "
                          "(optionally /tcp or /udp), got %r" % (name, conf["address"]))
    directives = opts["service_directives"]
    if not isinstance(directives, dict):
        errors.append("onebox_traefik_service_directives must be a mapping of directive to value")
        directives = {}
    for key, value in directives.items():
        if not DIRECTIVE_RE.match(str(key)):
            errors.append("onebox_traefik_service_directives: invalid directive name %r" % (key,))
        for item in (value if isinstance(value, list) else [value]):
            if item is not None and not isinstance(item, (str, int, float, bool)):
                errors.append("onebox_traefik_service_directives: %s must be a string, a number, a boolean or "
                              "a list of those" % key)
            elif "\n" in str(item):
                errors.append("onebox_traefik_service_directives: %s must not contain a newline" % key)
    for field, name in (("router_entrypoints", "onebox_traefik_router_entrypoints"),
                        ("middlewares", "onebox_traefik_middlewares"),
                        ("retry_status", "onebox_traefik_retry_status")):
        if not isinstance(opts[field], list):
            errors.append("%s must be a list" % name)
    if isinstance(opts["router_entrypoints"], list):
        if not opts["router_entrypoints"]:
            errors.append("onebox_traefik_router_entrypoints must name at least one entry point")
        for name in opts["router_entrypoints"]:
            if name not in entrypoints:
                errors.append("onebox_traefik_router_entrypoints: unknown entry point %r (known: %s)" % (
                    name, ", ".join(sorted(entrypoints))))
    if isinstance(opts["middlewares"], list):
        for name in opts["middlewares"]:
            if not MIDDLEWARE_RE.match(str(name)):
                errors.append("onebox_traefik_middlewares: invalid middleware name %r" % (name,))
    for field in ("health_interval", "health_unhealthy_interval", "health_timeout", "retry_initial_interval"):
        if not DURATION_RE.match(str(opts[field])):
            errors.append("onebox_traefik_%s must be a duration like 500ms, 1s or 2m, got %r" % (field, opts[field]))
    attempts = opts["retry_attempts"]
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        errors.append("onebox_traefik_retry_attempts must be a whole number >= 1, got %r" % (attempts,))
    if isinstance(opts["retry_status"], list):
        for code in opts["retry_status"]:
            if not re.match(r"^[1-5][0-9]{2}(-[1-5][0-9]{2})?$", str(code)):
                errors.append("onebox_traefik_retry_status: %r is not a status code or range like 500-504" % (code,))
    if parse_version(opts["version"]) is None:
        errors.append("onebox_traefik_version must look like 3.7 or v3.7.15, got %r" % (opts["version"],))
    if opts["cert_resolver"] and not ENTRYPOINT_RE.match(str(opts["cert_resolver"])):
        errors.append("onebox_traefik_cert_resolver: invalid resolver name %r" % (opts["cert_resolver"],))
    if not isinstance(opts["site_options"], dict):
        errors.append("onebox_traefik_site_options must be a mapping of site name to options")
    if not LOOPBACK_API_RE.match(str(opts["api_listen"])):
        errors.append("onebox_traefik_api_listen must be a loopback address (127.0.0.1:8080, [::1]:8080), got %r: "
                      "the API has no authentication" % (opts["api_listen"],))
    if not DYNAMIC_FILE_RE.match(str(opts["dynamic_file"])):
        errors.append("onebox_traefik_dynamic_file must be a plain file name ending in .yml or .yaml, got %r"
                      % (opts["dynamic_file"],))
    if not str(opts["dynamic_dir"]).startswith("/"):
        errors.append("onebox_traefik_dynamic_dir must be an absolute path, got %r" % (opts["dynamic_dir"],))
    if opts["install"]:
        src, url = opts["binary_src"], opts["binary_url"]
        if bool(src) == bool(url):
            errors.append("with onebox_traefik_install set exactly one of onebox_traefik_binary_src (a controller "
                          "path) or onebox_traefik_binary_url (with onebox_traefik_binary_checksum) is required")
        elif url and not opts["binary_checksum"]:
            errors.append("onebox_traefik_binary_url needs onebox_traefik_binary_checksum (sha256:<hex>)")
        elif src and not os.path.isfile(src):
            errors.append("onebox_traefik_binary_src: %s is not a file on the controller" % src)
    return errors


def traefik_errors(sites, options=None):
    """Every problem that would make the dynamic file wrong; empty when it can be written.

    ``sites`` are normalised sites (``onebox.deploy.site_plan``), so the site
    fields themselves are valid already. Messages name the site and the field,
    e.g. ``site shop: field 'domain': www.x.org is also used by site blog``.
    """
    if not isinstance(sites, list):
        return ["onebox_sites must be a list of site mappings, got %s" % type(sites).__name__]
    errors = option_errors(options)
    if errors:
        return errors
    opts = _options(options)
    entrypoints = opts["entrypoints"]
    names = set(site["name"] for site in sites)
    for name in sorted(opts["site_options"]):
        if name not in names:
            errors.append("onebox_traefik_site_options: %r is not a site of onebox_sites (known: %s)" % (
                name, ", ".join(sorted(names))))
    owners = {}
    for index, raw in enumerate(sites):
        label = _site_label(raw, index)
        site = raw
        for field in ("domains",):
            value = raw.get(field)
            if value is not None and (not isinstance(value, list)
                                      or not all(isinstance(v, str) for v in value)):
                errors.append(_err(label, field, "must be a list of host names"))
        if raw.get("domain") is not None and not isinstance(raw.get("domain"), str):
            errors.append(_err(label, "domain", "must be a host name, got %r" % (raw.get("domain"),)))
        rule = raw.get("rule")
        if rule is not None and (not isinstance(rule, str) or not rule.strip() or "\n" in rule):
            errors.append(_err(label, "rule", "must be a one-line Traefik rule, e.g. Host(`x.org`) && PathPrefix(`/a`)"))
        if not is_routed(raw):
            continue
        for domain in site_domains(raw):
            field = "domain" if raw.get("domain") and domain == str(raw["domain"]).strip().lower().rstrip(".") \
                else "domains"
            if not DOMAIN_RE.match(domain):
                errors.append(_err(label, field, "%r is not a host name (Traefik's Host() takes no wildcards; "
                                                 "use rule with HostRegexp for those)" % (domain,)))
            elif domain in owners and owners[domain] != label:
                errors.append(_err(label, field, "%s is also used by site %s" % (domain, owners[domain])))
            else:
                owners.setdefault(domain, label)
        # Health endpoint Traefik can reach: it dials the server's own host
        # and can change the port only.
        listen = (site["listen_ip"], site["listen_port"])
        health = (site["health_ip"], site["health_port"])
        if site_backends(site, opts):
            for field, addr in (("listen", listen), ("health_listen", health)):
                if addr[0] not in WILDCARD_HOSTS and not (field == "health_listen" and health == listen):
                    errors.append(_err(label, field, "%s is bound to %s, which Traefik on another host cannot "
                                                     "reach: with onebox_traefik_backends bind it to all interfaces "
                                                     "(a bare port)" % (format_listen(*addr), addr[0])))
        elif site["strategy"] != "overlap" and not _health_reachable(listen, health):
            errors.append(_err(label, "health_listen", "%s is not reachable by Traefik's health check, which "
                                                       "dials the server address %s and can only change the port: "
                                                       "bind it to %s or to all interfaces" % (
                                                           format_listen(*health), url_host(listen[0]),
                                                           url_host(listen[0]))))
        if site["liveness_path"] == site["readiness_path"] and not uses_readiness(site, opts):
            errors.append(_err(label, "liveness_path", "%s equals readiness_path: with one backend Traefik's health "
                                                       "check must follow liveness, not readiness" % (
                                                           site.get("liveness_path"),)))
        site_opts = opts["site_options"].get(site["name"], {})
        if not isinstance(site_opts, dict):
            errors.append(_err(label, "onebox_traefik_site_options", "must be a mapping"))
            continue
        for key in sorted(set(site_opts) - SITE_OPTION_KEYS):
            errors.append(_err(label, "onebox_traefik_site_options.%s" % key, "is not a known option (known: %s)" % (
                ", ".join(sorted(SITE_OPTION_KEYS)))))
        eps = site_opts.get("entrypoints", opts["router_entrypoints"])
        if not isinstance(eps, list) or not eps:
            errors.append(_err(label, "entrypoints", "must be a non-empty list of entry point names"))
        else:
            for name in eps:
                if name not in entrypoints:
                    errors.append(_err(label, "entrypoints", "unknown entry point %r (known: %s)" % (
                        name, ", ".join(sorted(entrypoints)))))
        mws = site_opts.get("middlewares", [])
        if not isinstance(mws, list):
            errors.append(_err(label, "middlewares", "must be a list of middleware names"))
        else:
            for name in mws:
                if not MIDDLEWARE_RE.match(str(name)):
                    errors.append(_err(label, "middlewares", "invalid middleware name %r" % (name,)))
        resolver = site_opts.get("cert_resolver")
        if resolver and not ENTRYPOINT_RE.match(str(resolver)):
            errors.append(_err(label, "cert_resolver", "invalid resolver name %r" % (resolver,)))
        priority = site_opts.get("priority")
        if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int) or priority < 1):
            errors.append(_err(label, "priority", "must be a whole number >= 1, got %r" % (priority,)))
    return errors


def host_rule(domains):
    return " || ".join("Host(`%s`)" % domain for domain in domains)


def router_for(site, opts):
    site_opts = opts["site_options"].get(site["name"], {}) or {}
    router = {
        "rule": site["rule"] if site.get("rule") else host_rule(site_domains(site)),
        "entryPoints": list(site_opts.get("entrypoints", opts["router_entrypoints"])),
        "service": PREFIX + site["name"],
        # The site's own chain first, retry last: a retried request does not
        # run authentication or rate limits twice.
        "middlewares": list(opts["middlewares"]) + list(site_opts.get("middlewares", [])) + [RETRY_MIDDLEWARE],
    }
    if site_opts.get("priority"):
        router["priority"] = int(site_opts["priority"])
    tls = site_opts.get("tls", opts["tls"])
    resolver = site_opts.get("cert_resolver", opts["cert_resolver"])
    if tls or resolver:
        router["tls"] = {"certResolver": resolver} if resolver else {}
    return router


def site_backends(site, opts):
    """``[(host, address)]`` of the backends that run *site* (empty: one
    server, the site's own address)."""
    return [(b["host"], b["address"]) for b in opts.get("backends") or [] if site["name"] in (b.get("sites") or [])]


def uses_readiness(site, opts):
    """A site served by two or more hosts is checked on its readiness path: a
    server that drains leaves rotation while the others serve. With one
    server, a 503 during drain would mark the only server down, so the check
    follows liveness."""
    return len(site_backends(site, opts)) >= 2


def server_urls(site, opts):
    """The load balancer's servers of *site*: one per backend that runs it,
    without the hosts out of rotation (unless that would leave none)."""
    listen = (site["listen_ip"], site["listen_port"])
    backends = site_backends(site, opts)
    if not backends:
        return ["http://%s:%d" % (url_host(listen[0]), listen[1])]
    kept = [address for host, address in backends if host not in (opts.get("exclude") or [])]
    return ["http://%s:%d" % (url_host(address), listen[1]) for address in (kept or [a for _h, a in backends])]


def service_for(site, opts):
    listen = (site["listen_ip"], site["listen_port"])
    health = (site["health_ip"], site["health_port"])
    check = {
        "path": site["readiness_path"] if uses_readiness(site, opts) else site["liveness_path"],
        "interval": str(opts["health_interval"]),
        "unhealthyInterval": str(opts["health_unhealthy_interval"]),
        "timeout": str(opts["health_timeout"]),
    }
    # overlap: two instances share the socket and their health ports move, so
    # the check goes to the public port (no "port"): the socket always answers.
    if site["strategy"] != "overlap" and health[1] != listen[1]:
        check["port"] = health[1]
    return {
        "loadBalancer": {
            "servers": [{"url": url} for url in server_urls(site, opts)],
            "passHostHeader": True,
            "healthCheck": check,
        }
    }


def retry_middleware(opts):
    retry = {"attempts": int(opts["retry_attempts"]), "initialInterval": str(opts["retry_initial_interval"])}
    version = parse_version(opts["version"])
    if version and version >= RETRY_STATUS_MIN_VERSION and opts["retry_status"]:
        retry["status"] = [str(code) for code in opts["retry_status"]]
        retry["retryNonIdempotentMethod"] = False
    return {"retry": retry}


def traefik_dynamic(sites, options=None):
    """The dynamic configuration (a dict) for every routed site of ``sites``.

    ``sites`` are normalised sites (``onebox.deploy.site_plan``) that passed
    :func:`traefik_errors`.
    """
    opts = _options(options)
    routers = {}
    services = {}
    for site in sites:
        if not is_routed(site):
            continue
        routers[PREFIX + site["name"]] = router_for(site, opts)
        services[PREFIX + site["name"]] = service_for(site, opts)
    http = {"middlewares": {RETRY_MIDDLEWARE: retry_middleware(opts)}}
    # Traefik rejects an empty "routers: {}" ("cannot be a standalone element")
    # and would then keep the previous routes: leave empty sections out.
    if routers:
        http["routers"] = routers
        http["services"] = services
    return {"http": http}


def privileged_ports(options=None):
    """Ports below 1024 that Traefik binds itself (entry points and the API), sorted."""
    opts = _options(options)
    addresses = [conf.get("address") for conf in (opts["entrypoints"] or {}).values() if isinstance(conf, dict)]
    addresses.append(opts["api_listen"])
    ports = set()
    for address in addresses:
        match = ADDRESS_PORT_RE.search(str(address or ""))
        if match and int(match.group(1)) < 1024:
            ports.add(int(match.group(1)))
    return sorted(ports)


def traefik_unit_directives(options=None):
    """The sandboxing directives of the installed ``traefik.service``.

    :data:`TRAEFIK_SANDBOX` with CAP_NET_BIND_SERVICE (bounding set and ambient)
    only when :func:`privileged_ports` finds a port below 1024, then
    ``service_directives`` applied by name (see ``sites.merge_directives``).
    Returns an ordered dict of directive to a string or a list of strings.
    """
    opts = _options(options)
    privileged = bool(privileged_ports(opts))
    defaults = []
    for key, value in TRAEFIK_SANDBOX:
        if key == "CapabilityBoundingSet" and privileged:
            defaults.append((key, "CAP_NET_BIND_SERVICE"))
            key, value = "AmbientCapabilities", "CAP_NET_BIND_SERVICE"
        defaults.append((key, value))
    return merge_directives(defaults, opts["service_directives"])


def routers_match(api_routers, dynamic):
    """True when Traefik's API (``/api/http/routers``) serves exactly the
    onebox routers of *dynamic* from the file provider, by name and rule."""
    expected = set("%s@file %s" % (name, router.get("rule"))
                   for name, router in ((dynamic or {}).get("http", {}).get("routers") or {}).items())
    served = set("%s %s" % (router.get("name"), router.get("rule")) for router in api_routers or []
                 if str(router.get("name", "")).startswith(PREFIX) and str(router.get("name", "")).endswith("@file"))
    return expected == served


def backends(hostvars, hosts, address_var="onebox_traefik_backend_address"):
    """The site hosts behind Traefik, from the inventory: ``[{host, address,
    sites}]`` for each of *hosts*: its *address_var* (else ``ansible_host``,
    else its name) and the names of its ``onebox_sites`` that are present."""
    out = []
    for host in hosts:
        hv = hostvars[host]
        address = hv.get(address_var) or hv.get("ansible_host") or host
        names = [s.get("name") for s in hv.get("onebox_sites") or [] if isinstance(s, dict)
                 and s.get("state", "present") != "absent"]
        out.append(dict(host=host, address=str(address), sites=names))
    return out


def readiness_services(sites, options=None):
    """Services whose health check may use the readiness path (sites on two or more hosts)."""
    opts = _options(options)
    return sorted(PREFIX + site["name"] for site in sites if is_routed(site) and uses_readiness(site, opts))


def servers_match(api_services, dynamic):
    """True when Traefik's API (``/api/http/services``) lists for every onebox
    service of *dynamic* exactly its servers (by URL): a changed rotation is live."""
    want = dict(("%s@file" % name, sorted(server["url"] for server in service["loadBalancer"]["servers"]))
                for name, service in ((dynamic or {}).get("http", {}).get("services") or {}).items())
    have = {}
    for service in api_services or []:
        name = str(service.get("name", ""))
        if name in want:
            have[name] = sorted(server.get("url") for server in
                                (service.get("loadBalancer") or {}).get("servers") or [])
    return want == have
