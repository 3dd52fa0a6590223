"""`revision-controller run` (the daemon), `revision-controller check` and `revision-controller demo`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from revision_controller.batching import DEFAULT_CEILING_PER_MINUTE
from revision_controller.daemon import Daemon, DaemonConfig, StartupError
from revision_controller.duration import parse_duration
from revision_controller.logs import setup_logging
from revision_controller.probes import parse_address

log = logging.getLogger("revision_controller")


def _duration(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than zero")
    return seconds


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number of at least 1")
    return int(text)


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = -1.0
    if not 0 <= rate < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number of requests a minute, 0 or more")
    return rate


def _address(text: str) -> str:
    try:
        parse_address(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _namespaces(values: list[str] | None) -> tuple[str, ...]:
    names = [name.strip() for value in values or [] for name in value.split(",")]
    return tuple(dict.fromkeys(name for name in names if name))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="revision-controller",
                                  description="Rebuilds or redeploys OpenFunction Functions when "
                                              "their git branch or image moves.")
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the daemon against a cluster")
    run.add_argument("--kubeconfig", help="kubeconfig file; in-cluster configuration when absent")
    run.add_argument("--namespace", action="append", metavar="NS",
                     help="watch only these namespaces (repeat or comma-separate); all when absent")
    run.add_argument("--function-version", choices=("v1beta2", "v1beta1"), default="v1beta2",
                     help="Function API version to read and patch (default: v1beta2)")
    run.add_argument("--default-polling-interval", type=_duration, default=5.0, metavar="DURATION",
                     help="interval for Functions that set none, as a Go duration (default: 5s)")
    run.add_argument("--workers", type=_positive, default=4, help="polls run at once (default: 4)")
    run.add_argument("--leader-elect", action="store_true",
                     help="act only while holding the Lease revision.openfunction.io, so replicas never "
                          "both act")
    run.add_argument("--leader-election-namespace", default=os.environ.get("POD_NAMESPACE", "openfunction"),
                     metavar="NS", help="namespace of the Lease (default: $POD_NAMESPACE, else openfunction)")
    run.add_argument("--leader-election-lease-duration", type=_duration, default=15.0, metavar="DURATION",
                     help="how long a standby waits before taking over an unrenewed Lease (default: 15s)")
    run.add_argument("--leader-election-renew-deadline", type=_duration, default=10.0, metavar="DURATION",
                     help="a leader that could not renew for this long stops acting (default: 10s)")
    run.add_argument("--leader-election-retry-period", type=_duration, default=2.0, metavar="DURATION",
                     help="how often to try to acquire or renew the Lease (default: 2s)")
    run.add_argument("--health-probe-bind-address", type=_address, default=":8081", metavar="ADDR",
                     help="serve /healthz and /readyz here; 0 disables (default: :8081)")
    run.add_argument("--metrics-bind-address", type=_address, default=":8080", metavar="ADDR",
                     help="serve Prometheus /metrics here; 0 disables (default: :8080)")
    run.add_argument("--graphql-batch-above", type=_rate, default=DEFAULT_CEILING_PER_MINUTE,
                     metavar="REQUESTS_PER_MINUTE",
                     help="read the heads of a GitHub token's targets in GraphQL batches (100 a request) "
                          "once they would make more REST requests a minute than this; 0 batches always "
                          f"(default: {DEFAULT_CEILING_PER_MINUTE:g}, under GitHub's 900 a minute)")
    run.add_argument("--webhook-bind-address", type=_address, default=":8090", metavar="ADDR",
                     help="receive signed webhooks from GitHub, GitLab, Gitee and registries here, at "
                          "/hooks/PROVIDER; 0 disables (default: :8090)")
    run.add_argument("--webhook-secret-file", default="", metavar="PATH",
                     help="file holding the webhooks' shared secret; without it no webhook is received")
    _add_logging(run)
    _add_check(commands)
    demo = commands.add_parser("demo", help="run the whole loop on this machine, then exit")
    demo.add_argument("--keep", action="store_true",
                      help="then stay up as a playground for kubectl, git push and image pushes until Ctrl-C")
    _add_logging(demo)
    return top


CHECK_EPILOG = """\
Inputs are YAML files (several documents each; those that are not kind Function are skipped),
stdin as -, or with --kubeconfig NAMESPACE/NAME of a Function in the cluster. With --kubeconfig
the Functions' Secrets are read from the cluster; --token-file overrides the git token. check
only reads: it never writes to a cluster.

exit status: 2 when any Function has invalid parameters (enabled or not) or an input cannot be
read, else 1 when any target (or the cluster) could not be read, else 0.
"""


def _add_check(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser("check", help="say what the daemon would do with Functions now, without writing",
                                epilog=CHECK_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("inputs", nargs="+", metavar="FILE|-|NAMESPACE/NAME")
    check.add_argument("--kubeconfig", help="read NAMESPACE/NAME Functions and their Secrets from this cluster")
    check.add_argument("--function-version", choices=("v1beta2", "v1beta1"), default="v1beta2",
                       help="Function API version to read (default: v1beta2)")
    check.add_argument("--default-polling-interval", type=_duration, default=5.0, metavar="DURATION",
                       help="interval for Functions that set none, as the daemon's flag (default: 5s)")
    check.add_argument("--offline", action="store_true", help="plan only: do not poll the targets")
    check.add_argument("--token-file", default="", metavar="PATH",
                       help="file holding the git token to poll with, instead of the Function's Secret")
    check.add_argument("--output", choices=("text", "json"), default="text",
                       help="text for people, json (a list, one object per Function) for scripts")
    _add_logging(check)


def _add_logging(command: argparse.ArgumentParser) -> None:
    command.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    command.add_argument("--log-format", choices=("text", "json"), default="text")


def main(argv: Sequence[str] | None = None) -> int:
    command = parser()
    args = command.parse_args(argv)
    if args.command == "run" and not (args.leader_election_lease_duration > args.leader_election_renew_deadline
                                      > args.leader_election_retry_period):
        command.error("leader election needs lease duration > renew deadline > retry period")
    setup_logging(args.log_level, args.log_format)
    if args.command == "demo":
        from revision_controller.demo import run_demo
        return run_demo(keep=args.keep)
    if args.command == "check":
        from revision_controller.checking import CheckOptions, run_check
        return run_check(CheckOptions(tuple(args.inputs), args.kubeconfig, args.function_version,
                                      args.default_polling_interval, args.offline, args.token_file, args.output))
    config = DaemonConfig(kubeconfig=args.kubeconfig, namespaces=_namespaces(args.namespace),
                          function_version=args.function_version,
                          default_polling_interval=args.default_polling_interval, workers=args.workers,
                          leader_elect=args.leader_elect, lease_namespace=args.leader_election_namespace,
                          lease_duration=args.leader_election_lease_duration,
                          renew_deadline=args.leader_election_renew_deadline,
                          retry_period=args.leader_election_retry_period,
                          health_probe_address=args.health_probe_bind_address,
                          metrics_address=args.metrics_bind_address,
                          graphql_batch_above=args.graphql_batch_above,
                          webhook_address=args.webhook_bind_address, webhook_secret_file=args.webhook_secret_file)
    try:
        daemon = Daemon(config)
    except StartupError as error:
        print(f"revision-controller: {error}", file=sys.stderr)
        return 2
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: daemon.stop())
    daemon.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
