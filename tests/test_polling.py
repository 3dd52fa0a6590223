"""TargetPoller with recording stand-ins for providers, Secrets, patches and Events."""

from __future__ import annotations

from dataclasses import dataclass, field

from providers.base import GitSource, ImageReference, NotFound, RegistryAuth, Unavailable
from revision_controller.function import FunctionRef, FunctionView
from revision_controller.metrics import Metrics
from revision_controller.polling import TargetPoller
from revision_controller.subscriptions import SubscriptionBook
from revision_controller.targets import GitTarget, ImageTarget, SecretRef, Subscription

SECRET = SecretRef("ns", "tok")
REPO = GitTarget(GitSource("git", "", "http://git.example/r.git"), "", SECRET)
IMAGE = ImageTarget(ImageReference("ghcr.io", "o/app", "v1"), False, SECRET)


class FakeGit:
    def __init__(self, token: str | None, answers: list) -> None:
        self.token, self.answers, self.closed, self.asked = token, answers, False, []

    def default_branch(self) -> str:
        self.asked.append("default")
        return "main"

    def head(self, branch: str) -> str:
        self.asked.append(branch)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeRegistry:
    auth: RegistryAuth | None
    digests: list[str]
    closed: bool = False

    def digest(self, reference: ImageReference) -> str:
        return self.digests.pop(0)

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeCredentials:
    token_value: str = "t1"
    forgotten: list = field(default_factory=list)

    def token(self, ref: SecretRef | None) -> str:
        return self.token_value

    def registry_auth(self, ref: SecretRef | None, registry: str) -> RegistryAuth:
        return RegistryAuth("u", self.token_value)

    def forget(self, ref: SecretRef | None) -> None:
        self.forgotten.append(ref)


@dataclass
class FakePatcher:
    applied: list = field(default_factory=list)

    def apply(self, type_: str, view: FunctionView, observed: str) -> None:
        self.applied.append((type_, view.ref.name, observed))


@dataclass
class FakeEvents:
    seen: list = field(default_factory=list)

    def record(self, function, type_: str, reason: str, message: str) -> None:
        self.seen.append((function.ref.name, reason, message))


@dataclass
class Rig:
    poller: TargetPoller
    book: SubscriptionBook
    opened: list
    credentials: FakeCredentials
    patcher: FakePatcher
    events: FakeEvents


def setup(target, *subscribers: tuple[str, str], answers: list | None = None) -> Rig:
    book = SubscriptionBook()
    for name, type_ in subscribers:
        ref = FunctionRef("ns", name)
        book.subscribe(Subscription(ref, target, 1.0, type_), FunctionView(ref, "uid", "1"))
    opened: list = []
    credentials, patcher, events = FakeCredentials(), FakePatcher(), FakeEvents()

    def open_git(source: GitSource, token: str | None) -> FakeGit:
        opened.append(FakeGit(token, answers if answers is not None else []))
        return opened[-1]

    def open_registry(registry: str, auth: RegistryAuth | None, insecure: bool) -> FakeRegistry:
        opened.append(FakeRegistry(auth, answers if answers is not None else []))
        return opened[-1]

    poller = TargetPoller(book, credentials, patcher, events, Metrics(), "core.openfunction.io/v1beta2",
                          git_factory=open_git, registry_factory=open_registry)
    return Rig(poller, book, opened, credentials, patcher, events)


def test_one_read_of_a_target_is_fanned_out_to_every_subscriber_with_its_type() -> None:
    rig = setup(IMAGE, ("served", "image"), ("built", "source-image"), answers=["sha256:1"])
    rig.poller.poll(IMAGE)
    assert rig.patcher.applied == [("source-image", "built", "sha256:1"), ("image", "served", "sha256:1")]
    assert len(rig.opened) == 1 and rig.opened[0].auth == RegistryAuth("u", "t1")


def test_the_provider_is_kept_across_polls_and_reopened_when_the_token_rotates() -> None:
    rig = setup(REPO, ("a", "source"), answers=["c1", "c2", "c3"])
    rig.poller.poll(REPO)
    rig.poller.poll(REPO)
    assert len(rig.opened) == 1
    rig.credentials.token_value = "t2"
    rig.poller.poll(REPO)
    assert len(rig.opened) == 2 and rig.opened[0].closed and rig.opened[1].token == "t2"


def test_the_default_branch_is_resolved_once_and_again_after_not_found() -> None:
    rig = setup(REPO, ("a", "source"), answers=["c1", NotFound("gone"), "c2", "c3"])
    for _ in range(4):
        rig.poller.poll(REPO)
    assert rig.opened[0].asked == ["default", "main", "main", "default", "main", "main"]
    assert [observed for _, _, observed in rig.patcher.applied] == ["c1", "c2", "c3"]


def test_an_error_is_told_once_per_subscriber_until_it_changes_or_recovers() -> None:
    down, other = Unavailable("server error (HTTP 502)"), Unavailable("no answer within 10s")
    rig = setup(REPO, ("a", "source"), ("b", "source"), answers=[down, down, down, other, "c1", down])
    for _ in range(6):
        rig.poller.poll(REPO)
    assert all(reason == "PollFailed" for _, reason, _ in rig.events.seen)
    told = [(name, message.split(" failed: ", 1)[1]) for name, _, message in rig.events.seen]
    assert told == [("a", str(down)), ("b", str(down)), ("a", str(other)), ("b", str(other)),
                    ("a", str(down)), ("b", str(down))]
    assert rig.credentials.forgotten == [SECRET] * 5
    assert rig.patcher.applied == [("source", "a", "c1"), ("source", "b", "c1")]


def test_a_new_subscriber_of_a_failing_target_is_told_too() -> None:
    rig = setup(REPO, ("a", "source"), answers=[Unavailable("down")] * 2)
    rig.poller.poll(REPO)
    ref = FunctionRef("ns", "late")
    rig.book.subscribe(Subscription(ref, REPO, 1.0, "source"), FunctionView(ref, "uid", "1"))
    rig.poller.poll(REPO)
    assert [name for name, _, _ in rig.events.seen] == ["a", "late"]


def test_forgetting_a_target_closes_its_provider() -> None:
    rig = setup(REPO, ("a", "source"), answers=["c1"])
    rig.poller.poll(REPO)
    rig.poller.forget(REPO)
    assert rig.opened[0].closed
