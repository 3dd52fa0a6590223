"""Fixtures: a running stand-in server and real `kubernetes` clients pointed at it; a forge for
the GitHub, GitLab and Gitee stand-ins, and what each of them must do alike."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from dulwich.objects import Commit, ObjectID, Tree
from dulwich.repo import Repo
from kubernetes import client, config

from providers.base import ChangedFiles, GitProvider, Unavailable
from revision_controller.testing import ApiServer
from revision_controller.testing.forge import Forge, ForgeRepository, ForgeServer


@pytest.fixture
def server() -> Iterator[ApiServer]:
    with ApiServer() as srv:
        yield srv


@pytest.fixture
def api_client(server: ApiServer, tmp_path: Path) -> Iterator[client.ApiClient]:
    path = server.write_kubeconfig(tmp_path / "kubeconfig")
    api_client = config.new_client_from_config(config_file=str(path))
    yield api_client
    api_client.close()


@pytest.fixture
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def coordination(api_client: client.ApiClient) -> client.CoordinationV1Api:
    return client.CoordinationV1Api(api_client)


@pytest.fixture
def forge() -> Iterator[Forge]:
    with Forge() as f:
        yield f


def ls_remote(url: str, home: Path) -> subprocess.CompletedProcess[str]:
    """`git ls-remote url`, with no configuration but `home`'s and never a prompt for credentials."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(["git", "ls-remote", url], env=env, capture_output=True, text=True, timeout=30,
                          check=False)


def assert_git_lists_public_and_private_refs(forge: Forge, server: ForgeServer, home: Path, *, public: str,
                                             private: str, user: str, token: str) -> None:
    """git lists the refs of the `public` repository anonymously, and of the `private` one only
    with `token` granted on it as the password of `user`."""
    public_repository = forge.create_repository(public)
    private_repository = forge.create_repository(private, private=True)
    forge.grant(token, private)
    with_token = server.url.replace("http://", f"http://{user}:{token}@")

    listed = ls_remote(server.clone_url(public), home)
    refused = ls_remote(server.clone_url(private), home)
    allowed = ls_remote(f"{with_token}/{private}.git", home)

    assert f"{public_repository.head()}\trefs/heads/main" in listed.stdout
    assert refused.returncode != 0 and str(private_repository.head()) not in refused.stdout
    assert f"{private_repository.head()}\trefs/heads/main" in allowed.stdout


def assert_provider_recovers_after_faults(provider: GitProvider, repository: ForgeRepository,
                                          faults: int = 1) -> None:
    """The daemon's `provider` finds the stand-in unavailable for each of the `faults` injected,
    then reads the head and the default branch of `repository`."""
    for _ in range(faults):
        with pytest.raises(Unavailable):
            provider.head("main")
    assert provider.head("main") == repository.head()
    assert provider.default_branch() == "main"


def assert_provider_compares_commits(provider: GitProvider, repository: ForgeRepository) -> None:
    """The daemon's `provider` reads from the stand-in which files commits changed, and finds a
    force-pushed branch's new head, or a commit the server does not know, uncertain."""
    base = repository.head()
    assert base is not None
    repository.commit("code", {"a/x.py": "print(1)\n"})
    head = repository.commit("docs", {"README.md": "# changed\n"})

    assert provider.changed_files(base, head) == ChangedFiles(files=("README.md", "a/x.py"))
    assert provider.changed_files(head, head) == ChangedFiles()

    repository.move_branch(base)  # a force push: the branch's new head does not descend from `head`
    rewritten = repository.commit("rewritten", {"b.txt": "b\n"})

    assert provider.changed_files(head, rewritten) == ChangedFiles(
        uncertain=f"the recorded commit {head[:7]} is not an ancestor of the head {rewritten[:7]}: "
                  "history was rewritten")
    assert provider.changed_files("0" * 40, rewritten) == ChangedFiles(
        uncertain="the server does not know the recorded commit 0000000: history was rewritten")


def renaming(repository: ForgeRepository, old: str, new: str) -> str:
    """A commit on the default branch that moves the file `old` to `new`, as `git mv` would."""
    with Repo(str(repository.path)) as repo:
        parent = repo[ObjectID((repository.head() or "").encode())]
        assert isinstance(parent, Commit)
        tree = repo[parent.tree]
        assert isinstance(tree, Tree)
        moved = Tree()
        for entry in tree.items():
            moved.add(new.encode() if entry.path == old.encode() else entry.path, entry.mode, entry.sha)
        commit = Commit()
        commit.tree, commit.parents, commit.message = moved.id, [parent.id], b"rename\n"
        commit.author = commit.committer = parent.author
        commit.author_time = commit.commit_time = parent.commit_time + 1
        commit.author_timezone = commit.commit_timezone = 0
        repo.object_store.add_objects([(moved, None), (commit, None)])
    repository.move_branch(commit.id.decode())
    return commit.id.decode()
