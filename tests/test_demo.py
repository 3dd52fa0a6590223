"""`revision-controller demo`, and `demo --keep`, the playground, each run as its own process."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from kubernetes import client

from revision_controller.function import GROUP, PLURAL
from revision_controller.kube import api_client
from revision_controller.testing.registry import OCI_MANIFEST, require_registry

# Generous for a busy 2-core machine; each test takes a few seconds when it passes.
READY_SECONDS = 90.0
PATCH_SECONDS = 20.0
STOP_SECONDS = 15.0


def test_the_demo_detects_a_commit_and_patches_the_function_quickly() -> None:
    done = subprocess.run([sys.executable, "-m", "revision_controller.cli", "demo"],
                          capture_output=True, text=True, timeout=60, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "source changed from" in output
    assert "status after:" in output and '"build"' not in output.split("status after:")[1].splitlines()[0]
    assert "Event Normal SourceChanged" in output
    seconds = float(output.split("[demo] done in ")[1].split("s")[0])
    assert seconds < 30
    assert "[playground]" not in output


class Demo:
    """`revision-controller demo ARGS` with a temporary folder of its own, its output read as it comes."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.tmp = tmp_path / "tmp"
        self.tmp.mkdir()
        self.process = subprocess.Popen([sys.executable, "-m", "revision_controller.cli", "demo", *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, "TMPDIR": str(self.tmp)})
        self._lines: list[str] = []
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._arrived:
                self._lines.append(line.rstrip("\n"))
                self._arrived.notify_all()

    @property
    def output(self) -> str:
        with self._arrived:
            return "\n".join(self._lines)

    def wait_for_line(self, pattern: str, seconds: float) -> re.Match[str]:
        """The first line matching `pattern`, waiting for it to be printed."""
        deadline = time.monotonic() + seconds
        with self._arrived:
            while True:
                for line in self._lines:
                    if found := re.search(pattern, line):
                        return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    pytest.fail(f"no line matching {pattern!r} within {seconds}s:\n" + "\n".join(self._lines))
                self._arrived.wait(min(left, 0.5))

    def stop(self, signum: int) -> int:
        """Send `signum`; the exit status, within STOP_SECONDS."""
        self.process.send_signal(signum)
        status = self.process.wait(STOP_SECONDS)
        self._reader.join(STOP_SECONDS)
        return status

    def end(self) -> None:
        """Stopped as the user would, so that it stops what it started (a registry process);
        killed only if that fails."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def playground(tmp_path: Path) -> Iterator[Demo]:
    demo = Demo(tmp_path, "--keep")
    yield demo
    demo.end()


def git(*args: str, home: Path) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_TERMINAL_PROMPT": "0"}
    done = subprocess.run(["git", *args], env=env, timeout=30, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"git {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def function(functions: client.CustomObjectsApi, name: str) -> dict:
    found: dict = functions.get_namespaced_custom_object(GROUP, "v1beta2", "default", PLURAL, name)
    return found


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds}s: {what}")
        time.sleep(0.2)


@pytest.mark.skipif(shutil.which("git") is None, reason="the git CLI is not installed")
def test_the_playground_takes_a_git_push_then_ctrl_c_removes_everything(playground: Demo, tmp_path: Path) -> None:
    started = time.monotonic()
    playground.wait_for_line(r"^\[playground\] Ready\. Ctrl-C", READY_SECONDS)
    ready = time.monotonic() - started
    kubeconfig = Path(playground.wait_for_line(r"^\[playground\] kubeconfig: (\S+)$", 0)[1])
    url = playground.wait_for_line(r"^\[playground\] git repository: (\S+) ", 0)[1]
    temporary = playground.wait_for_line(r"^\[playground\] temporary files: (.+)$", 0)[1].split()
    assert f"--kubeconfig {kubeconfig} get fn -w" in playground.output
    assert ("annotate --overwrite fn demo-function openfunction.io/revision-controller-requested-at="
            in playground.output)
    functions = client.CustomObjectsApi(api_client(str(kubeconfig)))

    clone = tmp_path / "clone"
    git("clone", "--quiet", url, str(clone), home=tmp_path)
    (clone / "hello" / "handler.go").write_text("package hello // v3\n")
    git("-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qam", "v3",
        home=tmp_path)
    pushed = git("-C", str(clone), "rev-parse", "HEAD", home=tmp_path).strip()
    git("-C", str(clone), "push", "--quiet", "origin", "main", home=tmp_path)

    # The daemon records the pushed commit; OpenFunction's stand-in then rebuilds the Function.
    def rebuilt_from_the_push() -> bool:
        status = function(functions, "demo-function").get("status") or {}
        return (status.get("sources") == [{"name": "default", "git": {"commitSha": pushed}}]
                and (status.get("build") or {}).get("state") == "Succeeded")
    wait_for(rebuilt_from_the_push, PATCH_SECONDS, f"demo-function rebuilt from {pushed}")

    before_stop = time.monotonic()
    assert playground.stop(signal.SIGINT) == 0, playground.output
    print(f"playground ready in {ready:.1f}s, stopped in {time.monotonic() - before_stop:.1f}s")
    assert temporary and not any(Path(path).exists() for path in temporary)
    assert list(playground.tmp.iterdir()) == [], "the playground left files behind"
    assert "[demo] stopped: everything the demo started is stopped and its files removed" in playground.output


def test_the_playground_redeploys_on_an_image_push_and_stops_on_sigterm(playground: Demo) -> None:
    require_registry()
    found = playground.wait_for_line(r"^\[playground\] image registry: (\S+)", READY_SECONDS)
    playground.wait_for_line(r"^\[playground\] Ready\.", READY_SECONDS)
    kubeconfig = playground.wait_for_line(r"^\[playground\] kubeconfig: (\S+)$", 0)[1]
    functions = client.CustomObjectsApi(api_client(kubeconfig))

    digest = push_image(f"http://{found[1]}", "demo-function", "latest")

    def served_again() -> bool:
        status = function(functions, "demo-image-function").get("status") or {}
        return ((status.get("revision") or {}).get("imageDigest") == digest
                and (status.get("serving") or {}).get("state") == "Running")
    wait_for(served_again, PATCH_SECONDS, f"demo-image-function served from {digest}")

    assert playground.stop(signal.SIGTERM) == 0, playground.output
    assert list(playground.tmp.iterdir()) == [], "the playground left files behind"


def test_the_printed_kubectl_commands_work_as_pasted(playground: Demo) -> None:
    found = playground.wait_for_line(r"^\[playground\] kubectl: (\S+)", READY_SECONDS)
    playground.wait_for_line(r"^\[playground\] Ready\.", READY_SECONDS)
    if not Path(found[1]).is_file():
        pytest.skip(f"no kubectl: {found[0]}")
    printed = [line.strip() for line in playground.output.splitlines() if line.startswith(f"  {found[1]} ")]
    (watch,) = [line for line in printed if line.endswith(" get fn -w")]
    (describe,) = [line for line in printed if " describe fn demo-function" in line]
    (annotate,) = [line for line in printed if " annotate --overwrite " in line]
    (said,) = [line for line in printed if " get events " in line]

    playground.wait_for_line(r"OpenFunction's part: demo-function rebuilt", PATCH_SECONDS)
    listed = shell(watch.removesuffix(" -w"))
    described = shell(describe)
    told = shell(said)
    shell(annotate)

    assert re.search(r"^demo-function +Succeeded ", listed, re.MULTILINE), listed
    assert re.search(r"Normal +SourceChanged .* source changed from", described), described
    assert re.search(r"Normal +SourceChanged +function/demo-function +source changed from", told), told
    playground.wait_for_line(r"Function default/demo-function asks for a check now", PATCH_SECONDS)


def shell(line: str) -> str:
    """`line` as a user's shell runs it once pasted; its output."""
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")})
    assert done.returncode == 0, f"{line}:\n{done.stdout}{done.stderr}"
    return done.stdout


def push_image(registry: str, name: str, tag: str) -> str:
    """Pushes an image with an empty config and no layers, as any client would over the registry
    API; its manifest digest."""
    config = b"{}"
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    with httpx.Client(base_url=registry, timeout=10.0) as http:
        upload = http.post(f"/v2/{name}/blobs/uploads/")
        assert upload.status_code == 202, upload.text
        location = httpx.URL(registry).join(upload.headers["Location"])
        stored = http.put(location.copy_merge_params({"digest": config_digest}), content=config,
                          headers={"Content-Type": "application/octet-stream"})
        assert stored.status_code == 201, stored.text
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [],
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": config_digest, "size": len(config)}}).encode()
        answer = http.put(f"/v2/{name}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST})
        assert answer.status_code == 201, answer.text
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_during_the_loop_stops_it_and_removes_everything(signum: int, tmp_path: Path) -> None:
    demo = Demo(tmp_path)  # no --keep: the loop as `make demo` runs it
    try:
        # The daemon is starting now; the loop then waits at least one polling interval (2s).
        demo.wait_for_line(r"^\[demo\] Function default/demo-function created", READY_SECONDS)
        assert demo.stop(signum) == 128 + signum, demo.output
    finally:
        demo.end()
    assert "[demo] interrupted: everything the demo started is stopped" in demo.output
    assert "[demo] done in" not in demo.output
    assert list(demo.tmp.iterdir()) == [], "the demo left files behind"
