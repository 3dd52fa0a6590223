"""Two replicas; the leader loses the API server for longer than its lease, then comes back."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

from revision_controller.function import GROUP
from revision_controller.testing import ApiServer
from revision_controller.testing.gitserver import GitServer
from tests.e2e.conftest import NAMESPACE, VERSION, DaemonProcess, function_manifest, wait_for
from tests.e2e.test_production import LEADER_FLAGS, LEASE_SECONDS, identity, lease_holder, metric

INTERVAL = 1.0
PARAMS = f"repo-type: git\npolling-interval: {INTERVAL:g}s"
FUNCTIONS = 10
PARTITION_SECONDS = 2 * LEASE_SECONDS + 2
TOKENS = ("replica-a-token", "replica-b-token")
# A change is recorded within the interval, plus the standby's takeover (the lease) where one is
# under way, plus 5 s for a loaded machine.
WITHIN = LEASE_SECONDS + INTERVAL + 5
PATCH_PATH = re.compile(r"/functions/([^/]+)/status$")


def recorded(apiserver: ApiServer) -> set[str]:
    return {source["git"]["commitSha"]
            for obj in apiserver.list(f"{GROUP}/{VERSION}", "Function", NAMESPACE)
            for source in (obj.get("status") or {}).get("sources") or []}


def test_a_leader_cut_off_longer_than_its_lease_hands_over_and_never_patches_again(
        apiserver: ApiServer, gitserver: GitServer, start_replica: Callable[..., DaemonProcess],
        figures: Callable[[str, list[str]], None]) -> None:
    repo = gitserver.create_repository("elected", branch="main")
    timeline = [repo.head("main")]
    for number in range(FUNCTIONS):
        apiserver.create({**function_manifest(f"e{number}", repo.url, PARAMS),
                          "status": {"sources": [{"name": "default", "git": {"commitSha": timeline[0]}}]}})
    replicas = {token: start_replica(token, *LEADER_FLAGS) for token in TOKENS}
    holder = wait_for(lambda: lease_holder(apiserver), 15, "a leader")
    wait_for(lambda: all(identity(replica) for replica in replicas.values()), 5, "both replicas started")
    (leader,) = [token for token, replica in replicas.items() if identity(replica) == holder]
    (standby,) = [token for token in TOKENS if token != leader]

    def change(what: str) -> None:
        timeline.append(repo.commit(what, files={"n": what}))
        wait_for(lambda: recorded(apiserver) == {timeline[-1]}, WITHIN, f"every Function to record {what}")

    change("before")
    apiserver.blackhole(leader)
    cut = time.monotonic()
    change("during the cut, while the old leader may still think it leads")
    wait_for(lambda: lease_holder(apiserver) == identity(replicas[standby]), 1, "the new leader in the lease")
    took_over = time.monotonic() - cut
    change("during the cut, under the new leader")
    time.sleep(max(0.0, cut + PARTITION_SECONDS - time.monotonic()))
    apiserver.reconnect(leader)
    back = len(apiserver.requests)
    wait_for(lambda: any(r.token == leader and not r.fault for r in apiserver.requests[back:]), 5,
             "the old leader talking to the API server again")
    change("after the old leader came back")
    time.sleep(2 * INTERVAL + 1)  # both replicas go on polling: nothing more may be patched

    requests = apiserver.requests
    patches = [r for r in requests if r.method == "PATCH" and PATCH_PATH.search(r.path)]
    applied: dict[str, list[str]] = {f"e{n}": [] for n in range(FUNCTIONS)}
    for request in patches:
        found = PATCH_PATH.search(request.path)
        if found and 200 <= request.status < 300:
            applied[found[1]].append(json.loads(request.body)["status"]["sources"][0]["git"]["commitSha"])
    by_old_leader_after = [r for r in requests[back:] if r.token == leader and PATCH_PATH.search(r.path)]
    held = [r for r in requests if r.token == leader and r.fault == "blackhole"]
    held_patches = sum(1 for r in held if PATCH_PATH.search(r.path))
    old, new = replicas[leader], replicas[standby]
    figures("leader cut off from the API server", [
        f"{FUNCTIONS} Functions, interval {INTERVAL:g} s, lease {LEASE_SECONDS:g} s, cut off for "
        f"{PARTITION_SECONDS:g} s; the standby held the lease {took_over:.1f} s after the cut",
        f"status PATCHes applied: {sum(1 for r in patches if r.status == 200 and r.token == leader)} by the old "
        f"leader, {sum(1 for r in patches if r.status == 200 and r.token == standby)} by the new; "
        f"{len(held)} requests of the old leader held unanswered during the cut, {held_patches} of them status "
        f"PATCHes it sent before it knew it had lost the lease; {len(by_old_leader_after)} after it came back",
    ])

    assert all(values == timeline[1:] for values in applied.values()), (timeline, applied)
    assert by_old_leader_after == []  # it knew it had lost the lease before writing anything
    assert lease_holder(apiserver) == identity(new) and "lost leadership" in old.output()
    assert metric(old, "revision_controller_leader") == 0 and metric(new, "revision_controller_leader") == 1
    assert old.process.poll() is None and new.process.poll() is None
