# -*- coding: utf-8 -*-
"""The Traefik filters (plugins/filter/traefik.py). The functions behind them
are tested with plugins/module_utils/traefik.py; here: what the filter file
exports and traefik_routers_match, which the role polls Traefik's API with."""

from __future__ import absolute_import, division, print_function

from ansible_collections.onebox.deploy.plugins.filter import traefik as F
from ansible_collections.onebox.deploy.plugins.plugin_utils import _traefik as T


def test_filter_module_exports():
    assert F.FilterModule().filters() == {
        "traefik_errors": T.traefik_errors,
        "traefik_dynamic": T.traefik_dynamic,
        "traefik_unit_directives": T.traefik_unit_directives,
        "traefik_routers_match": T.routers_match,
        "traefik_servers_match": T.servers_match,
        "traefik_backends": T.backends,
        "traefik_readiness_services": T.readiness_services,
        "traefik_sockets": T.traefik_sockets,
        "traefik_static_entrypoints": T.static_entrypoints,
        "traefik_gate": T.gate_config,
        "traefik_unit_changes": T.unit_changes,
        "traefik_rejoin_urls": T.rejoin_urls,
        "traefik_maintenance_ends": T.maintenance_ends,
        "traefik_maintenance_socket": T.maintenance_socket,
        "traefik_maintenance_left_out": T.maintenance_left_out,
        "traefik_tag_runs": T.tag_runs,
    }


DYNAMIC = {"http": {"routers": {"onebox-blog": {"rule": "Host(`blog.x.org`)", "service": "onebox-blog"},
                                "onebox-shop": {"rule": "Host(`shop.x.org`)", "service": "onebox-shop"}},
                    "middlewares": {"onebox-retry": {}}}}


def api(*routers):
    """API routers as Traefik lists them: the service of a file router by its name in the file."""
    return [dict(name=name, rule=rule, status="enabled", service=name.split("@")[0]) for name, rule in routers]


def test_routers_match_when_traefik_serves_exactly_the_file():
    served = api(("onebox-blog@file", "Host(`blog.x.org`)"), ("onebox-shop@file", "Host(`shop.x.org`)"),
                 # routers of other providers and files are not ours and do not count
                 ("dashboard@internal", "PathPrefix(`/api`)"), ("other@file", "Host(`x.org`)"),
                 ("onebox-blog@docker", "Host(`elsewhere`)"))
    assert F.FilterModule().filters()["traefik_routers_match"](served, DYNAMIC) is True


def test_routers_do_not_match_while_traefik_still_serves_the_old_file():
    assert T.routers_match(api(("onebox-blog@file", "Host(`blog.x.org`)")), DYNAMIC) is False       # missing
    assert T.routers_match(api(("onebox-blog@file", "Host(`old.x.org`)"),
                               ("onebox-shop@file", "Host(`shop.x.org`)")), DYNAMIC) is False        # old rule
    assert T.routers_match(api(("onebox-blog@file", "Host(`blog.x.org`)"), ("onebox-shop@file", "Host(`shop.x.org`)"),
                               ("onebox-gone@file", "Host(`gone.x.org`)")), DYNAMIC) is False        # removed site


def test_routers_do_not_match_while_traefik_still_routes_to_the_old_service():
    """A site entering or leaving maintenance changes only its router's service."""
    leaving = api(("onebox-blog@file", "Host(`blog.x.org`)"), ("onebox-shop@file", "Host(`shop.x.org`)"))
    leaving[0]["service"] = "onebox-maintenance"
    assert T.routers_match(leaving, DYNAMIC) is False
    leaving[0]["service"] = "onebox-blog@file"  # qualified or not, the same service
    assert T.routers_match(leaving, DYNAMIC) is True


def test_no_routed_site_matches_an_api_without_onebox_routers():
    empty = {"http": {"middlewares": {"onebox-retry": {}}}}
    assert T.routers_match([], empty) is True and T.routers_match(None, None) is True
    assert T.routers_match(api(("onebox-blog@file", "Host(`blog.x.org`)")), empty) is False
