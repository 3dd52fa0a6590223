"""The Controller's decisions on watch events, with recording stand-ins for its I/O."""

from dataclasses import dataclass, field

from revision_controller import daemon as daemon_module
from revision_controller.daemon import Controller, DaemonConfig
from revision_controller.events import InvolvedFunction
from revision_controller.function import FunctionRef, view_of
from revision_controller.params import PARAMS_ANNOTATION, REQUESTED_AT_ANNOTATION, SWITCH_ANNOTATION
from revision_controller.prompts import Prompts
from revision_controller.subscriptions import SubscriptionBook
from revision_controller.targets import Target


@dataclass
class RecordedEvents:
    seen: list[tuple[str, str, str]] = field(default_factory=list)
    refused: int = 0  # how many of the next Events the API server does not take

    def record(self, function: InvolvedFunction, type_: str, reason: str, message: str) -> bool:
        self.seen.append((str(function.ref), type_, reason))
        self.refused, taken = max(self.refused - 1, 0), not self.refused
        return taken


@dataclass
class RecordedPlans:
    plans: list[tuple[str, float | None]] = field(default_factory=list)
    woken: list[str] = field(default_factory=list)
    now: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def replan(self, target: Target, interval: float | None) -> None:
        self.plans.append((target.source.repository, interval))

    def wake(self, target: Target) -> None:
        self.woken.append(target.source.repository)

    def poll_now(self, target: Target) -> bool:
        self.now.append(target.source.repository)
        return True

    def unsubscribed(self, ref: FunctionRef) -> None:
        self.dropped.append(str(ref))


@dataclass
class Versioned:
    api_version: str = "core.openfunction.io/v1beta2"


def controller() -> tuple[Controller, RecordedEvents, RecordedPlans, SubscriptionBook]:
    events, plans, book = RecordedEvents(), RecordedPlans(), SubscriptionBook()
    prompts = Prompts(book, plans.poll_now, lambda: True, lambda ref, value: None)
    return (Controller(DaemonConfig(), Versioned(), events, book, plans, prompts, plans.unsubscribed),
            events, plans, book)


def fn(name: str, params: str = "", switch: str = "enable", repo: str = "o/r", rv: str = "1",
       requested_at: str = "") -> object:
    annotations = {SWITCH_ANNOTATION: switch, PARAMS_ANNOTATION: params}
    if requested_at:
        annotations[REQUESTED_AT_ANNOTATION] = requested_at
    return view_of({
        "metadata": {"namespace": "ns", "name": name, "resourceVersion": rv, "annotations": annotations},
        "spec": {"build": {"srcRepo": {"url": f"https://github.com/{repo}", "revision": "main"}}}})


def test_functions_sharing_a_target_replan_it_at_the_shortest_interval() -> None:
    control, _, plans, _ = controller()
    control.changed(fn("a", "polling-interval: 1m"))
    control.changed(fn("b", "polling-interval: 10s"))
    control.changed(fn("b", "polling-interval: 10s", rv="2"))  # a status update: nothing to re-plan
    assert plans.plans == [("o/r", 60), ("o/r", 10)]


def test_a_change_to_what_a_function_asks_wakes_its_target_and_a_status_update_does_not() -> None:
    control, _, plans, _ = controller()
    control.changed(fn("a", "polling-interval: 1m"))
    control.changed(fn("a", "polling-interval: 1m", rv="2"))  # OpenFunction wrote its status
    assert plans.woken == ["o/r"]
    control.changed(fn("a", "polling-interval: 30s", rv="3"))
    assert plans.woken == ["o/r", "o/r"]


def test_disabling_or_deleting_replans_and_the_last_one_out_stops_the_target() -> None:
    control, _, plans, book = controller()
    control.changed(fn("a", "polling-interval: 1m"))
    control.changed(fn("b", "polling-interval: 10s"))
    control.changed(fn("b", switch="disable"))
    control.deleted(FunctionRef("ns", "a"))
    assert plans.plans[-2:] == [("o/r", 60), ("o/r", None)]
    assert book.targets() == set()
    assert plans.dropped == ["ns/b", "ns/a"]  # so the poller forgets what it told them


def test_a_notice_is_told_once_until_it_changes() -> None:
    control, events, _, _ = controller()
    for rv in ("1", "2", "3"):
        control.changed(fn("a", "polling-interval: soon", rv=rv))
    control.changed(fn("a", "type: nope", rv="4"))
    control.changed(fn("a", "pollingInterval: 1m", rv="5"))
    control.changed(fn("a", "pollingInterval: 1m", rv="6"))
    assert events.seen == [("ns/a", "Warning", "InvalidParameters"),
                           ("ns/a", "Warning", "InvalidParameters"),
                           ("ns/a", "Warning", "UnknownParameters")]


def test_a_fixed_function_that_breaks_again_is_told_again() -> None:
    control, events, _, _ = controller()
    control.changed(fn("a", "polling-interval: soon"))
    control.changed(fn("a", "polling-interval: 1m"))
    control.changed(fn("a", "polling-interval: soon"))
    assert [reason for _, _, reason in events.seen] == ["InvalidParameters", "InvalidParameters"]


def test_switched_off_functions_say_nothing_and_are_not_remembered() -> None:
    control, events, plans, book = controller()
    for n in range(100):
        control.changed(fn(f"off-{n}", switch="disable"))
    assert events.seen == [] and plans.plans == [] and book.functions() == set()


def test_a_resync_forgets_functions_deleted_while_away() -> None:
    control, _, plans, book = controller()
    control.changed(fn("kept", repo="o/kept"))
    control.changed(fn("gone", repo="o/gone"))
    control.resynced(None, [fn("kept", repo="o/kept", rv="9")])
    assert book.functions() == {FunctionRef("ns", "kept")}
    assert ("o/gone", None) in plans.plans


def test_a_function_whose_planning_fails_gets_its_own_event_and_the_others_go_on(monkeypatch) -> None:
    control, events, plans, _ = controller()
    real = daemon_module.plan_function

    def planner(view, interval):
        if view.ref.name == "bad":
            raise RecursionError("too deep")
        return real(view, interval)

    monkeypatch.setattr(daemon_module, "plan_function", planner)
    control.changed(fn("bad"))
    control.changed(fn("good", "polling-interval: 1m"))
    assert events.seen == [("ns/bad", "Warning", "InvalidParameters")]
    assert plans.plans == [("o/r", 60)]


def test_a_new_requested_at_value_polls_the_target_now_and_the_same_value_again_does_not() -> None:
    control, _, plans, _ = controller()
    control.changed(fn("a", requested_at="1"))  # first sight: the target is polled soon anyway
    control.changed(fn("a", requested_at="2", rv="2"))
    control.changed(fn("a", requested_at="2", rv="3"))  # a status update keeps the value
    control.changed(fn("a", rv="4"))  # the annotation removed: nothing to check
    control.changed(fn("a", requested_at="3", rv="5"))
    assert plans.now == ["o/r", "o/r"]


def test_a_notice_the_api_server_did_not_take_is_told_at_the_next_change() -> None:
    control, events, _, _ = controller()
    events.refused = 1
    control.changed(fn("a", "polling-interval: soon", rv="1"))
    control.changed(fn("a", "polling-interval: soon", rv="2"))
    control.changed(fn("a", "polling-interval: soon", rv="3"))
    assert events.seen == [("ns/a", "Warning", "InvalidParameters")] * 2
