"""How long a team takes to converge after the faults real networks produce.

Runs the fault scenarios of tests/support/faults.py - three karmad nodes, each in its own
network namespace, writing sessions while the fault lasts - and prints, per scenario,
how many runs converged and the time from the end of the fault until every entitled
member has every line exactly once and Syncthing's configuration is the design's:

  slow-network     every link 100 ms +- 20 ms and 2% loss, sessions written for minutes
                   (measured from the last line written)
  partition        the team split in two while everyone writes, then healed
  sleeping-laptop  a member asleep (link silent, processes stopped) mid-transfer, woken
  member-away      one member off while removed, another cut off while a project is
                   unshared; both come back
  leader-away      the leader off while a member leaves and another accepts a project
  kill-9           karmad killed during config writes and during packaging, Syncthing
                   killed on another node
  keeper           two members and a keeper on slow, lossy links: bob off while alice
                   writes, alice off once K holds it all, bob catches up through K alone
                   (measured from bob's return; K's whole disk searched for planted names)

The long variants by default (minutes of fault each); `--short` runs the ones CI runs.
Needs root, `ip` and /dev/net/tun (see tests/support/netns.py).

    .venv/bin/python bench/faults.py [--runs 1] [--short] [--only partition,kill-9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import faults, netns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--short", action="store_true", help="the variants CI runs")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    args = parser.parse_args()
    reason = netns.unavailable()
    if reason is not None:
        parser.error(f"network namespaces: {reason}")
    names = [n for n in args.only.split(",") if n] or list(faults.SCENARIOS)
    unknown = set(names) - set(faults.SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {sorted(unknown)}")
    durations = faults.SHORT if args.short else faults.LONG
    results: dict[str, list[faults.Outcome]] = {n: [] for n in names}
    failures: dict[str, int] = dict.fromkeys(names, 0)
    started = time.monotonic()
    for run in range(args.runs):
        for name in names:
            with tempfile.TemporaryDirectory(prefix="kfb") as tmp:
                net = netns.Net(Path(tmp) / "net", seed=run)
                try:
                    outcome = faults.SCENARIOS[name](net, durations)
                    net.assert_isolated()
                except Exception:
                    failures[name] += 1
                    print(f"{name} run {run}: FAILED", file=sys.stderr)
                    traceback.print_exc()
                    print(net.diagnose(), file=sys.stderr)
                    continue
                finally:
                    net.teardown()
            results[name].append(outcome)
            print(
                f"{name} run {run}: converged {outcome.converge_s:.1f} s "
                f"({outcome.sessions} sessions, {outcome.lines} lines) {outcome.figures}",
                file=sys.stderr,
                flush=True,
            )
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    variant = "short (CI)" if args.short else "long"
    print(
        f"\nfault scenarios, {variant} variants: {durations}\n"
        f"{os.cpu_count()} CPUs, load {load}, {time.monotonic() - started:.0f} s in all"
    )
    print(f"{'scenario':<16} {'passed':>7}  {'converge median':>15}  {'max':>7}  figures")
    for name in names:
        done = results[name]
        runs = len(done) + failures[name]
        if not done:
            print(f"{name:<16} {0:>3}/{runs:<3}")
            continue
        times = [o.converge_s for o in done]
        figures = {
            k: round(statistics.median(o.figures[k] for o in done), 2) for k in done[0].figures
        }
        print(
            f"{name:<16} {len(done):>3}/{runs:<3}  {statistics.median(times):13.1f} s  "
            f"{max(times):5.1f} s  {figures or ''}"
        )
    return 1 if any(failures.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
