"""bench/scale.py at several sizes, and a picture of where one replica ends.

Run: .venv/bin/python bench/sweep.py --out bench/scale.png [--interval 20s] [--max-functions 30000]
                                     [--host github|git] [--rest-limit N] [--json PATH]

Targets are a tenth of the Functions. Draws the daemon's RSS, CPU per poll, share of a core
and requests per target per interval against the number of Functions (log x axis), with the
issue's targets, and marks the first size where one replica no longer keeps up: a whole core,
or targets polled less often than asked.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from revision_controller.duration import parse_duration
from scale import GITHUB_REST_LIMIT, Failed, Figures, Scale, as_json, interrupted_by_sigterm, run, table

SIZES = (1_000, 3_000, 10_000, 30_000, 100_000)
RSS_TARGET_MIB = 150.0  # the target at 10,000 Functions, drawn for reference
CORE_LIMIT_PERCENT = 100.0  # the GIL: one Python process uses one core at most
COVERAGE_LIMIT = 0.9


def one_replica_ends(figures: list[Figures]) -> Figures | None:
    """The first size at which one replica no longer keeps up: it needs a whole core, or it
    polls targets less often than they ask."""
    return next((f for f in figures if f.core_percent >= CORE_LIMIT_PERCENT
                 or f.polls_per_target_per_interval < COVERAGE_LIMIT), None)


def draw(figures: list[Figures], out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [f.functions for f in figures]
    panels = [("daemon RSS (MiB)", [f.rss_mib for f in figures], RSS_TARGET_MIB),
              ("CPU per poll (ms)", [f.cpu_ms_per_poll for f in figures], 2.0),
              ("share of one core (%); target at 1m", [f.core_percent for f in figures], 10.0),
              ("requests per target per interval", [f.requests_per_target_per_interval for f in figures], 1.0)]
    fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(7, 2.4 * len(panels)))
    end = one_replica_ends(figures)
    for axis, (title, values, limit) in zip(axes, panels, strict=True):
        axis.plot(sizes, values, marker="o")
        axis.axhline(limit, color="tab:red", linestyle="--", linewidth=1, label=f"target {limit:g}")
        if end is not None:
            axis.axvline(end.functions, color="tab:gray", linestyle=":",
                         label="one replica ends (a core, or polls late)")
        axis.set_ylabel(title, fontsize=8)
        axis.set_xscale("log")
        axis.legend(fontsize=7, loc="upper left")
        axis.grid(True, which="both", linewidth=0.3)
    axes[-1].set_xlabel("Functions (targets = Functions / 10)")
    first = figures[0]
    fig.suptitle(f"revision controller at scale: {first.host} stand-in, interval {first.interval_s:g}s",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    command = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    command.add_argument("--out", type=Path, default=Path("bench/scale.png"))
    command.add_argument("--interval", type=parse_duration, default=60.0)
    command.add_argument("--max-functions", type=int, default=max(SIZES))
    command.add_argument("--host", choices=("github", "git"), default="github")
    command.add_argument("--rest-limit", type=int, default=GITHUB_REST_LIMIT,
                         help="REST units per token per hour on the GitHub stand-in (default: GitHub's 5000)")
    command.add_argument("--json", type=Path, metavar="PATH", help="also write every run's figures here")
    args = command.parse_args(argv)
    base = Scale(interval=args.interval, host=args.host, rest_limit=args.rest_limit)
    results: list[Figures] = []
    try:
        with interrupted_by_sigterm():
            for functions in (size for size in SIZES if size <= args.max_functions):
                print(f"--- {functions} Functions", file=sys.stderr, flush=True)
                figures = run(replace(base, functions=functions, targets=functions // 10),
                              say=lambda text: print(text, file=sys.stderr, flush=True))
                print(table(figures), flush=True)
                results.append(figures)
    except Failed as error:
        print(f"sweep: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        print("sweep: interrupted; drawing what was measured", file=sys.stderr)
    if not results:
        return 1
    draw(results, args.out)
    if args.json:
        args.json.write_text(json.dumps([as_json(f) for f in results], indent=2) + "\n")
    end = one_replica_ends(results)
    print(f"one replica ends at {end.functions} Functions" if end else
          f"one replica kept up at every size run (up to {results[-1].functions} Functions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
