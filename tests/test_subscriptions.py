from providers.base import GitSource
from revision_controller.function import FunctionRef, FunctionView
from revision_controller.subscriptions import SubscriptionBook
from revision_controller.targets import GitTarget, Subscription

SOURCE = GitSource("github", "https://api.github.com", "o/r")
MAIN = GitTarget(SOURCE, "main")
DEV = GitTarget(SOURCE, "dev")


def sub(name: str, target: GitTarget, interval: float) -> tuple[Subscription, FunctionView]:
    ref = FunctionRef("ns", name)
    return Subscription(ref, target, interval, "source"), FunctionView(ref, "uid", "1")


def test_functions_on_one_target_share_it_at_the_shortest_interval() -> None:
    book = SubscriptionBook()
    assert book.subscribe(*sub("a", MAIN, 30)) == {MAIN}
    assert book.subscribe(*sub("b", MAIN, 5)) == {MAIN}
    assert book.targets() == {MAIN}
    assert book.interval(MAIN) == 5
    assert [s.function.name for s, _ in book.subscribers(MAIN)] == ["a", "b"]


def test_an_unchanged_subscription_replans_nothing_but_keeps_the_new_view() -> None:
    book = SubscriptionBook()
    subscription, view = sub("a", MAIN, 5)
    book.subscribe(subscription, view)
    newer = FunctionView(view.ref, "uid", "2", commit_sha="abc")
    assert book.subscribe(subscription, newer) == set()
    assert book.subscribers(MAIN) == [(subscription, newer)]


def test_moving_a_function_replans_both_targets_and_drops_the_empty_one() -> None:
    book = SubscriptionBook()
    book.subscribe(*sub("a", MAIN, 5))
    assert book.subscribe(*sub("a", DEV, 5)) == {MAIN, DEV}
    assert book.interval(MAIN) is None
    assert book.targets() == {DEV}


def test_unsubscribing_the_fastest_function_lengthens_the_interval() -> None:
    book = SubscriptionBook()
    book.subscribe(*sub("slow", MAIN, 60))
    book.subscribe(*sub("fast", MAIN, 2))
    assert book.unsubscribe(FunctionRef("ns", "fast")) == {MAIN}
    assert book.interval(MAIN) == 60
    assert book.unsubscribe(FunctionRef("ns", "fast")) == set()


def test_refresh_ignores_functions_that_are_not_subscribed() -> None:
    book = SubscriptionBook()
    book.refresh(FunctionView(FunctionRef("ns", "ghost"), "uid", "3"))
    assert book.functions() == set()


def test_functions_by_namespace() -> None:
    book = SubscriptionBook()
    book.subscribe(*sub("a", MAIN, 5))
    other = FunctionRef("other", "b")
    book.subscribe(Subscription(other, DEV, 5, "source"), FunctionView(other, "uid", "1"))
    assert book.functions("ns") == {FunctionRef("ns", "a")}
    assert book.functions() == {FunctionRef("ns", "a"), other}


def test_the_version_counts_changes_of_subscriptions_only() -> None:
    book = SubscriptionBook()
    subscription, view = sub("a", MAIN, 5)
    book.subscribe(subscription, view)
    first = book.version
    book.subscribe(subscription, FunctionView(view.ref, "uid", "2"))  # a new view, the same plan
    book.refresh(FunctionView(view.ref, "uid", "3"))
    book.unsubscribe(FunctionRef("ns", "nobody"))
    assert book.version == first
    book.subscribe(*sub("a", MAIN, 10))
    book.unsubscribe(view.ref)
    assert book.version == first + 2
