"""`revision-controller check`: read Functions, poll each one's target once, print what the daemon
would do now. It reads (files, stdin, a cluster's Functions and Secrets, git servers and
registries) and never writes to a cluster.

The polling is the daemon's own: the same providers with their defaults, the same comparison of
changed files, the same decision; check.py words the result.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from kubernetes import client
from kubernetes.config import ConfigException

from providers import ChangedFiles, ProviderError, RegistryAuth, open_provider, open_registry
from revision_controller.check import (
    Assessment,
    Observation,
    Report,
    as_json,
    as_text,
    assess,
    exit_code,
    needs_comparison,
    report,
)
from revision_controller.comparisons import Comparisons
from revision_controller.credentials import MAX_TOKEN_CHARACTERS, CredentialsError, CredentialStore
from revision_controller.function import view_of
from revision_controller.kube import api_client
from revision_controller.manifests import (
    ClusterError,
    Document,
    InputError,
    Skipped,
    functions_in,
    is_function_ref,
    read_function,
    read_input,
)
from revision_controller.targets import GitTarget, ImageTarget, SecretRef, Target

PROGRAM = "revision-controller check"


@dataclass(frozen=True)
class CheckOptions:
    inputs: tuple[str, ...]
    kubeconfig: str | None = None
    function_version: str = "v1beta2"
    default_interval: float = 5.0
    offline: bool = False
    token_file: str = ""
    output: str = "text"


class Keys:
    """Credentials as `check` has them: the git token from --token-file, else the Function's Secret
    when a cluster is given; registry auths from a cluster's Secrets only, else anonymous."""

    def __init__(self, store: CredentialStore | None, token: str | None) -> None:
        self._store = store
        self._token = token

    def token(self, ref: SecretRef | None) -> str | None:
        if self._token is not None:
            return self._token
        return self._store.token(ref) if self._store else None

    def registry_auth(self, ref: SecretRef | None, registry: str) -> RegistryAuth | None:
        return self._store.registry_auth(ref, registry) if self._store else None


def run_check(options: CheckOptions, stdin: BinaryIO | None = None, stdout: TextIO | None = None,
              stderr: TextIO | None = None) -> int:
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        api = _cluster(options.kubeconfig)
        token = read_token(options.token_file) if options.token_file else None
        documents, skipped = gather(options, api, stdin or sys.stdin.buffer)
    except InputError as error:
        print(f"{PROGRAM}: {error}", file=stderr)
        return 2
    except ClusterError as error:
        print(f"{PROGRAM}: {error}", file=stderr)
        return 1
    poller = Poller(Keys(CredentialStore(api) if api else None, token))
    reports = [check_function(document, options, poller) for document in documents]
    _print(options.output, reports, skipped, stdout, stderr)
    return exit_code(reports)


def _cluster(kubeconfig: str | None) -> client.ApiClient | None:
    if not kubeconfig:
        return None
    try:
        return api_client(kubeconfig)
    except (ConfigException, OSError) as error:
        raise InputError(f"--kubeconfig {kubeconfig}: cannot be used: {error}") from None


def read_token(path: str) -> str:
    """The git token in a file: one line of printable ASCII. The message never quotes it."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_TOKEN_CHARACTERS + 1)
    except OSError as error:
        raise InputError(f"--token-file {path}: cannot be read: {error.strerror or error}") from None
    token = data.decode("ascii", errors="replace").strip()
    if not token or len(token) > MAX_TOKEN_CHARACTERS or not all("!" <= c <= "~" for c in token):
        raise InputError(f"--token-file {path}: must hold one token, a line of printable ASCII without spaces")
    return token


def gather(options: CheckOptions, api: client.ApiClient | None,
           stdin: BinaryIO) -> tuple[list[Document], list[Skipped]]:
    """Every Function of the inputs, in order, and the documents that were not Functions."""
    documents: list[Document] = []
    skipped: list[Skipped] = []
    for argument in options.inputs:
        if api is not None and is_function_ref(argument):
            documents.append(read_function(api, options.function_version, argument))
            continue
        if api is None and is_function_ref(argument):
            raise InputError(f"{argument}: no such file; to read the Function {argument} from a cluster, "
                             "give --kubeconfig")
        found, passed = functions_in(read_input(argument, stdin), "stdin" if argument == "-" else argument)
        documents += found
        skipped += passed
    if not documents:
        raise InputError("no Function in the input: give files holding `kind: Function` documents, or "
                         "NAMESPACE/NAME with --kubeconfig")
    return documents, skipped


def check_function(document: Document, options: CheckOptions, poller: Poller) -> Report:
    assessment = assess(view_of(document.obj), document.source, options.default_interval)
    if options.offline or not assessment.watched:
        return report(assessment)
    try:
        return report(assessment, poller.observe(assessment))
    except Unreadable as error:
        return report(assessment, error=str(error))


class Unreadable(Exception):
    """A target could not be read; the message says why, as the daemon's PollFailed Event would."""


class Poller:
    """Polls as the daemon does, with the same providers: each target once for every Function on
    it, and each comparison of a target's commits once."""

    def __init__(self, keys: Keys) -> None:
        self._keys = keys
        self._polled: dict[Target, str | Unreadable] = {}
        self._comparisons = Comparisons()

    def observe(self, assessment: Assessment) -> Observation:
        """The head or digest now, and the files changed when the Function's paths need them."""
        assert assessment.subscription is not None
        target = assessment.subscription.target
        if target not in self._polled:
            self._polled[target] = self._poll(target)
        observed = self._polled[target]
        if isinstance(observed, Unreadable):
            raise Unreadable(str(observed))
        if not isinstance(target, GitTarget) or not needs_comparison(assessment, observed):
            return Observation(observed)
        return Observation(observed, self._comparisons.changed(
            target, assessment.view.commit_sha, observed, lambda base, head: self._compare(target, base, head)))

    def _poll(self, target: Target) -> str | Unreadable:
        try:
            return self._digest(target) if isinstance(target, ImageTarget) else self._head(target)
        except (ProviderError, CredentialsError) as error:
            return Unreadable(str(error))
        except Exception as error:  # noqa: BLE001 - whatever one target does is its Functions' failure
            return Unreadable(f"unexpected {type(error).__name__} while polling; this is a bug in the "
                              "revision controller: please report it")

    def _head(self, target: GitTarget) -> str:
        provider = open_provider(target.source, self._keys.token(target.credentials))
        try:
            return provider.head(target.branch or provider.default_branch())
        finally:
            provider.close()

    def _digest(self, target: ImageTarget) -> str:
        registry = target.reference.registry
        provider = open_registry(registry, self._keys.registry_auth(target.credentials, registry), target.insecure)
        try:
            return provider.digest(target.reference)
        finally:
            provider.close()

    def _compare(self, target: GitTarget, base: str, head: str) -> ChangedFiles:
        try:
            token = self._keys.token(target.credentials)
        except CredentialsError as error:
            raise ProviderError(str(error)) from None
        provider = open_provider(target.source, token)
        try:
            return provider.changed_files(base, head)
        finally:
            provider.close()


def _print(output: str, reports: list[Report], skipped: list[Skipped], stdout: TextIO, stderr: TextIO) -> None:
    notes = [f"skipped {item.source}: {item.why}" for item in skipped]
    if output == "json":
        for note in notes:
            print(note, file=stderr)
        print(as_json(reports), file=stdout)
        return
    for note in notes:
        print(note, file=stdout)
    for item in reports:
        print("\n".join(as_text(item)), file=stdout)
