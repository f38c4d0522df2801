"""docs/quickstart.md, carried out (scenario quickstart).

A new infra repo in a temporary directory on the controller; then, in the
page's order, every ``file`` block written to its path and every ``run``
block run with bash in the repo's root, against this scenario's fresh host
over SSH (tests/harness/quickstart_page.py reads the page and its markers).
The commands run as a new user would run them: with a HOME of their own and
no ANSIBLE_* or MOLECULE_* variable of this test run, so the collection they
use is the copy the page installs into the repo (the Makefile's
ANSIBLE_COLLECTIONS_PATH names this checkout).

What the test changes, all of it in SUBSTITUTIONS and connection_file():

* the path of the collection checkout the page builds from,
  ``~/src/onebox-deploy``, becomes this checkout;
* the page's host ``web1.example.org`` stays as it is in its inventory; the
  test writes ``inventory/host_vars/web1.example.org.yml`` (the file the page
  shows as an example and does not run) with the container's address, the
  SSH user ``deploy`` (passwordless sudo) and the tests' key.

Each run block must exit 0; after a block named in its marker
(``<!-- quickstart: run STEP -->``) the checks of CHECKS[STEP] look at the
output and at the host itself (through podman exec, not through the page's
commands).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from conftest import CONTAINER, PROJECT, connection_vars, host_snapshot, print_table

sys.path.insert(0, os.path.join(PROJECT, "tests", "harness"))
import quickstart_page  # noqa: E402  pylint: disable=wrong-import-position

# The page's text -> what this test uses instead, in every block.
SUBSTITUTIONS = {"~/src/onebox-deploy": PROJECT}
HOST = "web1.example.org"
BLOCKS = quickstart_page.blocks()
VERSION = yaml.safe_load(open(os.path.join(PROJECT, "galaxy.yml")))["version"]
STEP_TIMEOUT = 900

# Shared by the steps, in order.
STATE = {"failed": None, "times": [], "pids": {}}


def connection_file():
    """inventory/host_vars/web1.example.org.yml: how to reach the scenario's container."""
    conn = connection_vars()
    info = json.loads(subprocess.check_output(["podman", "inspect", CONTAINER]))[0]
    address = info["NetworkSettings"]["Networks"][CONTAINER]["IPAddress"]
    assert re.match(r"^\d+\.\d+\.\d+\.\d+$", address), address
    return {
        "ansible_host": address,
        "ansible_user": conn["ansible_user"],
        "ansible_ssh_private_key_file": conn["ansible_ssh_private_key_file"],
        "ansible_ssh_common_args": conn["ansible_ssh_common_args"],
    }


def substitute(text):
    for old, new in SUBSTITUTIONS.items():
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def repo():
    """The infra repo (empty but for the connection file) and the environment its commands run in;
    removed after a run that passed, kept for a look after one that failed."""
    root = Path(tempfile.mkdtemp(prefix="onebox-quickstart-"))
    infra, home = root / "infra", root / "home"
    infra.mkdir(mode=0o755)
    home.mkdir(mode=0o700)
    host_vars = infra / "inventory" / "host_vars" / (HOST + ".yml")
    host_vars.parent.mkdir(parents=True)
    host_vars.write_text("---\n" + yaml.safe_dump(connection_file(), default_flow_style=False))
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_")))
    env.update(HOME=str(home), PWD=str(infra))
    print("\ninfra repo: %s\nHOME: %s\n%s: %s" % (infra, home, host_vars.relative_to(infra),
                                                   host_vars.read_text()))
    yield infra, env
    if STATE["failed"] is None and len(STATE["times"]) == len([b for b in BLOCKS if b.kind == "run"]):
        shutil.rmtree(str(root))
    else:
        print("\nkept the infra repo of this run: %s" % infra)
    if STATE["times"]:
        print_table("docs/quickstart.md, step by step (%.0f s in all)" % sum(t["s"] for t in STATE["times"]),
                    STATE["times"], ["line", "step", "rc", "s"])


def run(infra, env, command):
    began = time.monotonic()
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=str(infra), env=env,
                          capture_output=True, text=True, timeout=STEP_TIMEOUT, check=False)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - began


def served(host, port):
    """What the host's site on 127.0.0.1:PORT answers: {"site": ..., "version": ..., "pid": ...}."""
    return json.loads(host.check_output("curl -sS --max-time 10 http://127.0.0.1:%d/" % port))


def main_pid(host, site):
    return host.check_output("systemctl show -p MainPID --value %s.service" % site)


def recap_changed(output):
    match = re.search(r"^%s\s*:\s*ok=\d+\s+changed=(\d+)" % re.escape(HOST), output, re.M)
    assert match, "no play recap for %s" % HOST
    return int(match.group(1))


def page_secret():
    """The secret's value as the page writes it into the vault file, before it is encrypted."""
    block = next(b for b in BLOCKS if b.kind == "file" and b.arg.endswith("vault.yml"))
    return yaml.safe_load(block.body)["vault_hello_api_token"]


# --- the checks after named steps: (host, infra, env, output, before) -> None ---------------------

def check_install(host, infra, env, output, before):
    tarball = infra / "vendor" / ("onebox-deploy-%s.tar.gz" % VERSION)
    assert tarball.is_file(), output
    assert "ANSIBLE_COLLECTIONS_PATH" not in env
    rc, listed, _ = run(infra, env, "ansible-galaxy collection list onebox.deploy --format json")
    assert rc == 0, listed
    found = json.JSONDecoder().raw_decode(listed[listed.index("{"):])[0]  # stderr follows: warnings
    # The only onebox.deploy the page's commands see is the copy in the repo.
    assert found == {str(infra / "collections" / "ansible_collections"): {"onebox.deploy": {"version": VERSION}}}, found
    assert (infra / "collections" / "ansible_collections" / "onebox" / "deploy" / "MANIFEST.json").is_file()


def check_vault(host, infra, env, output, before):
    text = (infra / "inventory" / "group_vars" / "onebox" / "vault.yml").read_text()
    assert text.startswith("$ANSIBLE_VAULT;"), text
    assert page_secret() not in text


def check_check(host, infra, env, output, before):
    assert before["snapshot"] == host_snapshot(host), "check mode changed the host"
    assert "+++ after: /etc/systemd/system/hello.socket" in output
    assert "+++ after: /etc/onebox/hello.env" in output
    assert 'API_TOKEN="********"' in output
    assert page_secret() not in output
    assert recap_changed(output) > 0
    assert "web1.example.org: hello (nothing) (check mode: would roll to 1.0.0)" in output
    assert not host.file("/srv/onebox/hello").exists


def check_deploy_1_0_0(host, infra, env, output, before):
    assert served(host, 8001)["version"] == "1.0.0"
    assert page_secret() not in output
    env_file = host.check_output("cat /etc/onebox/hello.env")
    assert 'API_TOKEN="%s"' % page_secret() in env_file.splitlines()
    assert host.file("/etc/onebox/hello.env").mode == 0o600
    assert re.search(r"probe: [1-9]\d* requests sent, 0 failed", output), output
    # the roles that ran are the copy the page installed into the repo, the
    # only onebox.deploy its commands find (check_install); the roles' task
    # files are imported statically, so the output names none of them
    assert "TASK [onebox.deploy.site : " in output
    assert PROJECT + "/roles" not in output


def check_serving_1_0_0(host, infra, env, output, before):
    assert '"version":"1.0.0"' in output, output
    assert "\nactive\nactive\n" in output, output
    assert "\n/srv/onebox/hello/releases/1.0.0\n" in output, output


def check_deploy_1_0_1(host, infra, env, output, before):
    answer = served(host, 8001)
    assert answer["version"] == "1.0.1"
    assert '"version":"1.0.1"' in output
    assert host.file("/srv/onebox/hello/current").linked_to == "/srv/onebox/hello/releases/1.0.1"
    assert host.file("/srv/onebox/hello/releases/1.0.1/CHANGES").content_string == "1.0.1: the next release\n"
    assert answer["pid"] != before["served"]["pid"]


def check_history(host, infra, env, output, before):
    assert re.search(r"deploy hello \(first deploy\) -> 1\.0\.0: success", output), output
    assert re.search(r"deploy hello 1\.0\.0 -> 1\.0\.1: success", output), output
    assert "rollback hello" not in output, output


def check_rollback(host, infra, env, output, before):
    assert served(host, 8001)["version"] == "1.0.0"
    assert host.file("/srv/onebox/hello/current").linked_to == "/srv/onebox/hello/releases/1.0.0"
    assert '"version":"1.0.0"' in output
    # the history run of the block: the rollback is its newest record
    lines = [line for line in output.splitlines() if re.search(r" (deploy|rollback) hello ", line)]
    assert lines and re.search(r"rollback hello 1\.0\.1 -> 1\.0\.0: success", lines[-1]), output


def check_deploy_notes(host, infra, env, output, before):
    assert served(host, 8002) == dict(served(host, 8002), site="notes", version="0.1.0")
    assert '"version":"0.1.0"' in output
    # hello already served what the inventory says again: not restarted
    assert served(host, 8001)["version"] == "1.0.0"
    assert main_pid(host, "hello") == before["pids"]["hello"]


def check_converged(host, infra, env, output, before):
    for site in ("hello", "notes"):
        assert main_pid(host, site) == before["pids"][site], site
    assert recap_changed(output) == 0
    assert "web1.example.org: hello 1.0.0, notes 0.1.0" in output


CHECKS = {
    "install": check_install,
    "vault": check_vault,
    "check": check_check,
    "deploy-1.0.0": check_deploy_1_0_0,
    "serving-1.0.0": check_serving_1_0_0,
    "deploy-1.0.1": check_deploy_1_0_1,
    "history": check_history,
    "rollback": check_rollback,
    "deploy-notes": check_deploy_notes,
    "converged": check_converged,
}


def before_step(host):
    state = {"snapshot": host_snapshot(host), "pids": {}}
    for site in ("hello", "notes"):
        if host.service(site).is_running:
            state["pids"][site] = main_pid(host, site)
    state["served"] = served(host, 8001) if "hello" in state["pids"] else None
    return state


def test_every_named_step_has_its_checks():
    assert sorted(b.arg for b in BLOCKS if b.kind == "run" and b.arg) == sorted(CHECKS)


@pytest.mark.parametrize("block", BLOCKS, ids=["line%d-%s" % (b.line, b.kind) for b in BLOCKS])
def test_quickstart_block(block, repo, host):
    infra, env = repo
    if STATE["failed"]:
        pytest.skip("an earlier block failed: line %d" % STATE["failed"])
    STATE["failed"] = block.line
    if block.kind == "skip":
        print("\n--- line %d: not run (%s)" % (block.line, block.arg))
    elif block.kind == "file":
        path = infra / block.arg
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(substitute(block.body))
        print("\n--- line %d: wrote %s" % (block.line, block.arg))
    else:
        before = before_step(host)
        command = substitute(block.body)
        print("\n--- line %d: $ %s" % (block.line, command.strip().replace("\n", "\n    $ ")))
        rc, output, took = run(infra, env, command)
        print(output)
        STATE["times"].append(dict(line=block.line, step=block.arg or "", rc=rc, s=round(took, 1)))
        assert rc == 0, "line %d exited %d" % (block.line, rc)
        if block.arg:
            CHECKS[block.arg](host, infra, env, output, before)
    STATE["failed"] = None
