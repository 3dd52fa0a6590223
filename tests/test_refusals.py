"""Refused targets are worth polling again only once their Secret gives something else."""

from __future__ import annotations

from providers.base import GitSource, ImageReference, RegistryAuth
from revision_controller.credentials import CredentialsError
from revision_controller.refusals import RECHECK_SECONDS, Refusals
from revision_controller.targets import GitTarget, ImageTarget, SecretRef

SECRET = SecretRef("ns", "s")
REPO = GitTarget(GitSource("git", "", "https://git.example/r.git"), "main", SECRET)
IMAGE = ImageTarget(ImageReference("ghcr.io", "o/app", "v1"), False, SECRET)


class Secrets:
    def __init__(self) -> None:
        self.token_value: str | Exception = CredentialsError("Secret ns/s not found")
        self.reads = 0

    def token(self, ref: SecretRef | None) -> str:
        self.reads += 1
        if isinstance(self.token_value, Exception):
            raise self.token_value
        return self.token_value

    def registry_auth(self, ref: SecretRef | None, registry: str) -> RegistryAuth:
        return RegistryAuth("u", self.token(ref))

    def forget(self, ref: SecretRef | None) -> None:
        pass


def test_a_missing_secret_that_appears_mends_the_target_and_is_read_at_most_once_an_interval() -> None:
    secrets = Secrets()
    refusals = Refusals(secrets, lambda target: 5.0)
    refusals.refused(REPO, 0.0)
    refusals.refused(IMAGE, 0.0)
    assert refusals.mended(0.0) == []
    reads = secrets.reads
    assert refusals.mended(4.0) == [] and secrets.reads == reads  # not due before its interval
    secrets.token_value = "t"
    assert set(refusals.mended(5.0)) == {REPO, IMAGE}
    assert refusals.mended(60.0) == []


def test_a_long_interval_still_rechecks_the_secret_every_30_seconds() -> None:
    secrets = Secrets()
    refusals = Refusals(secrets, lambda target: 3600.0)
    refusals.refused(REPO, 0.0)
    refusals.mended(0.0)
    secrets.token_value = "t"
    assert refusals.mended(RECHECK_SECONDS - 1) == []
    assert refusals.mended(RECHECK_SECONDS) == [REPO]


def test_a_cleared_target_is_not_told() -> None:
    secrets = Secrets()
    refusals = Refusals(secrets, lambda target: 1.0)
    refusals.refused(REPO, 0.0)
    refusals.cleared(REPO)
    secrets.token_value = "t"
    assert refusals.mended(10.0) == []
