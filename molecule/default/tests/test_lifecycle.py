"""Real hosts and the site lifecycle (default scenario: over SSH as a sudo user, become: true).

Inputs users bring, each rejected before the host changes (a snapshot of the
host before and after) with the site and the field named, or accepted and
correct; a site removed with state: absent; 50 sites at once; the tags.
Runs after test_default.py, on the converged host.
"""

import io
import json
import os
import tarfile
import tempfile

import re

from conftest import CONTAINER, PROJECT, assert_each_alias_failed, public_url

SECRET = "onebox-lifecycle-secret-77a1"
APP = os.path.join(PROJECT, "files", "reference-app", "bin", "onebox-app")


def _extra(sites, **fields):
    """A new site next to the scenario's, on free ports, with the given fields."""
    site = dict(sites[0], name="extra", listen="127.0.0.1:8069", health_listen="127.0.0.1:19069")
    site.update(fields)
    return sites + [site]


def _tarball(members):
    """A .tar.gz artifact: [(name, mode, data or None for a directory)]."""
    handle, path = tempfile.mkstemp(suffix=".tar.gz", prefix="onebox-artifact-")
    os.close(handle)
    with tarfile.open(path, "w:gz") as tar:
        for name, mode, data in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


with open(APP, "rb") as _handle:
    APP_BYTES = _handle.read()
EMPTY = _tarball([])
TOP_DIR = _tarball([("app-1.0", 0o755, None), ("app-1.0/bin", 0o755, None),
                    ("app-1.0/bin/onebox-app", 0o755, APP_BYTES)])
SETUID = _tarball([("bin", 0o755, None), ("bin/onebox-app", 0o755, APP_BYTES),
                   ("bin/helper", 0o4755, b"#!/bin/sh\nexit 0\n"), ("data", 0o2777, None)])

# (case, mutate onebox_sites, extra role variables, texts the failure must contain)
BAD_INPUTS = [
    ("site named after a system account", lambda s: _extra(s, name="news"), {},
     ["site news: field 'user': the account news already exists and was not created by onebox.deploy",
      "never taken over"]),
    ("user of the system", lambda s: _extra(s, user="www-data"), {},
     ["site extra: field 'user': the account www-data already exists"]),
    ("group of the system", lambda s: _extra(s, group="daemon"), {},
     ["site extra: field 'group': the group daemon already exists"]),
    ("host name in listen", lambda s: _extra(s, listen="localhost:8101"), {},
     ["'extra'", "field 'listen'", "host 'localhost' is not an IP address"]),
    ("empty tarball", lambda s: _extra(s, artifact=EMPTY), {},
     ["'extra'", "field 'artifact'", "is an empty archive"]),
    ("env list", lambda s: _extra(s, env={"HOSTS": ["a.example", "b.example"]}), {},
     ["'extra'", "field 'env'", "value of HOSTS must be a string, a number or a boolean, got list"]),
    ("env mapping", lambda s: _extra(s, env={"LIMITS": {"a": 1}}), {},
     ["'extra'", "field 'env'", "value of LIMITS must be a string, a number or a boolean, got dict"]),
    ("secret left empty", lambda s: _extra(s, secret_env={"TOKEN": None}), {},
     ["'extra'", "field 'secret_env'", "value of TOKEN must be a string, a number or a boolean, got null"]),
    ("secret_env key also in env", lambda s: _extra(s, env={"TOKEN": "public"}, secret_env={"TOKEN": SECRET}), {},
     ["'extra'", "field 'secret_env'", "TOKEN is also set in env"]),
    ("onebox_root /", lambda s: s, {"onebox_root": "/"}, ["onebox_root: / is a system directory"]),
    ("onebox_root /etc", lambda s: s, {"onebox_root": "/etc"},
     ["onebox_root: /etc is inside the system directory /etc"]),
    ("typo in a directive", lambda s: _extra(s, service_directives={"ProtectSytem": "strict"}), {},
     ["site extra: field 'service_directives': systemd would ignore ProtectSytem"]),
    ("purge without absent", lambda s: _extra(s, purge=True), {}, ["'extra'", "field 'purge'"]),
]


def test_real_inputs_fail_before_the_host_changes(host, sites, playbook, snapshot):
    """13 inputs users bring, refused in one run: each case is a host of its own in the inventory
    (another name for this container, with the case's variables); each fails naming the site (or
    variable) and the field, without the secret; the host is unchanged. The cases the host answers
    (its accounts, systemd's verdict on a directive) are read under the deploy lock: each alias
    has a lock file of its own, as each host of an inventory has (the aliases run each task
    together, so one lock would hold all the others at it)."""
    aliases = dict(("real-%02d" % n, dict({"onebox_sites": mutate(sites),
                                           "onebox_lock_file": "/run/lock/onebox-deploy-real-%02d.lock" % n},
                                          **extra))
                   for n, (_case, mutate, extra, _expected) in enumerate(BAD_INPUTS))
    before = snapshot(host)
    rc, out = playbook({}, args=["-e", "onebox_serial=100%"], aliases=aliases)
    after = snapshot(host)
    assert rc != 0, out[-2000:]
    assert_each_alias_failed(out, BAD_INPUTS, "real")
    assert SECRET not in out
    assert before == after


def _tar_site(sites, name, artifact, port, **fields):
    site = dict(sites[0], name=name, listen="127.0.0.1:%d" % port, health_listen="127.0.0.1:%d" % (port + 11000),
                version="1.0.0", artifact=artifact, command="bin/onebox-app --warmup 0.1")
    site.update(fields)
    return site


def test_tarball_with_one_top_directory_is_unpacked_without_it(host, sites, playbook):
    rc, out = playbook({"onebox_sites": sites + [_tar_site(sites, "tarred", TOP_DIR, 8071)]})
    assert rc == 0, out[-3000:]
    assert host.file("/srv/onebox/tarred/releases/1.0.0/bin/onebox-app").is_file
    assert not host.file("/srv/onebox/tarred/releases/1.0.0/app-1.0").exists
    body = json.loads(host.check_output("curl -fsS --max-time 5 http://127.0.0.1:8071/"))
    assert body["site"] == "tarred" and body["version"] == "1.0.0"


def test_untrusted_artifact_loses_setid_bits_and_its_owners(host, sites, playbook):
    rc, out = playbook({"onebox_sites": sites + [_tar_site(sites, "untrusted", SETUID, 8072,
                                                           env={"DEBUG": True, "WORKERS": 3})]})
    assert rc == 0, out[-3000:]
    assert "dropped set-id, sticky or group/other write bits of" in out
    release = "/srv/onebox/untrusted/releases/1.0.0"
    listing = host.check_output("find %s -printf '%%P %%m %%u %%g\\n' | sort" % release)
    modes = dict((line.split()[0], line.split()[1:]) for line in listing.splitlines() if line.split())
    assert modes["bin/helper"] == ["755", "root", "root"], listing
    assert modes["data"] == ["755", "root", "root"], listing
    assert not host.check_output("find %s -perm /7000 -o ! -user root" % release)
    env = host.file("/etc/onebox/untrusted.env").content_string
    assert 'DEBUG="true"\n' in env and 'WORKERS="3"\n' in env


def test_a_failed_first_install_leaves_nothing_half_alive(host, sites, playbook):
    """A new site whose first release crashes: its units are stopped, disabled and removed, the
    message says so with the app's journal, and the next run with fixed input installs it."""
    fresh = dict(sites[0], name="fresh", listen="127.0.0.1:8073", health_listen="127.0.0.1:19073",
                 version="1.0.0", command="bin/onebox-app --warmup 0.1 --crash-on-start", ready_timeout=5)
    rc, out = playbook({"onebox_sites": sites + [fresh]})
    assert rc != 0, out[-3000:]
    assert ("fresh.service had no previous release: stopped and disabled fresh.socket and fresh.service, removed "
            "/etc/systemd/system/fresh.socket, /etc/systemd/system/fresh.service, /etc/onebox/fresh.env and "
            "/srv/onebox/fresh/current") in out, out[-3000:]
    assert "release /srv/onebox/fresh/releases/1.0.0 is kept; fix the input and run the deploy again" in out
    assert "crash-on-start requested" in out          # the app's own last journal lines
    for unit in ("fresh.socket", "fresh.service"):
        assert not host.file("/etc/systemd/system/" + unit).exists
        assert host.run("systemctl is-active %s" % unit).stdout.strip() in ("inactive", "unknown")
        assert host.run("systemctl is-enabled %s" % unit).stdout.strip() not in ("enabled",)
    assert host.run("curl -sS --max-time 3 -o /dev/null http://127.0.0.1:8073/").rc != 0   # nothing half-alive
    for site in sites:
        assert host.run("curl -fsS --max-time 5 %s" % public_url(site)).rc == 0
    fixed = dict(fresh, command="bin/onebox-app --warmup 0.1")
    rc, out = playbook({"onebox_sites": sites + [fixed]})
    assert rc == 0, out[-3000:]
    assert json.loads(host.check_output("curl -fsS --max-time 5 http://127.0.0.1:8073/"))["site"] == "fresh"
    rc, out = playbook({"onebox_sites": sites + [dict(name="fresh", state="absent", purge=True)]})
    assert rc == 0, out[-3000:]


def test_removing_a_site_stops_it_and_keeps_its_releases(host, sites, playbook):
    """state: absent: units stopped and gone, environment file gone, account of ours deleted, releases kept."""
    assert host.service("untrusted.socket").is_running
    gone = [dict(name="untrusted", state="absent"), dict(name="tarred", state="absent", purge=True)]
    rc, out = playbook({"onebox_sites": sites + gone})
    assert rc == 0, out[-3000:]
    for name in ("untrusted", "tarred"):
        for unit in ("%s.socket" % name, "%s.service" % name):
            assert not host.file("/etc/systemd/system/" + unit).exists
            assert host.run("systemctl is-active %s" % unit).stdout.strip() in ("inactive", "unknown")
        assert not host.file("/etc/onebox/%s.env" % name).exists
        assert not host.user(name).exists
        assert host.run("curl -sS --max-time 3 -o /dev/null %s" % public_url(
            {"listen": "127.0.0.1:%d" % (8072 if name == "untrusted" else 8071)})).rc != 0
    assert host.file("/srv/onebox/untrusted/releases/1.0.0/bin/onebox-app").exists   # kept
    assert not host.file("/srv/onebox/tarred").exists                               # purged
    records = [json.loads(line) for line in host.file("/var/log/onebox/deploy.jsonl").content_string.splitlines()]
    removed = [r["site"] for r in records if r.get("action") == "remove"]
    assert sorted(removed[-2:]) == ["tarred", "untrusted"]
    # The other sites kept serving; removing again changes nothing.
    for site in sites:
        assert host.run("curl -fsS --max-time 5 %s" % public_url(site)).rc == 0
    rc, out = playbook({"onebox_sites": sites + gone})
    assert rc == 0 and re.search(r"%s\s*:\s*ok=\d+\s+changed=0" % CONTAINER, out), out[-2000:]


def test_a_site_missing_from_the_list_is_never_touched(host, sites, playbook):
    wiki = next(s for s in sites if s["name"] == "wiki")
    pid = host.check_output("systemctl show -p MainPID --value wiki.service")
    units = host.check_output("md5sum /etc/systemd/system/wiki.* /etc/onebox/wiki.env")
    rc, out = playbook({"onebox_sites": [s for s in sites if s["name"] != "wiki"]})
    assert rc == 0, out[-3000:]
    assert host.check_output("systemctl show -p MainPID --value wiki.service") == pid
    assert host.check_output("md5sum /etc/systemd/system/wiki.* /etc/onebox/wiki.env") == units
    assert host.run("curl -fsS --max-time 5 %s" % public_url(wiki)).rc == 0


def test_fifty_sites_at_once_and_their_removal(host, sites, playbook):
    """50 more sites in one run: every one serves its release; then all 50 are removed in one run."""
    many = [dict(name="bulk%02d" % i, listen="127.0.0.1:%d" % (8200 + i), version="1.0.0",
                 artifact="files/reference-app", command="bin/onebox-app --warmup 0.05") for i in range(50)]
    rc, out = playbook({"onebox_sites": sites + many})
    assert rc == 0, out[-3000:]
    answers = host.check_output("for p in $(seq 8200 8249); do curl -fsS --max-time 5 http://127.0.0.1:$p/; "
                                "echo; done")
    served = [json.loads(line) for line in answers.splitlines() if line.strip()]
    assert sorted(b["site"] for b in served) == sorted(s["name"] for s in many)
    rc, out = playbook({"onebox_sites": sites + [dict(name=s["name"], state="absent") for s in many]})
    assert rc == 0, out[-3000:]
    assert host.check_output("ls /etc/systemd/system | grep -c '^bulk' || true") == "0"
    assert host.check_output("getent passwd | grep -c '^bulk' || true") == "0"


def _pid(host, name):
    return host.check_output("systemctl show -p MainPID --value %s.service" % name)


def test_tags_validate_units_and_roll(host, sites, playbook, snapshot):
    """--tags onebox_validate changes nothing; --skip-tags onebox_roll installs without restarting;
    --tags onebox_roll then restarts; --tags onebox_traefik leaves the sites alone."""
    blog = next(s for s in sites if s["name"] == "blog")
    served = json.loads(host.check_output("curl -fsS --max-time 5 %s" % public_url(blog)))["version"]
    new = [dict(s, version="7.0.0") if s["name"] == "blog" else s for s in sites]
    before = snapshot(host)
    rc, out = playbook({"onebox_sites": new}, args=["--tags", "onebox_validate"])
    assert rc == 0, out[-3000:]
    assert "Read the host and check it for conflicts" in out and "Unpack the new releases" not in out
    assert snapshot(host) == before

    pid = _pid(host, "blog")
    rc, out = playbook({"onebox_sites": new}, args=["--skip-tags", "onebox_roll"])
    assert rc == 0, out[-3000:]
    assert host.file("/srv/onebox/blog/releases/7.0.0").is_directory
    assert "ONEBOX_VERSION=7.0.0" in host.file("/etc/onebox/blog.env").content_string
    assert _pid(host, "blog") == pid
    assert json.loads(host.check_output("curl -fsS --max-time 5 %s" % public_url(blog)))["version"] == served

    rc, out = playbook({"onebox_sites": new}, args=["--tags", "onebox_roll"])
    assert rc == 0, out[-3000:]
    assert _pid(host, "blog") != pid
    assert json.loads(host.check_output("curl -fsS --max-time 5 %s" % public_url(blog)))["version"] == "7.0.0"

    rc, out = playbook({"onebox_sites": sites}, args=["--tags", "onebox_traefik"])
    assert rc == 0, out[-3000:]
    assert "Unpack the new releases" not in out and "Restart changed sites" not in out
    # Back to the scenario's own versions for whatever runs next.
    rc, out = playbook({"onebox_sites": sites})
    assert rc == 0, out[-3000:]
