"""Turn the raw data of one `make bench` run into its table, page and plot.

Reads the work directory of tests/harness/bench.sh: passes.tsv (label, way,
path), meta.json (the setup), and per pass LABEL.load.json (bench_load.py:
wrk's numbers and the sampler's timeline), LABEL.roll.json (the
rolling_restart result) and LABEL.journal.json (systemd's job messages, which
give the restart times). Prints the table and writes, under --out,
bench/<date>.md, bench/<date>.png and benchmark.md (the latest run).

Runs on the controller with the project's virtualenv (matplotlib).
"""

import argparse
import collections
import io
import json
import os

WAYS = {
    "plain": "plain restart, app binds its port",
    "restart": "socket activation, strategy restart",
    "overlap": "socket activation, strategy overlap",
}
PATHS = {
    ("plain", "direct"): "direct",
    ("plain", "traefik"): "Traefik: /readyz check + retry",
    ("restart", "direct"): "direct",
    ("restart", "traefik"): "Traefik (role): /livez check + retry",
    ("overlap", "direct"): "direct",
    ("overlap", "traefik"): "Traefik (role): /livez check + retry",
}
# systemd job messages (sd-messages.h)
STARTING = "7d4958e842da4a758f6c1cdc7b36dcc5"
STARTED = "39f53479d3a045ac8e11786248231fbf"
STOPPING = "de5b426a63be47a7b6ac3eaac82e2f6f"
STOPPED = "9d1aaa27d60140bd96365438aad20286"
HOW_TO_READ = """What each way does to a request that arrives during a restart (see
[how-it-works.md](how-it-works.md)):

- plain restart: the old process closes its port when it starts draining; until the new process
  has bound it again (interpreter start), connections are refused;
- Traefik with a `/readyz` health check in front of it: the only server is marked DOWN whenever a
  check falls into a drain or warm-up, and Traefik answers `503` until the next check passes; the
  retry middleware hides the short cases ([traefik.md](traefik.md));
- socket activation, `restart`: the socket stays open; requests wait in the backlog for the drain
  and the warm-up (max latency about the warm-up) and none fails direct. Through Traefik, the role's
  `/livez` check dials the app's health port, which is closed from the old process's exit until the
  new one has bound it (its interpreter start): a check in that gap marks the server DOWN until a
  check passes, and requests the retry middleware cannot carry over get `503`;
- socket activation, `overlap`: the old instance serves until the new one is ready; latency stays
  near the baseline.
"""
WRK_KINDS = (("connect_errors", "connect"), ("read_errors", "read"), ("write_errors", "write"),
             ("timeouts", "timeout"), ("non_2xx_3xx", "non-2xx/3xx"))


SCALE = ("\n## What a run costs as sites grow\n\n`make bench-scale` times a first converge, a run that changes "
         "nothing and a deploy of every site, for 1, 4 and 12 sites, in the design before the one-pass redesign "
         "and in this one, over SSH and over Podman: [bench/scale.md](bench/scale.md).\n")


def restart_windows(journal_file, strategy, t_start):
    """[(begin, end)] seconds after t_start, one per restart, from systemd's job messages.

    restart: from `Stopping` of the unit to the next `Started` (READY=1 of the new process);
    overlap: from `Starting` of the new instance to `Stopped` of the old one."""
    events = []
    with open(journal_file) as handle:
        for line in handle:
            if not line.strip():
                continue
            entry = json.loads(line)
            if entry.get("MESSAGE_ID") in (STARTING, STARTED, STOPPING, STOPPED):
                events.append((int(entry["__REALTIME_TIMESTAMP"]) / 1e6 - t_start, entry["MESSAGE_ID"]))
    events.sort()
    opens, closes = (STOPPING, STARTED) if strategy == "restart" else (STARTING, STOPPED)
    windows, begin = [], None
    for when, kind in events:
        if kind == opens and begin is None:
            begin = when
        elif kind == closes and begin is not None:
            windows.append((begin, when))
            begin = None
    return windows


def load_pass(work, label, way, path):
    with open(os.path.join(work, label + ".load.json")) as handle:
        load = json.load(handle)
    with open(os.path.join(work, label + ".roll.json")) as handle:
        roll = json.load(handle)
    strategy = "overlap" if way == "overlap" else "restart"
    windows = restart_windows(os.path.join(work, label + ".journal.json"), strategy, load["t_start"])
    samples = load["sampler"]["samples"]
    kinds = collections.Counter(s[2] for s in samples if not s[2].startswith(("2", "3")))
    wrk = load["wrk"]
    notes = []
    not_ready = [r for r in roll.get("results", []) if r.get("status") != "ready"]
    if not_ready or roll.get("failed"):
        notes.append("%s: the module reported %s" % (label, roll.get("msg") or not_ready))
    if windows and windows[-1][1] > load["duration"] - 0.5:
        notes.append("%s: the last restart ended %.1f s into a %d s load window: raise BENCH_DURATION"
                     % (label, windows[-1][1], load["duration"]))
    if load.get("wrk_rc"):
        notes.append("%s: wrk exited with %s" % (label, load["wrk_rc"]))
    return {
        "label": label, "way": way, "path": path, "load": load, "roll": roll, "windows": windows,
        "samples": samples, "sampler_failed": sum(kinds.values()), "sampler_kinds": kinds, "notes": notes,
        "wrk": wrk, "wrk_kinds": ", ".join("%s %d" % (name, wrk[key]) for key, name in WRK_KINDS if wrk.get(key)) or "-",
    }


def fmt_ms(value):
    if value is None:
        return "-"
    return "%.1f" % value if value < 100 else "%.0f" % value


def table(passes):
    head = ("way", "path", "requests", "failed", "error kinds (wrk)", "p50 ms", "p99 ms", "max ms",
            "roll s", "sampler: sent / failed (kinds)")
    rows = []
    for p in passes:
        wrk = p["wrk"]
        kinds = ", ".join("%s%s %d" % ("HTTP " if k[:1].isdigit() else "", k, n)
                          for k, n in sorted(p["sampler_kinds"].items())) or "-"
        rows.append((WAYS[p["way"]], PATHS[(p["way"], p["path"])], "{:,}".format(wrk["requests"]),
                     "{:,}".format(wrk["failed"]), p["wrk_kinds"], fmt_ms(wrk["p50_ms"]), fmt_ms(wrk["p99_ms"]),
                     fmt_ms(wrk["max_ms"]), "%.2f" % p["roll"].get("duration", 0),
                     "%s / %s (%s)" % ("{:,}".format(len(p["samples"])), "{:,}".format(p["sampler_failed"]), kinds)))
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def plot(passes, meta, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"refused": "tab:red", "reset": "tab:purple", "timeout": "black", "5xx": "tab:orange",
              "other": "tab:brown"}
    by_key = dict(((p["way"], p["path"]), p) for p in passes)
    lat_max = max([s[1] for p in passes for s in p["samples"]] + [10.0])
    top = 10 ** (len(str(int(lat_max))))  # next power of ten above every latency
    fig, axes = plt.subplots(3, 2, figsize=(13, 9), sharex=True, sharey=True)
    for row, way in enumerate(("plain", "restart", "overlap")):
        for col, path in enumerate(("direct", "traefik")):
            ax = axes[row][col]
            p = by_key.get((way, path))
            if p is None:
                ax.set_visible(False)
                continue
            ok = [(s[0], s[1]) for s in p["samples"] if s[2][:1] in ("2", "3")]
            ax.scatter([s[0] for s in ok], [max(s[1], 0.1) for s in ok], s=4, color="tab:green", alpha=0.6,
                       linewidths=0, zorder=3, label="answered (latency)")
            # a request that waited: a line from its start for as long as it took
            slow = [s for s in ok if s[1] >= 50]
            ax.hlines([s[1] for s in slow], [s[0] for s in slow], [s[0] + s[1] / 1000.0 for s in slow],
                      color="tab:green", linewidth=1.5, zorder=3)
            failed = collections.defaultdict(list)
            for s in p["samples"]:
                if s[2][:1] in ("2", "3"):
                    continue
                kind = "5xx" if s[2][:1] in ("4", "5") else s[2].split(":")[0]
                failed[kind if kind in colors else "other"].append(s[0])
            for n, (kind, times) in enumerate(sorted(failed.items())):
                ax.scatter(times, [top * (3.0 - 0.8 * n)] * len(times), s=14, marker="|", color=colors[kind],
                           zorder=3, label="failed: %s (%d)" % (kind, len(times)))
            for begin, end in p["windows"]:
                ax.axvline(begin, color="tab:blue", linewidth=0.6, alpha=0.7)
                ax.axvspan(begin, end, color="tab:blue", alpha=0.12, linewidth=0)
            ax.set_yscale("log")
            ax.set_ylim(0.1, top * 5)  # failed requests are drawn above `top`
            ax.set_xlim(0, p["load"]["duration"])
            ax.grid(True, which="major", axis="y", alpha=0.3)
            ax.set_title("%s / %s\nwrk: %s requests, %s failed; roll %.1f s" % (
                WAYS[way], PATHS[(way, path)], "{:,}".format(p["wrk"]["requests"]),
                "{:,}".format(p["wrk"]["failed"]), p["roll"].get("duration", 0)), fontsize=9)
            ax.legend(loc="lower right", fontsize=7, markerscale=2, framealpha=0.8)
            if col == 0:
                ax.set_ylabel("sampler latency ms (log)")
            if row == 2:
                ax.set_xlabel("seconds since the load started")
    fig.suptitle("make bench %s: %d restarts per pass (blue line: a restart begins, shaded until it is done). "
                 "The sampler's requests (%d x 1 GET / %d ms pause), not wrk's:\n"
                 "dot at the start of each request at its latency, line while a slow one (>= 50 ms) waited; "
                 "failed requests as ticks at the top" % (
                     meta["date"], meta["restarts"], meta["sampler_connections"], meta["sampler_pace_ms"]),
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    buf = io.BytesIO()
    fig.savefig(buf, dpi=72)
    plt.close(fig)
    # A 128-colour palette keeps the committed file small.
    from PIL import Image
    buf.seek(0)
    Image.open(buf).convert("RGB").quantize(colors=128, method=Image.Quantize.FASTOCTREE).save(png, optimize=True)


def setup_text(meta):
    return "\n".join([
        "- app: `files/reference-app/bin/onebox-app --warmup %s --idle-grace %s --drain-timeout %s`, `Type=notify`, "
        "health port separate from the public port; the same app file in every way" % (
            meta["warmup"], meta["idle_grace"], meta["drain_timeout"]),
        "- load (the table): `wrk -t1 -c%d -d%ds --timeout 10s` with a Lua `delay()` of %d ms per connection "
        "between requests, on `/`, from inside the container; restarts begin about %s s after the load "
        "(plus Ansible's start-up)" % (meta["connections"], meta["duration"], meta["pace_ms"], meta["settle"]),
        "- timeline (the plot only): %d sampler connections (Python, standard library), each one GET then a %d ms "
        "pause, for the same %d s; its counts differ from wrk's (it retries a refused connection after %d ms, "
        "wrk at once)" % (meta["sampler_connections"], meta["sampler_pace_ms"], meta["duration"],
                          meta["sampler_pace_ms"]),
        "- restarts: %d per pass, one `onebox.deploy.rolling_restart` run per pass (every way: strategy `restart` "
        "is `systemctl restart` then 3 x `/readyz` 200; `overlap` starts the other instance, waits for its "
        "`/readyz`, stops the old one). roll s = the module's `duration`; restart times in the plot come from "
        "systemd's job messages in the journal" % meta["restarts"],
        "- plain: a hand-written `app-plain.service` (no socket, `StartLimitIntervalSec=0`); through Traefik with "
        "a file copied from the role's, health check moved to `/readyz` on the health port",
        "- socket activation: `playbooks/site.yml`, sites `app-restart` and `app-overlap`; Traefik %s installed "
        "by the `onebox.deploy.traefik` role (health check `/livez`, interval 1s, unhealthyInterval 100ms, retry "
        "4 attempts on network errors and 502/503)" % meta["traefik"],
        "- machine: %d cores (%s), Debian 12, one Podman systemd container (runc); load average %s when the "
        "run began; passes run one after the other; %d s from start to the last pass" % (
            meta["cores"], meta["cpu"] or "?", meta["loadavg"], meta["runtime_s"]),
        "- command: `%s`" % meta["command"],
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", default="docs")
    args = parser.parse_args()
    with open(os.path.join(args.work, "meta.json")) as handle:
        meta = json.load(handle)
    passes = []
    with open(os.path.join(args.work, "passes.tsv")) as handle:
        for line in handle:
            label, way, path = line.split()
            passes.append(load_pass(args.work, label, way, path))
    notes = [n for p in passes for n in p["notes"]]
    text = table(passes)
    date = meta["date"]
    os.makedirs(os.path.join(args.out, "bench"), exist_ok=True)
    png = os.path.join(args.out, "bench", date + ".png")
    plot(passes, meta, png)
    legend = ("requests, failed, error kinds, p50/p99/max: from wrk. requests = answers received; failed = "
              "wrk's socket errors + non-2xx/3xx answers. wrk counts a refused connection as a *write* error "
              "(its non-blocking connect fails at the first write) and reconnects at once, so while a port is "
              "closed it piles up failures faster than requests. roll s: the module's time for all %d restarts. "
              "sampler: the plot's timeline requests, with the kinds they saw (refused, reset, timeout, HTTP "
              "status)." % meta["restarts"])
    with open(os.path.join(args.out, "bench", date + ".md"), "w") as handle:
        handle.write("# make bench, %s\n\n%s\n\n%s\n\n![latency and errors over time](%s.png)\n\n## Setup\n\n%s\n"
                     % (date, text, legend, date, setup_text(meta)))
        if notes:
            handle.write("\n## Warnings\n\n" + "\n".join("- " + n for n in notes) + "\n")
    with open(os.path.join(args.out, "benchmark.md"), "w") as handle:
        handle.write(
            "# Benchmark: ways of restarting one app\n\n"
            "`make bench` (`tests/harness/bench.sh`, about 5-10 minutes) restarts the same app %d times under "
            "the same paced `wrk` load in each way: a plain service that binds its own port (direct, and "
            "behind Traefik with a `/readyz` health check), and socket activation with the `restart` and "
            "`overlap` strategies (direct, and behind Traefik as the `onebox.deploy.traefik` role configures "
            "it). One run writes `docs/bench/<date>.md` and `.png` and this page. The latest run, %s "
            "(setup, machine and exact command: [bench/%s.md](bench/%s.md)); numbers from a shared machine "
            "are noisy, rerun on a quiet one before quoting them:\n\n%s\n\n%s\n\n![latency and errors over time]"
            "(bench/%s.png)\n\n%s\n%s" % (meta["restarts"], date, date, date, text, legend, date, HOW_TO_READ,
                                            SCALE))
    print("make bench %s: %d restarts per pass, wrk %d connections x %d ms pause, %d s per pass; Traefik %s"
          % (date, meta["restarts"], meta["connections"], meta["pace_ms"], meta["duration"], meta["traefik"]))
    print("(table: wrk; sampler column: the plot's timeline requests)")
    print(text)
    for note in notes:
        print("WARNING: " + note)
    print("wrote %s, %s, %s" % (os.path.join(args.out, "bench", date + ".md"), png,
                                os.path.join(args.out, "benchmark.md")))


if __name__ == "__main__":
    main()
