"""What is polled: a target, shared by every Function that subscribes to it."""

from __future__ import annotations

from dataclasses import dataclass

from providers import GitSource, ImageReference
from revision_controller.function import FunctionRef
from revision_controller.paths import PathFilter


@dataclass(frozen=True)
class SecretRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class GitTarget:
    """A branch of a repository, read with one set of credentials.

    An empty `branch` means the repository's default branch. Credentials are
    part of the identity: two Functions reading one repository with different
    Secrets are two targets, so that neither borrows the other's access.
    """

    source: GitSource
    branch: str
    credentials: SecretRef | None = None

    def describe(self) -> str:
        return f"{self.source.describe()}@{self.branch or '(default branch)'}"


@dataclass(frozen=True)
class ImageTarget:
    """An image reference in a registry, read with one set of registry credentials.

    `insecure` is part of the identity: plain HTTP or unverified TLS is only
    ever used for the Functions that asked for it."""

    reference: ImageReference
    insecure: bool = False
    credentials: SecretRef | None = None

    def describe(self) -> str:
        return f"image {self.reference.describe()}" + (" (insecure registry)" if self.insecure else "")


Target = GitTarget | ImageTarget


@dataclass(frozen=True)
class Subscription:
    """One Function's interest in one target: what it watches and how often, and for a source,
    the paths whose changes rebuild it (None: any change)."""

    function: FunctionRef
    target: Target
    interval: float
    type: str
    sub_path: str = ""
    paths: PathFilter | None = None
