#!/usr/bin/env python3
"""make bench-scale: what a run costs as the number of sites grows.

For 1, 4 and 12 sites (Debian's gunicorn, 2 sync workers, 0.8 s warm-up
each), on a fresh systemd container per combination, times three runs of the
collection's own playbooks:

* first converge   site.yml on a host that has nothing;
* no-op            site.yml again, nothing changed;
* deploy all       deploy.yml with a new version of every site.

Each run is timed as a whole process (wall time) and its tasks are counted
(the TASK banners of the output). Both designs run side by side: ``new`` is
this checkout, ``old`` the collection as it was before the one-pass redesign
(git commit BENCH_OLD_REV, exported to .cache/bench-old). Both connections:
``ssh`` (a sudo user, become, pipelining, on a podman network this script
creates: how users connect) and ``podman`` (podman exec as root).

Prints one table, writes docs/bench/scale-<date>.md and .png and the raw JSON.
Asserts nothing: it measures (the targets are checked in the report).
"""

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HARNESS = os.path.join(TOP, "tests", "harness")
IMAGE = os.environ.get("ONEBOX_TEST_IMAGE", "localhost/onebox-systemd:bookworm")
NAME = "onebox-scale"
NETWORK = "onebox-scale"
WARMUP = 0.8
PHASES = ("first converge", "no-op", "deploy all")


def say(msg):
    print("bench-scale: %s" % msg, file=sys.stderr, flush=True)


def run(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


def container_up():
    subprocess.run(["podman", "rm", "-f", NAME], capture_output=True, check=False)
    if subprocess.run(["podman", "network", "exists", NETWORK], check=False).returncode != 0:
        run(["podman", "network", "create", NETWORK])
    run(["podman", "run", "-d", "--name", NAME, "--hostname", NAME, "--network", NETWORK, "--systemd=always",
         "--ulimit", "nofile=10000:10000", "--ulimit", "nproc=10000:10000", IMAGE, "/usr/local/sbin/onebox-init"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = subprocess.run(["podman", "exec", NAME, "systemctl", "is-system-running"],
                               capture_output=True, text=True, check=False).stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(0.2)
    raise SystemExit("container %s did not boot" % NAME)


def container_ip():
    data = json.loads(run(["podman", "inspect", NAME]).stdout)
    return data[0]["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]


def sites(count, version):
    out = []
    for i in range(1, count + 1):
        out.append({
            "name": "s%02d" % i, "listen": "127.0.0.1:%d" % (8100 + i), "health_listen": "127.0.0.1:%d" % (19100 + i),
            "version": version, "artifact": "molecule/apps/files/gunicorn",
            "command": "/usr/bin/gunicorn --workers 2 -c gunicorn.conf.py app:app",
            "env": {"APP_WARMUP": str(WARMUP)},
        })
    return out


def inventory(path, connection, count, version):
    host = {"ansible_python_interpreter": "/usr/bin/python3"}
    if connection == "ssh":
        host.update(ansible_connection="ssh", ansible_host=container_ip(), ansible_user="deploy",
                    ansible_ssh_private_key_file=os.path.join(TOP, ".cache", "ssh", "id_ed25519"),
                    ansible_ssh_common_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                                            "-o LogLevel=ERROR")
    else:
        host.update(ansible_connection="containers.podman.podman")
    data = {"onebox": {"hosts": {NAME: host}, "vars": {
        "onebox_artifact_base": TOP, "onebox_sites": sites(count, version)}}}
    with open(path, "w") as handle:
        yaml.safe_dump(data, handle)


def playbook(collections, inv, name):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections + ":" + os.path.join(TOP, ".venv", "lib",
                                                                                   "python3.11", "site-packages"),
               ANSIBLE_PIPELINING="true", ANSIBLE_NOCOLOR="true", ANSIBLE_FORCE_COLOR="false")
    path = os.path.join(collections, "ansible_collections", "onebox", "deploy", "playbooks", name)
    began = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", inv, path], cwd=TOP, capture_output=True, text=True,
                          env=env, check=False)
    took = time.monotonic() - began
    tasks = len(re.findall(r"^TASK \[", proc.stdout, re.M))
    return dict(seconds=round(took, 2), tasks=tasks, rc=proc.returncode,
                tail=proc.stdout[-1500:] if proc.returncode else "")


def old_collection(rev):
    base = os.path.join(TOP, ".cache", "bench-old")
    dest = os.path.join(base, "ansible_collections", "onebox", "deploy")
    stamp = os.path.join(base, "REV")
    if not (os.path.exists(stamp) and open(stamp).read().strip() == rev):
        shutil.rmtree(base, ignore_errors=True)
        os.makedirs(dest)
        archive = subprocess.run(["git", "-C", TOP, "archive", rev], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
        with open(stamp, "w") as handle:
            handle.write(rev + "\n")
    return base


def new_collection():
    base = os.path.join(TOP, ".cache", "collections")
    link = os.path.join(base, "ansible_collections", "onebox", "deploy")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(TOP, link)
    return base


def ready_sum(version):
    """Σ of the sites' time to ready in the roll to *version*, from the host's audit log: the part of
    the deploy that the app's own stop, start and warm-up take (None when the log has no such record)."""
    out = subprocess.run(["podman", "exec", NAME, "cat", "/var/log/onebox/deploy.jsonl"], capture_output=True,
                         text=True, check=False).stdout
    times = []
    for line in out.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("to_version") == version and record.get("time_to_ready_s") is not None:
            times.append(float(record["time_to_ready_s"]))
    return round(sum(times), 1) if times else None


def measure(design, collections, connection, count, work):
    say("%s design, %s, %d site(s): fresh container" % (design, connection, count))
    container_up()
    if connection == "ssh":
        run(["bash", os.path.join(HARNESS, "ssh-user.sh"), NAME])
    inv = os.path.join(work, "inventory.yml")
    row = dict(design=design, connection=connection, sites=count, warmups=round(count * WARMUP, 1))
    inventory(inv, connection, count, "1.0.0")
    for phase, book, version in (("first converge", "site.yml", "1.0.0"), ("no-op", "site.yml", "1.0.0"),
                                 ("deploy all", "deploy.yml", "1.0.1")):
        inventory(inv, connection, count, version)
        result = playbook(collections, inv, book)
        row[phase] = result
        say("  %-14s %7.1f s  %4d tasks  rc=%d" % (phase, result["seconds"], result["tasks"], result["rc"]))
        if result["rc"]:
            say(result["tail"])
            break
        if phase == "deploy all":
            row["ready_sum"] = ready_sum(version)
            say("  Σ time to ready of the rolled sites: %s s" % row["ready_sum"])
    subprocess.run(["podman", "rm", "-f", NAME], capture_output=True, check=False)
    return row


def table(rows):
    lines = ["| design | connection | sites | Σ warm-ups (s) | " + " | ".join(
        "%s: s / tasks" % phase for phase in PHASES) + " | deploy all: Σ time to ready (s) |",
             "|---|---|---|---|" + "---|" * (len(PHASES) + 1)]
    for row in rows:
        cells = []
        for phase in PHASES:
            res = row.get(phase)
            cells.append("—" if not res else ("%.1f / %d" % (res["seconds"], res["tasks"]))
                         + ("" if not res or res["rc"] == 0 else " (failed)"))
        ready = row.get("ready_sum")
        cells.append("—" if ready is None else "%.1f" % ready)
        lines.append("| %s | %s | %d | %.1f | %s |" % (row["design"], row["connection"], row["sites"],
                                                       row["warmups"], " | ".join(cells)))
    return "\n".join(lines)


def targets(rows):
    """The issue's targets, per design and connection, from the rows."""
    out = []
    by = {}
    for row in rows:
        by.setdefault((row["design"], row["connection"]), {})[row["sites"]] = row
    for (design, connection), sizes in sorted(by.items()):
        if 1 not in sizes or 12 not in sizes:
            continue
        one, twelve = sizes[1], sizes[12]
        if not all(r.get(p) and r[p]["rc"] == 0 for r in (one, twelve) for p in ("no-op", "deploy all")):
            continue
        ratio = twelve["no-op"]["seconds"] / one["no-op"]["seconds"]
        deploy = twelve["deploy all"]["seconds"]
        bound = twelve["warmups"] + twelve["no-op"]["seconds"] + 0.3 * 12
        ready = twelve.get("ready_sum")
        # The run's own part: the deploy's wall time less the sites' time to ready (their stop, start and
        # warm-up), against the no-op run plus 0.3 s a site.
        own = "—" if ready is None else "%.1f s vs %.1f s: %s" % (
            deploy - ready, twelve["no-op"]["seconds"] + 0.3 * 12,
            "met" if deploy - ready <= twelve["no-op"]["seconds"] + 0.3 * 12 else "missed")
        out.append("| %s | %s | %.2fx (target <= 1.5x): %s | %.1f s vs %.1f s (Σ warm-ups + no-op + 0.3 s a site): "
                   "%s | %s | %s |" % (
                       design, connection, ratio, "met" if ratio <= 1.5 else "missed", deploy, bound,
                       "met" if deploy <= bound else "missed by %.1f s" % (deploy - bound),
                       "—" if ready is None else "%.1f s" % ready, own))
    head = ["| design | connection | no-op, 12 sites / 1 site | deploy of 12 changed sites | of which the sites' "
            "Σ time to ready | the rest (deploy less Σ time to ready) vs no-op + 0.3 s a site |",
            "|---|---|---|---|---|---|"]
    return "\n".join(head + out)


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PHASES), figsize=(13, 4.2), sharey=False)
    styles = {("old", "ssh"): ("tab:red", "-"), ("old", "podman"): ("tab:red", "--"),
              ("new", "ssh"): ("tab:blue", "-"), ("new", "podman"): ("tab:blue", "--")}
    for ax, phase in zip(axes, PHASES):
        for (design, connection), (color, style) in styles.items():
            pts = sorted((r["sites"], r[phase]["seconds"]) for r in rows
                         if r["design"] == design and r["connection"] == connection and r.get(phase)
                         and r[phase]["rc"] == 0)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", color=color,
                        label="%s design, %s" % (design, connection))
        ax.set_title(phase)
        ax.set_xlabel("sites")
        ax.set_ylabel("seconds (wall)")
        ax.set_xticks(sorted(set(r["sites"] for r in rows)))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("A run's wall time by number of sites (gunicorn, 0.8 s warm-up each)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", "1,4,12"))
    parser.add_argument("--designs", default=os.environ.get("BENCH_DESIGNS", "old,new"))
    parser.add_argument("--connections", default=os.environ.get("BENCH_CONNECTIONS", "ssh,podman"))
    parser.add_argument("--old-rev", default=os.environ.get("BENCH_OLD_REV", "a5417c7"))
    parser.add_argument("--out", default=os.environ.get("BENCH_OUT", os.path.join(TOP, "docs", "bench")))
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    collections = {"new": new_collection()}
    if "old" in args.designs.split(","):
        collections["old"] = old_collection(args.old_rev)
    rows = []
    loadavg = open("/proc/loadavg").read().split()[:3]
    began = time.monotonic()
    work = tempfile.mkdtemp(prefix="onebox-scale-")
    try:
        for connection in args.connections.split(","):
            for count in sizes:
                for design in args.designs.split(","):
                    rows.append(measure(design, collections[design], connection, count, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(["podman", "rm", "-f", NAME], capture_output=True, check=False)
        subprocess.run(["podman", "network", "rm", NETWORK], capture_output=True, check=False)
    date = datetime.date.today().isoformat()
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, "scale-%s" % date)
    with open(stem + ".json", "w") as handle:
        json.dump(rows, handle, indent=1)
    plot(rows, stem + ".png")
    report = [
        "# Scale: a run's cost by number of sites (%s)" % date, "",
        "`make bench-scale` (tests/harness/bench_scale.py): Debian's gunicorn sites (2 sync workers, 0.8 s "
        "warm-up), one fresh systemd container per row. `old` is the collection at %s (before the one-pass "
        "redesign), `new` this checkout. `ssh`: a sudo user over SSH with pipelining and `become: true`, on a "
        "podman network; `podman`: podman exec as root. Cells: wall seconds / tasks run." % args.old_rev, "",
        "Machine: %d cores, load average before the run %s; the whole bench took %.0f s." % (
            os.cpu_count() or 0, " ".join(loadavg), time.monotonic() - began), "",
        table(rows), "", "## Targets", "", targets(rows), "",
        "![wall time by number of sites](%s)" % os.path.basename(stem + ".png"), "",
    ]
    with open(stem + ".md", "w") as handle:
        handle.write("\n".join(report))
    # docs/bench/scale.md: the latest run, linked from docs/benchmark.md.
    with open(os.path.join(args.out, "scale.md"), "w") as handle:
        handle.write("\n".join(report))
    print(table(rows))
    print()
    print(targets(rows))
    say("results in %s.md, .png and .json" % stem)


if __name__ == "__main__":
    main()
