"""How much a watched cluster costs the daemon: time to plan Functions, memory to keep them.

Run: .venv/bin/python bench/planning.py [FUNCTIONS] [REPOSITORIES]
Prints figures; asserts nothing (timings are checked by reading, not by a flaky test).
"""

from __future__ import annotations

import copy
import gc
import sys
import time
import tracemalloc
from dataclasses import dataclass, field

from revision_controller.daemon import Controller, DaemonConfig
from revision_controller.function import view_of
from revision_controller.params import PARAMS_ANNOTATION, SWITCH_ANNOTATION
from revision_controller.subscriptions import SubscriptionBook


@dataclass
class Quiet:
    api_version: str = "core.openfunction.io/v1beta2"
    replans: int = 0
    said: list = field(default_factory=list)

    def replan(self, target: object, interval: float | None) -> None:
        self.replans += 1

    def wake(self, target: object) -> None:
        pass

    def record(self, *args: object) -> None:
        self.said.append(args)


def function(n: int, repositories: int) -> dict:
    """A Function shaped like OpenFunction's samples, padded as a real one is with status."""
    return {
        "apiVersion": "core.openfunction.io/v1beta2", "kind": "Function",
        "metadata": {"name": f"fn-{n}", "namespace": f"team-{n % 50}", "uid": f"uid-{n}",
                     "resourceVersion": str(n), "labels": {"app": f"fn-{n}"},
                     "annotations": {SWITCH_ANNOTATION: "enable", PARAMS_ANNOTATION: "polling-interval: 30s",
                                     "kubectl.kubernetes.io/last-applied-configuration": "x" * 1500}},
        "spec": {"version": "v2.0.0", "image": f"registry.example/fn-{n}:v1",
                 "build": {"builder": "openfunction/builder-go:latest", "env": {"FUNC_NAME": "HelloWorld"},
                           "srcRepo": {"url": f"https://github.com/org/repo-{n % repositories}.git",
                                       "revision": "main", "sourceSubPath": f"functions/fn-{n}"}},
                 "serving": {"triggers": {"http": {"port": 8080}},
                             "template": {"containers": [{"name": "function", "imagePullPolicy": "IfNotPresent"}]}}},
        "status": {"build": {"state": "Succeeded", "resourceHash": "h" * 20},
                   "serving": {"state": "Running", "resourceHash": "h" * 20, "service": f"fn-{n}-svc"},
                   "sources": [{"name": "default", "git": {"commitSha": "a" * 40}}],
                   "revision": {"imageDigest": "sha256:" + "b" * 64},
                   "addresses": [{"type": "Internal", "value": f"http://fn-{n}.team/"}]},
    }


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    repositories = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    objects = [function(n, repositories) for n in range(count)]
    object_bytes = _retained(lambda: copy.deepcopy(objects))

    quiet, book = Quiet(), SubscriptionBook()
    elapsed = _plan(objects, quiet, book)
    kept = _retained(lambda: _plan(objects, Quiet(), SubscriptionBook(), keep=True))

    print(f"functions: {count}, repositories: {repositories}, targets planned: {len(book.targets())}")
    print(f"planning: {elapsed:.3f}s in all, {elapsed / count * 1e6:.1f} µs per Function")
    print(f"re-plan calls: {quiet.replans} (one per subscription; the scheduler ignores those that "
          f"leave a target's interval as it was)")
    print(f"memory kept by the daemon: {kept / count:.0f} bytes per Function "
          f"({kept / 2**20:.1f} MiB in all)")
    print(f"the same Functions as API objects: {object_bytes / count:.0f} bytes each "
          f"({object_bytes / 2**20:.1f} MiB in all)")


def _plan(objects: list[dict], quiet: Quiet, book: SubscriptionBook, keep: bool = False) -> object:
    """Seconds to plan every Function, or (keep=True) what planning leaves in memory."""
    controller = Controller(DaemonConfig(), quiet, quiet, book, quiet)
    started = time.perf_counter()
    for obj in objects:
        controller.changed(view_of(obj))
    return (controller, book) if keep else time.perf_counter() - started


def _retained(build) -> int:
    gc.collect()
    tracemalloc.start()
    kept = build()
    gc.collect()
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return size


if __name__ == "__main__":
    main()
