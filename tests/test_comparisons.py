from providers import ChangedFiles, GitSource, Unavailable
from revision_controller.comparisons import Comparisons
from revision_controller.targets import GitTarget

TARGET = GitTarget(GitSource("git", "", "https://git.example/r.git"), "main")
OTHER = GitTarget(GitSource("git", "", "https://git.example/other.git"), "main")
BASE, HEAD = "a" * 40, "b" * 40


class Provider:
    def __init__(self, answer: ChangedFiles | Exception) -> None:
        self.answer = answer
        self.asked: list[tuple[str, str]] = []

    def changed_files(self, base: str, head: str) -> ChangedFiles:
        self.asked.append((base, head))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_one_comparison_per_target_base_and_head_is_shared_by_every_function() -> None:
    certainty: list[bool] = []
    comparisons, provider = Comparisons(on_answer=certainty.append), Provider(ChangedFiles(("a/x.py",)))
    answers = [comparisons.changed(TARGET, BASE, HEAD, provider.changed_files) for _ in range(3)]
    assert answers == [ChangedFiles(("a/x.py",))] * 3 and provider.asked == [(BASE, HEAD)]
    comparisons.changed(TARGET, "c" * 40, HEAD, provider.changed_files)
    comparisons.changed(OTHER, BASE, HEAD, provider.changed_files)
    assert len(provider.asked) == 3 and certainty == [True] * 3


def test_a_failed_comparison_is_uncertain_and_asked_again_next_time() -> None:
    comparisons, provider = Comparisons(), Provider(Unavailable("git.example timed out after 10s"))
    for _ in range(2):
        changed = comparisons.changed(TARGET, BASE, HEAD, provider.changed_files)
        assert changed.uncertain == "which files changed could not be read: git.example timed out after 10s"
    assert len(provider.asked) == 2


def test_an_uncertain_answer_is_not_kept() -> None:
    certainty: list[bool] = []
    comparisons = Comparisons(on_answer=certainty.append)
    provider = Provider(ChangedFiles(uncertain="history was rewritten"))
    comparisons.changed(TARGET, BASE, HEAD, provider.changed_files)
    comparisons.changed(TARGET, BASE, HEAD, provider.changed_files)
    assert len(provider.asked) == 2 and certainty == [False, False]


def test_an_unexpected_error_is_uncertain_and_reported_as_a_bug() -> None:
    changed = Comparisons().changed(TARGET, BASE, HEAD, Provider(KeyError("x")).changed_files)
    assert "unexpected KeyError, a bug" in changed.uncertain


def test_a_recorded_commit_that_is_no_sha_is_never_sent_to_the_server() -> None:
    provider = Provider(ChangedFiles())
    changed = Comparisons().changed(TARGET, "main; rm -rf /", HEAD, provider.changed_files)
    assert changed.uncertain == "the recorded commit 'main; rm -rf /' is not a commit SHA"
    assert provider.asked == []


def test_the_oldest_answers_go_first_and_forget_drops_a_targets_answers() -> None:
    comparisons, provider = Comparisons(kept=2), Provider(ChangedFiles(("x",)))
    for base in ("1", "2", "3"):
        comparisons.changed(TARGET, base * 40, HEAD, provider.changed_files)
    comparisons.changed(TARGET, "1" * 40, HEAD, provider.changed_files)
    assert len(provider.asked) == 4
    comparisons.forget(TARGET)
    comparisons.changed(TARGET, "3" * 40, HEAD, provider.changed_files)
    assert len(provider.asked) == 5

