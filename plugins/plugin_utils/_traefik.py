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

import base64
import ipaddress
import json
import os
import re

from ansible_collections.onebox.deploy.plugins.plugin_utils._sites import DIRECTIVE_RE, WILDCARD_HOSTS, format_listen, url_host
from ansible_collections.onebox.deploy.plugins.plugin_utils._units import SANDBOX_DEFAULTS, merge_directives

PREFIX = "onebox-"
RETRY_MIDDLEWARE = PREFIX + "retry"
# The service of the sites in maintenance: the responder the role installs
# (onebox-maintenance.socket), which answers every request with 503, a page
# and Retry-After. Site names never end in "-" plus a reserved word, but a
# site could be named "maintenance": its service would be onebox-maintenance
# too, so that name is refused for routed sites (traefik_errors).
MAINTENANCE_SERVICE = PREFIX + "maintenance"
MAINTENANCE_SOCKET = MAINTENANCE_SERVICE + ".socket"
# A lower-case DNS name with at least two labels; Traefik's Host() has no wildcards.
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Go's time.ParseDuration subset we accept: "500ms", "1s", "1.5s", "2m".
DURATION_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(ms|s|m)$")
MIDDLEWARE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(@[a-z][a-z0-9-]*)?$")
ENTRYPOINT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
# The entry point Traefik reserves for its API, dashboard and ping.
API_ENTRYPOINT = "traefik"
SITE_OPTION_KEYS = frozenset(["entrypoints", "middlewares", "tls", "cert_resolver", "priority", "redirect_https"])
REDIRECT_MIDDLEWARE = PREFIX + "redirect-https"
REDIRECT_SUFFIX = "-redirect"
# Where Traefik may write: its StateDirectory (traefik.service.j2). ACME storage lives there.
TRAEFIK_STATE_DIR = "/var/lib/traefik"
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CHALLENGES = ("httpChallenge", "tlsChallenge", "dnsChallenge")
# Systemd unit of the socket of an entry point (FileDescriptorName= is the entry point's name,
# which is how Traefik maps an inherited socket to its entry point).
SOCKET_UNIT = "traefik-%s.socket"
# The first comment line of every file the role writes.
MARKER = "Managed by onebox.deploy"
GATE_UNIT = "onebox-traefik-gate@.service"
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
    # certificatesResolvers of the static configuration (install only).
    "cert_resolvers": {},
    # Seconds Traefik gives requests in flight on SIGTERM (lifeCycle.graceTimeOut).
    "grace_timeout": 10,
    # Entry points of the redirect routers of sites with redirect_https.
    "redirect_entrypoints": ["web"],
    "state_dir": "/var/lib/onebox-traefik",
    # Loopback address of the maintenance responder (onebox-maintenance.socket).
    "maintenance_listen": "127.0.0.1:8099",
    # Seconds of the responder's Retry-After header.
    "maintenance_retry_after": 300,
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
# An address systemd can hold as a socket: ":PORT", "IPv4:PORT" or "[IPv6]:PORT", optionally "/tcp".
SOCKET_ADDRESS_RE = re.compile(r"^(?:(?P<v4>[0-9.]+)|\[(?P<v6>[0-9A-Fa-f:.]+)\])?:(?P<port>[0-9]{1,5})"
                               r"(?:/(?P<proto>[A-Za-z]+))?$")


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


def _whole(value):
    """A whole number, also as ``-e`` gives it (a string of digits); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.match(r"^[0-9]+$", value.strip()):
        return int(value)
    return None


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
    if not LOOPBACK_API_RE.match(str(opts["maintenance_listen"])):
        errors.append("onebox_traefik_maintenance_listen must be a loopback address (127.0.0.1:8099), got %r: "
                      "only Traefik on this host talks to the maintenance responder" % (opts["maintenance_listen"],))
    else:
        try:
            socket_listen(opts["maintenance_listen"])
        except ValueError as exc:
            errors.append("onebox_traefik_maintenance_listen: %r cannot be a systemd socket: %s" % (
                opts["maintenance_listen"], exc))
        if str(opts["maintenance_listen"]) == str(opts["api_listen"]):
            errors.append("onebox_traefik_maintenance_listen: %s is also onebox_traefik_api_listen" % (
                opts["maintenance_listen"],))
    retry_after = _whole(opts["maintenance_retry_after"])
    if retry_after is None or not 0 <= retry_after <= 86400:
        errors.append("onebox_maintenance_retry_after must be a whole number of seconds from 0 to 86400, got %r"
                      % (opts["maintenance_retry_after"],))
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
        errors.extend(_install_errors(opts, entrypoints))
    redirect = opts["redirect_entrypoints"]
    if not isinstance(redirect, list) or not redirect:
        errors.append("onebox_traefik_redirect_entrypoints must be a non-empty list of entry point names")
    else:
        for name in redirect:
            if name not in entrypoints:
                errors.append("onebox_traefik_redirect_entrypoints: unknown entry point %r (known: %s)" % (
                    name, ", ".join(sorted(entrypoints))))
    return errors


def _install_errors(opts, entrypoints):
    """With ``onebox_traefik_install``: every entry point (and the API) can be
    a systemd socket, the grace of a stop is bounded, the resolvers are complete."""
    errors = []
    for name, conf in sorted(entrypoints.items()):
        if not isinstance(conf, dict) or not conf.get("address"):
            continue
        try:
            socket_listen(conf["address"])
        except ValueError as exc:
            errors.append("onebox_traefik_entrypoints.%s.address: %r cannot be a systemd socket: %s" % (
                name, conf["address"], exc))
        transport = conf.get("transport")
        if isinstance(transport, dict) and "lifeCycle" in transport:
            errors.append("onebox_traefik_entrypoints.%s.transport.lifeCycle: the role sets it from "
                          "onebox_traefik_grace_timeout, which the unit's TimeoutStopSec= covers: set that "
                          "instead" % name)
    try:
        socket_listen(opts["api_listen"])
    except ValueError as exc:
        errors.append("onebox_traefik_api_listen: %r cannot be a systemd socket: %s" % (opts["api_listen"], exc))
    grace = opts["grace_timeout"]
    if isinstance(grace, bool) or not isinstance(grace, int) or not 1 <= grace <= 3600:
        errors.append("onebox_traefik_grace_timeout must be a whole number of seconds from 1 to 3600, got %r"
                      % (grace,))
    errors.extend(resolver_errors(opts["cert_resolvers"], entrypoints))
    resolvers = opts["cert_resolvers"] if isinstance(opts["cert_resolvers"], dict) else {}
    if opts["cert_resolver"] and opts["cert_resolver"] not in resolvers:
        errors.append("onebox_traefik_cert_resolver: unknown resolver %r (known: %s)" % (
            opts["cert_resolver"], ", ".join(sorted(resolvers)) or "none: set onebox_traefik_cert_resolvers"))
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
        if PREFIX + str(raw.get("name")) == MAINTENANCE_SERVICE:
            errors.append(_err(label, "name", "a routed site cannot be named maintenance: its Traefik service "
                                              "would be %s, the maintenance responder's" % MAINTENANCE_SERVICE))
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
        elif resolver and opts["install"] and resolver not in (opts["cert_resolvers"] or {}):
            errors.append(_err(label, "cert_resolver", "unknown resolver %r (known: %s)" % (
                resolver, ", ".join(sorted(opts["cert_resolvers"] or {})) or "none")))
        redirect = site_opts.get("redirect_https", False)
        if not isinstance(redirect, bool):
            errors.append(_err(label, "redirect_https", "must be true or false, got %r" % (redirect,)))
        elif redirect and not _tls_entrypoints(site, opts):
            errors.append(_err(label, "redirect_https", "redirects to HTTPS, but the site's router has no TLS "
                                                        "(set tls or cert_resolver)"))
        elif redirect and site["name"] + REDIRECT_SUFFIX in names:
            errors.append(_err(label, "redirect_https", "its redirect router %s%s%s would be the router of site "
                                                        "%s%s" % (PREFIX, site["name"], REDIRECT_SUFFIX,
                                                                  site["name"], REDIRECT_SUFFIX)))
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


def maintenance_service(opts):
    """The service of the sites in maintenance: one server, the responder on
    loopback, without a health check (it answers 503 by design, which a
    check would count as down)."""
    return {"loadBalancer": {"servers": [{"url": "http://%s" % opts["maintenance_listen"]}],
                             "passHostHeader": True}}


def readiness_urls(site, options=None):
    """Where Traefik reaches *site*'s readiness path: one URL per backend that
    runs it (``onebox_traefik_backends``), else one at the site's own server
    address; the port is the health port Traefik's check uses (the public
    port for ``overlap``, whose instances share it)."""
    opts = _options(options)
    addresses = [address for _host, address in site_backends(site, opts)]
    if not addresses:
        # Traefik dials the server's host (listen) and changes only the port;
        # a health_listen elsewhere is refused by traefik_errors.
        addresses = [site["listen_ip"]]
    return [readiness_url(site, address) for address in addresses]


def readiness_url(site, address):
    """*site*'s readiness URL at *address*, on the port Traefik's health check
    uses: the health port, or the public port for ``overlap`` (its instances
    share it and their health ports move)."""
    port = site["listen_port"] if site["strategy"] == "overlap" else site["health_port"]
    return "http://%s:%d%s" % (url_host(address), port, site["readiness_path"])


def maintenance_socket(options=None):
    """The socket unit of the maintenance responder: ``{unit, listen}``
    (``listen`` as ``ListenStream=`` takes it, see :func:`socket_listen`)."""
    opts = _options(options)
    return {"unit": MAINTENANCE_SOCKET, "listen": socket_listen(opts["maintenance_listen"])}


def live_routers(text):
    """``{router name: service}`` of the live dynamic file *text* (comment
    lines, ``---``, then one JSON document, as the role writes it); empty when
    there is no file or it cannot be read."""
    body = "\n".join(line for line in str(text or "").splitlines()
                     if not line.lstrip().startswith("#") and line.strip() != "---")
    try:
        doc = json.loads(body) if body.strip() else {}
    except ValueError:
        return {}
    routers = ((doc.get("http") or {}).get("routers") or {}) if isinstance(doc, dict) else {}
    return dict((name, router.get("service")) for name, router in routers.items() if isinstance(router, dict))


def maintenance_ends(live, sites, options=None):
    """The sites whose maintenance ends with this file: routed now to the
    maintenance responder by *live* (the live dynamic file's text, or its
    base64 as ``ansible.builtin.slurp`` gives it in ``content``), and to
    their own service by the file this run writes. ``[{site, urls}]``, with
    the readiness URLs (:func:`readiness_urls`) that must answer 200 before
    the file is written."""
    opts = _options(options)
    routed = live_routers(_live_text(live))
    out = []
    for site in sites or []:
        if not is_routed(site) or site.get("maintenance"):
            continue
        if routed.get(PREFIX + site["name"]) == MAINTENANCE_SERVICE:
            out.append({"site": site["name"], "urls": readiness_urls(site, opts)})
    return out


def _live_text(live):
    if isinstance(live, dict):
        return base64.b64decode(live.get("content") or "").decode("utf-8", "replace")
    return live


def maintenance_left_out(live_files, sites):
    """Errors for a run that writes no dynamic file on Traefik's hosts (the
    Traefik play left out by ``--limit`` or ``--tags``) but would change a
    site's maintenance mode there: one per site and host whose router in the
    live file (*live_files*: the ``results`` of a looped
    ``ansible.builtin.slurp``, each with the host as ``item``) points at the
    maintenance responder while the site's ``maintenance`` is false, or at
    its own service while it is true. A host without the file, or a site
    without a router in it, routes nothing to compare."""
    errors = []
    for result in live_files or []:
        if not isinstance(result, dict) or not result.get("content"):
            continue
        routed = live_routers(_live_text(result))
        where = result.get("item") or "this host"
        for site in sites or []:
            service = routed.get(PREFIX + site["name"]) if is_routed(site) else None
            if service is None or (service == MAINTENANCE_SERVICE) == bool(site.get("maintenance")):
                continue
            if site.get("maintenance"):
                change, now = "puts it in maintenance", "to its own service"
            else:
                change, now = "ends its maintenance", "to the maintenance page"
            errors.append(
                "site %s: field 'maintenance': this run %s, but writes no Traefik dynamic file on %s, where Traefik "
                "routes %s %s now: --limit or --tags left out the part of the run that switches it (the hosts of "
                "onebox_traefik_group, the tag onebox_traefik). Nothing was changed; run it with them." % (
                    site["name"], change, where, site["name"], now))
    return errors


def tag_runs(run_tags, skip_tags, tags=("onebox_traefik",)):
    """Whether a task tagged *tags* runs under ``--tags`` *run_tags* and
    ``--skip-tags`` *skip_tags* (``ansible_run_tags``, ``ansible_skip_tags``),
    by Ansible's rules for the special tags ``all``, ``tagged`` and
    ``always``. The playbooks tag every task that writes Traefik's dynamic
    file ``onebox_traefik``."""
    tags = set(tags)
    run_tags = set(run_tags or ["all"])
    skip_tags = set(skip_tags or [])
    runs = bool("always" in tags or ("all" in run_tags and "never" not in tags) or tags & run_tags
                or ("tagged" in run_tags and "never" not in tags))
    if runs and skip_tags:
        if "all" in skip_tags:
            runs = "always" in tags and "always" not in skip_tags
        elif tags & skip_tags or "tagged" in skip_tags:
            runs = False
    return runs


def retry_middleware(opts):
    retry = {"attempts": int(opts["retry_attempts"]), "initialInterval": str(opts["retry_initial_interval"])}
    version = parse_version(opts["version"])
    if version and version >= RETRY_STATUS_MIN_VERSION and opts["retry_status"]:
        retry["status"] = [str(code) for code in opts["retry_status"]]
        retry["retryNonIdempotentMethod"] = False
    return {"retry": retry}


def redirect_middleware(site, opts):
    """``(name, middleware)`` that redirects to HTTPS on the port of the site's
    first TLS entry point (no port in the URL for 443)."""
    port = None
    for ep in _tls_entrypoints(site, opts):
        match = ADDRESS_PORT_RE.search(str((opts["entrypoints"].get(ep) or {}).get("address", "")))
        if match:
            port = match.group(1)
            break
    scheme = {"scheme": "https", "permanent": True}
    if port and port != "443":
        scheme["port"] = port
        return "%s-%s" % (REDIRECT_MIDDLEWARE, port), {"redirectScheme": scheme}
    return REDIRECT_MIDDLEWARE, {"redirectScheme": scheme}


def traefik_dynamic(sites, options=None):
    """The dynamic configuration (a dict) for every routed site of ``sites``.

    ``sites`` are normalised sites (``onebox.deploy.site_plan``) that passed
    :func:`traefik_errors`.
    """
    opts = _options(options)
    routers = {}
    services = {}
    middlewares = {RETRY_MIDDLEWARE: retry_middleware(opts)}
    for site in sites:
        if not is_routed(site):
            continue
        router = router_for(site, opts)
        if site.get("maintenance"):
            # Every request gets the responder's 503 page: no retry (the
            # responder answers at once), the site's own chain stays.
            router["service"] = MAINTENANCE_SERVICE
            router["middlewares"] = [m for m in router["middlewares"] if m != RETRY_MIDDLEWARE]
            services[MAINTENANCE_SERVICE] = maintenance_service(opts)
        routers[PREFIX + site["name"]] = router
        # The site's own service stays (its health check with it): when
        # maintenance ends only the router changes.
        services[PREFIX + site["name"]] = service_for(site, opts)
        if (opts["site_options"].get(site["name"]) or {}).get("redirect_https"):
            name, middleware = redirect_middleware(site, opts)
            middlewares[name] = middleware
            redirect = {"rule": router["rule"], "entryPoints": list(opts["redirect_entrypoints"]),
                        "service": router["service"], "middlewares": [name]}
            if "priority" in router:
                redirect["priority"] = router["priority"]
            routers[PREFIX + site["name"] + REDIRECT_SUFFIX] = redirect
    http = {"middlewares": middlewares}
    # Traefik rejects an empty "routers: {}" ("cannot be a standalone element")
    # and would then keep the previous routes: leave empty sections out.
    if routers:
        http["routers"] = routers
        http["services"] = services
    return {"http": http}


def traefik_unit_directives(options=None):
    """The sandboxing directives of the installed ``traefik.service``.

    :data:`TRAEFIK_SANDBOX`, without any capability: systemd binds every entry
    point and Traefik inherits the sockets. Then ``service_directives`` applied
    by name (see ``_units.merge_directives``). Returns an ordered dict of
    directive to a string or a list of strings.
    """
    opts = _options(options)
    return merge_directives(list(TRAEFIK_SANDBOX), opts["service_directives"])


def socket_listen(address):
    """``ListenStream=`` of the socket that holds a Traefik entry point address:
    ``":443"`` -> ``"443"`` (every address, IPv4 and IPv6), ``"127.0.0.1:8080"``,
    ``"[::1]:8080"``. Raises ``ValueError`` saying why an address cannot be a
    systemd socket (a host name, a port outside 1-65535, UDP)."""
    match = SOCKET_ADDRESS_RE.match(str(address or ""))
    if not match:
        raise ValueError("must be :PORT, IPv4:PORT or [IPv6]:PORT (systemd binds an IP address, not a host name)")
    proto = (match.group("proto") or "tcp").lower()
    if proto != "tcp":
        raise ValueError("is %s: onebox.deploy holds TCP entry points only" % proto)
    port = int(match.group("port"))
    if not 1 <= port <= 65535:
        raise ValueError("port %d is outside 1-65535" % port)
    host = match.group("v4") if match.group("v4") is not None else match.group("v6")
    if host is None:
        return str(port)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError("%r is not an IP address" % host)
    if (ip.version == 4) != (match.group("v4") is not None):
        raise ValueError("an IPv6 address needs brackets, an IPv4 address none")
    return ("%s:%d" if ip.version == 4 else "[%s]:%d") % (ip.compressed, port)


def traefik_sockets(options=None):
    """The sockets systemd holds for Traefik, one per entry point and one for
    the API (``traefik``): ``[{entrypoint, unit, listen, public}]``, sorted by
    entry point. ``public`` is false for the API's, which the gate leaves open."""
    opts = _options(options)
    addresses = dict((name, conf.get("address")) for name, conf in (opts["entrypoints"] or {}).items()
                     if isinstance(conf, dict))
    addresses[API_ENTRYPOINT] = opts["api_listen"]
    return [{"entrypoint": name, "unit": SOCKET_UNIT % name, "listen": socket_listen(addresses[name]),
             "public": name != API_ENTRYPOINT} for name in sorted(addresses)]


def static_entrypoints(options=None):
    """``entryPoints`` of the static configuration: the user's and the API's,
    each with ``transport.lifeCycle``: ``graceTimeOut`` from ``grace_timeout``
    (the unit's ``TimeoutStopSec=`` covers it) and no accept grace (the gate
    keeps new connections out while Traefik stops)."""
    opts = _options(options)
    entrypoints = dict(opts["entrypoints"] or {})
    entrypoints[API_ENTRYPOINT] = {"address": opts["api_listen"]}
    out = {}
    for name in sorted(entrypoints):
        conf = dict(entrypoints[name])
        transport = dict(conf.get("transport") or {})
        transport["lifeCycle"] = {"graceTimeOut": "%ds" % int(opts["grace_timeout"]),
                                  "requestAcceptGraceTimeout": "0s"}
        conf["transport"] = transport
        out[name] = conf
    return out


def _tls_entrypoints(site, opts):
    """The entry points of *site*'s router when the router has TLS, else []."""
    site_opts = opts["site_options"].get(site["name"], {}) or {}
    if not (site_opts.get("tls", opts["tls"]) or site_opts.get("cert_resolver", opts["cert_resolver"])):
        return []
    return list(site_opts.get("entrypoints", opts["router_entrypoints"]))


def gate_config(sites, options=None):
    """What the gate (``roles/traefik/files/onebox-traefik-gate``) checks before
    it lets new connections in after Traefik started: the ACME storage files
    and, per TLS entry point, the host names whose stored certificate Traefik
    must serve (not its default one)."""
    opts = _options(options)
    hosts = {}
    for site in sites or []:
        if not is_routed(site) or site.get("rule"):
            continue
        for ep in _tls_entrypoints(site, opts):
            names = hosts.setdefault(ep, [])
            names.extend(d for d in site_domains(site) if d not in names)
    storages = []
    for conf in (opts["cert_resolvers"] or {}).values():
        acme = conf.get("acme") if isinstance(conf, dict) else None
        storage = acme.get("storage") if isinstance(acme, dict) else None
        if storage and storage not in storages:
            storages.append(storage)
    return {"tls_hosts": hosts, "acme_storage": storages}


def resolver_errors(resolvers, entrypoints):
    """Problems in ``certificatesResolvers`` (``onebox_traefik_cert_resolvers``), each naming its field."""
    if not isinstance(resolvers, dict):
        return ["onebox_traefik_cert_resolvers must be a mapping of resolver name to settings"]
    errors = []
    for name in sorted(resolvers, key=str):
        where = "onebox_traefik_cert_resolvers.%s" % name
        conf = resolvers[name]
        if not ENTRYPOINT_RE.match(str(name)):
            errors.append("onebox_traefik_cert_resolvers: invalid resolver name %r" % (name,))
            continue
        acme = conf.get("acme") if isinstance(conf, dict) else None
        if not isinstance(acme, dict):
            errors.append("%s.acme: is required: onebox.deploy configures ACME resolvers" % where)
            continue
        email = acme.get("email")
        if not email:
            errors.append("%s.acme.email: is required: the contact address of the ACME account (the CA writes "
                          "there about the account and its certificates)" % where)
        elif not EMAIL_RE.match(str(email)):
            errors.append("%s.acme.email: %r is not an e-mail address" % (where, email))
        storage = str(acme.get("storage") or "")
        if not storage:
            errors.append("%s.acme.storage: is required: a file in %s (Traefik's state directory), e.g. "
                          "%s/acme.json" % (where, TRAEFIK_STATE_DIR, TRAEFIK_STATE_DIR))
        elif not storage.startswith(TRAEFIK_STATE_DIR + "/") or "/." in storage or storage.endswith("/"):
            errors.append("%s.acme.storage: %r must be a file in %s, the one directory Traefik may write "
                          "(mode 0700, owned by Traefik's user)" % (where, storage, TRAEFIK_STATE_DIR))
        challenges = [c for c in CHALLENGES if c in acme]
        if len(challenges) != 1:
            errors.append("%s.acme: needs exactly one of %s, got %s" % (
                where, ", ".join(CHALLENGES), ", ".join(challenges) or "none"))
        http = acme.get("httpChallenge")
        if "httpChallenge" in acme and (not isinstance(http, dict) or http.get("entryPoint") not in entrypoints):
            errors.append("%s.acme.httpChallenge.entryPoint: must name an entry point (known: %s), got %r" % (
                where, ", ".join(sorted(entrypoints)), http.get("entryPoint") if isinstance(http, dict) else http))
    return errors


def routers_match(api_routers, dynamic):
    """True when Traefik's API (``/api/http/routers``) serves exactly the
    onebox routers of *dynamic* from the file provider, by name, rule and
    service (a site entering or leaving maintenance changes only its
    router's service)."""
    def service(router):
        return str(router.get("service") or "").partition("@")[0]

    expected = set("%s@file %s -> %s" % (name, router.get("rule"), service(router))
                   for name, router in ((dynamic or {}).get("http", {}).get("routers") or {}).items())
    served = set("%s %s -> %s" % (router.get("name"), router.get("rule"), service(router))
                 for router in api_routers or []
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


def rejoin_urls(sites, options, host):
    """Readiness URLs of the sites *host* serves with at least one other host,
    at the address and health port Traefik dials: ``http://ADDRESS:PORT/readyz``.
    The rotation waits for each before it puts *host* back (Traefik counts a
    new server healthy before its first check)."""
    opts = _options(options)
    urls = []
    for site in sites or []:
        if not is_routed(site) or not uses_readiness(site, opts):
            continue
        for name, address in site_backends(site, opts):
            if name == host:
                urls.append(readiness_url(site, address))
    return urls


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


def unit_changes(installed, sockets):
    """What the installed Traefik units mean for this run.

    *installed* are ``ansible.builtin.slurp`` results (``item`` the unit name,
    ``content`` base64; none for a unit that does not exist) of
    ``traefik.service`` and of each socket of *sockets* (:func:`traefik_sockets`).
    Returns ``{foreign, rebind, legacy}``: units at those paths that
    onebox.deploy did not write (never to be replaced), socket units whose
    address changes (the one change that rebinds a socket), and whether the
    installed ``traefik.service`` binds its ports itself (written before the
    sockets, so Traefik holds the ports the sockets are to bind)."""
    wanted = dict((sock["unit"], sock["listen"]) for sock in sockets or [])
    out = {"foreign": [], "rebind": [], "legacy": False}
    for result in installed or []:
        unit = result.get("item")
        if not result.get("content"):
            continue
        text = base64.b64decode(result["content"]).decode("utf-8", "replace")
        if MARKER not in text:
            out["foreign"].append(unit)
        elif unit == "traefik.service":
            out["legacy"] = not re.search(r"^Sockets=", text, re.M)
        elif unit in wanted:
            match = re.search(r"^ListenStream=(.*)$", text, re.M)
            if match and match.group(1).strip() != wanted[unit]:
                out["rebind"].append(unit)
    return out
