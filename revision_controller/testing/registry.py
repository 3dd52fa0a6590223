"""The real CNCF distribution registry (Debian's docker-registry) on loopback, for tests.

Runs `docker-registry serve` on 127.0.0.1 with an ephemeral port and storage in a
temporary directory, and pushes images to it over its HTTP API, no Docker engine:

    with Registry(auth="token", tls=True, username="u", password="p") as registry:
        registry.host                                  # 127.0.0.1:PORT
        registry.push_image("app", "v1", content=b"one")  # the manifest digest
        registry.push_index("multi", "v1", platforms=["linux/amd64", "linux/arm64"])
        registry.token_server.requests                 # with auth="token"

`auth` is "none" (anonymous), "htpasswd" (Basic, bcrypt entries) or "token" (Bearer
tokens from a `TokenServer`); `tls` serves a self-signed certificate for 127.0.0.1.
Tests call `require_registry()` first, which skips them when the binary is missing,
or fails them when REVISION_CONTROLLER_REQUIRE_REGISTRY=1 says it must be there.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import httpx
import yaml

from revision_controller.testing.service import Service
from revision_controller.testing.tokenserver import TokenServer, self_signed

BINARY = "docker-registry"
DEFAULT_BINARY_PATH = "/usr/bin/docker-registry"
REQUIRE_ENV = "REVISION_CONTROLLER_REQUIRE_REGISTRY"
AUTH_MODES = ("none", "htpasswd", "token")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_MEDIA_TYPES = {
    OCI_MANIFEST: ("application/vnd.oci.image.config.v1+json", "application/vnd.oci.image.layer.v1.tar+gzip"),
    DOCKER_MANIFEST: ("application/vnd.docker.container.image.v1+json",
                      "application/vnd.docker.image.rootfs.diff.tar.gzip"),
}
_START_SECONDS = 15.0
_STOP_SECONDS = 5.0
_START_ATTEMPTS = 3
_MISSING = ("docker-registry not installed: run `make test`, which installs it with apt-get, "
            "or apt-get install docker-registry")


def registry_binary() -> str | None:
    """The registry binary: on PATH, or where Debian installs it; None when missing."""
    found = shutil.which(BINARY)
    if found:
        return found
    return DEFAULT_BINARY_PATH if os.access(DEFAULT_BINARY_PATH, os.X_OK) else None


def require_registry() -> str:
    """The registry binary, for a test that needs it. Skips the test loudly when it is
    missing, and fails it instead when REVISION_CONTROLLER_REQUIRE_REGISTRY=1 (as in CI)."""
    import pytest  # only tests call this; the module stays importable without pytest

    binary = registry_binary()
    if binary:
        return binary
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{_MISSING} ({REQUIRE_ENV}=1 forbids skipping)")
    pytest.skip(_MISSING)


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor, as manifests and indexes list their parts."""

    media_type: str
    digest: str
    size: int
    platform: dict[str, str] | None = None

    def as_json(self) -> dict[str, object]:
        described: dict[str, object] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        return described | ({"platform": self.platform} if self.platform else {})


class RegistryError(RuntimeError):
    """The registry did not start, or refused something the test equipment asked of it."""


class Registry(Service):
    """One registry process on loopback, with its storage, stopped and removed on exit."""

    def __init__(self, auth: str = "none", tls: bool = False, username: str = "u",
                 password: str = "p", *, anonymous_pull: bool = False) -> None:
        if auth not in AUTH_MODES:
            raise ValueError(f"auth must be one of {AUTH_MODES}, not {auth!r}")
        self.auth = auth
        self.tls = tls
        self.username = username
        self._password = password
        self._anonymous_pull = anonymous_pull
        self.token_server: TokenServer | None = None
        self._root: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._port = 0
        self._pusher: httpx.Client | None = None

    def start(self) -> None:
        binary = registry_binary()
        if binary is None:
            raise RegistryError(_MISSING)
        self._root = Path(tempfile.mkdtemp(prefix="registry-"))
        try:
            if self.auth == "token":
                self.token_server = TokenServer(self.username, self._password,
                                                anonymous_pull=self._anonymous_pull)
                self.token_server.start()
            self._launch(binary)
        except BaseException:
            self.stop()
            raise
        self._pusher = httpx.Client(base_url=self.url, verify=False, timeout=10.0)

    def stop(self) -> None:
        if self._pusher is not None:
            self._pusher.close()
        if self._process is not None:
            _end(self._process)
        if self.token_server is not None:
            self.token_server.stop()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
        self._pusher = self._process = self.token_server = self._root = None

    @property
    def host(self) -> str:
        """What goes in an image reference: `127.0.0.1:PORT`."""
        assert self._process is not None, "the registry is not running"
        return f"127.0.0.1:{self._port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def log(self) -> str:
        """What the registry wrote to its log so far."""
        assert self._root is not None, "the registry is not running"
        return (self._root / "registry.log").read_text(errors="replace")

    def reference(self, name: str, tag: str = "latest") -> str:
        return f"{self.host}/{name}:{tag}"

    def secret_data(self, username: str | None = None, password: str | None = None) -> dict[str, str]:
        """The `.data` of a kubernetes.io/dockerconfigjson Secret with credentials for this
        registry: the registry's own unless others are given."""
        user = self.username if username is None else username
        secret = self._password if password is None else password
        auth = base64.b64encode(f"{user}:{secret}".encode()).decode()
        config = json.dumps({"auths": {self.host: {"auth": auth}}}).encode()
        return {".dockerconfigjson": base64.b64encode(config).decode()}

    def push_image(self, name: str, tag: str, content: bytes = b"content", *,
                   media_type: str = OCI_MANIFEST) -> str:
        """Pushes a one-layer image (`content` in a file in the layer) under `tag`; returns
        the manifest digest. `media_type` is OCI_MANIFEST or DOCKER_MANIFEST."""
        return self._push_manifest(name, tag, media_type, self._image_manifest(name, content, media_type))

    def push_index(self, name: str, tag: str, platforms: list[str]) -> str:
        """Pushes one image per `os/architecture` platform, then an OCI index of them under
        `tag`; returns the index digest."""
        manifests = []
        for platform in platforms:
            body = self._image_manifest(name, platform.encode(), OCI_MANIFEST)
            digest = self._push_manifest(name, _digest(body), OCI_MANIFEST, body)
            system, _, architecture = platform.partition("/")
            manifests.append(Descriptor(OCI_MANIFEST, digest, len(body),
                                        {"os": system, "architecture": architecture}).as_json())
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        return self._push_manifest(name, tag, OCI_INDEX, _canonical(index))

    def stored_blob(self, digest: str) -> bytes:
        """The exact bytes the registry stores for `digest` (a manifest, index or blob)."""
        assert self._root is not None, "the registry is not running"
        algorithm, _, hexadecimal = digest.partition(":")
        path = self._root / "storage/docker/registry/v2/blobs" / algorithm / hexadecimal[:2] / hexadecimal / "data"
        return path.read_bytes()

    def _image_manifest(self, name: str, content: bytes, media_type: str) -> bytes:
        config_type, layer_type = _MEDIA_TYPES[media_type]
        layer = _layer(content)
        config = _canonical({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": [_digest(gzip.decompress(layer))]}})
        manifest = {"schemaVersion": 2, "mediaType": media_type,
                    "config": self._push_blob(name, config_type, config).as_json(),
                    "layers": [self._push_blob(name, layer_type, layer).as_json()]}
        return _canonical(manifest)

    def _push_blob(self, name: str, media_type: str, blob: bytes) -> Descriptor:
        pusher = self._authorised_pusher(name)
        started = _expect(pusher.post(f"/v2/{name}/blobs/uploads/"), 202, "start a blob upload")
        location = httpx.URL(self.url).join(started.headers["Location"])
        digest = _digest(blob)
        _expect(pusher.put(location.copy_merge_params({"digest": digest}), content=blob,
                           headers={"Content-Type": "application/octet-stream"}), 201, "upload a blob")
        return Descriptor(media_type, digest, len(blob))

    def _push_manifest(self, name: str, reference: str, media_type: str, body: bytes) -> str:
        answer = _expect(self._authorised_pusher(name).put(
            f"/v2/{name}/manifests/{reference}", content=body, headers={"Content-Type": media_type}),
            201, "store a manifest")
        digest = answer.headers["Docker-Content-Digest"]
        if digest != _digest(body):
            raise RegistryError(f"the registry stored manifest {digest}, not {_digest(body)}")
        return digest

    def _authorised_pusher(self, name: str) -> httpx.Client:
        assert self._pusher is not None, "the registry is not running"
        if self.auth == "htpasswd":
            self._pusher.auth = httpx.BasicAuth(self.username, self._password)
        elif self.token_server is not None:
            token = self.token_server.issue(self.username, [f"repository:{name}:pull,push"], may_push=True)
            self._pusher.headers["Authorization"] = f"Bearer {token}"
        return self._pusher

    def _launch(self, binary: str) -> None:
        """Starts the registry on a free port; another try when a racing process took the port."""
        assert self._root is not None
        for _ in range(_START_ATTEMPTS):
            self._port = _free_port()
            config = self._root / "config.yml"
            config.write_text(yaml.safe_dump(self._config()))
            with open(self._root / "registry.log", "wb") as log:
                self._process = subprocess.Popen([binary, "serve", str(config)], stdout=log,
                                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if self._ready():
                return
            _end(self._process)
            if "address already in use" not in self.log:
                break
        raise RegistryError(f"docker-registry did not start; its log:\n{self.log[-4000:]}")

    def _ready(self) -> bool:
        """Whether /v2/ answered before the deadline; False as soon as the process exits."""
        assert self._process is not None
        deadline = time.monotonic() + _START_SECONDS
        with httpx.Client(verify=False, timeout=1.0) as probe:
            while time.monotonic() < deadline and self._process.poll() is None:
                try:
                    if probe.get(f"{self.url}/v2/").status_code in (200, 401):
                        return True
                except httpx.TransportError:
                    pass
                time.sleep(0.02)
        return False

    def _config(self) -> dict[str, object]:
        assert self._root is not None
        http: dict[str, object] = {"addr": f"127.0.0.1:{self._port}", "secret": secrets.token_hex(16)}
        if self.tls:
            http["tls"] = self._write_tls_files()
        return {"version": 0.1,
                "log": {"level": "warn", "accesslog": {"disabled": True}},
                "storage": {"filesystem": {"rootdirectory": str(self._root / "storage")},
                            "delete": {"enabled": True},
                            "maintenance": {"uploadpurging": {"enabled": False}}},
                "http": http,
                **({"auth": self._auth_config()} if self.auth != "none" else {})}

    def _write_tls_files(self) -> dict[str, str]:
        assert self._root is not None
        pair = self_signed("127.0.0.1", ("127.0.0.1", "localhost"))
        (self._root / "tls.crt").write_bytes(pair.certificate_pem)
        (self._root / "tls.key").write_bytes(pair.key_pem)
        return {"certificate": str(self._root / "tls.crt"), "key": str(self._root / "tls.key")}

    def _auth_config(self) -> dict[str, object]:
        assert self._root is not None
        if self.auth == "htpasswd":
            # bcrypt's lowest cost: the registry checks every request's password.
            hashed = bcrypt.hashpw(self._password.encode(), bcrypt.gensalt(rounds=4)).decode()
            (self._root / "htpasswd").write_text(f"{self.username}:{hashed}\n")
            return {"htpasswd": {"realm": "test-registry", "path": str(self._root / "htpasswd")}}
        assert self.token_server is not None
        (self._root / "token-signer.crt").write_bytes(self.token_server.signer.certificate_pem)
        return {"token": {"realm": self.token_server.realm, "service": self.token_server.service,
                          "issuer": self.token_server.issuer,
                          "rootcertbundle": str(self._root / "token-signer.crt")}}


def _layer(content: bytes) -> bytes:
    """A gzipped tar holding `content` as the file `content`, the same bytes for the same content."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        member = tarfile.TarInfo("content")
        member.size = len(content)
        tar.addfile(member, io.BytesIO(content))
    return gzip.compress(archive.getvalue(), mtime=0)


def _canonical(document: dict[str, object]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _expect(response: httpx.Response, status: int, doing: str) -> httpx.Response:
    if response.status_code != status:
        raise RegistryError(f"could not {doing}: the registry answered HTTP {response.status_code}: "
                            f"{response.text[:500]}")
    return response


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _end(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
