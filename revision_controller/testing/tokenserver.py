"""A registry token server on loopback for tests, as the distribution token spec describes it.

Checks Basic credentials, grants `pull` and `push` on the scopes asked for, and
answers with a JWT the registry verifies against the certificate in the token's
`x5c` header, which is also the registry's `rootcertbundle`:

    with TokenServer("u", "p") as tokens:
        tokens.realm            # http://127.0.0.1:PORT/token
        tokens.requests         # every token request: query and Authorization header

Also makes the self-signed certificates the test registry serves TLS with.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hmac
import ipaddress
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from revision_controller.testing.service import Service

TOKEN_PATH = "/token"
SERVICE = "test-registry"
ISSUER = "test-token-issuer"
TOKEN_SECONDS = 300
# distribution's token verifier reads the signing key from x5c, and libtrust
# knows ES256 for P-256 keys.
_ALGORITHM = "ES256"


@dataclass(frozen=True)
class SelfSigned:
    """A key and a self-signed certificate for it, PEM-encoded."""

    key: ec.EllipticCurvePrivateKey = field(repr=False)
    certificate: x509.Certificate

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def certificate_der_base64(self) -> str:
        return base64.b64encode(self.certificate.public_bytes(serialization.Encoding.DER)).decode()


def self_signed(common_name: str, hosts: tuple[str, ...] = ()) -> SelfSigned:
    """A P-256 key and a day-long certificate naming `hosts` (DNS names or IP addresses)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=1)))
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(host) for host in hosts]),
                                        critical=False)
    return SelfSigned(key, builder.sign(key, hashes.SHA256()))


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


@dataclass(frozen=True)
class TokenRequest:
    """One request the token server received."""

    path: str
    params: dict[str, list[str]]
    authorization: str | None

    @property
    def scopes(self) -> list[str]:
        return self.params.get("scope", [])

    @property
    def service(self) -> str | None:
        return self.params.get("service", [None])[0]


class TokenServer(Service):
    """Issues registry tokens granting pull and push to `username`/`password`, and tokens
    granting pull (with `anonymous_pull`) or nothing to anonymous requests; refuses wrong
    credentials. Runs on 127.0.0.1 until stopped."""

    def __init__(self, username: str, password: str, *, anonymous_pull: bool = False,
                 service: str = SERVICE, issuer: str = ISSUER, expires_in: int = TOKEN_SECONDS) -> None:
        self.username = username
        self._password = password
        self.anonymous_pull = anonymous_pull
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self.signer = self_signed(issuer)
        self._requests: list[TokenRequest] = []
        self._lock = threading.Lock()
        self._httpd: _TokenHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._httpd = _TokenHTTPServer(("127.0.0.1", 0), _TokenHandler)
        self._httpd.tokens = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="tokenserver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = self._thread = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "the token server is not running"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def realm(self) -> str:
        return self.url + TOKEN_PATH

    @property
    def requests(self) -> list[TokenRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def issue(self, subject: str, scopes: list[str], *, may_push: bool) -> str:
        """A signed token granting `scopes` (`repository:NAME:ACTIONS`) as far as allowed."""
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "iat": now, "nbf": now - 5,
                  "exp": now + self.expires_in, "jti": uuid.uuid4().hex,
                  "access": [access for scope in scopes if (access := _granted(scope, may_push))]}
        return jwt.encode(claims, self.signer.key, algorithm=_ALGORITHM,
                          headers={"x5c": [self.signer.certificate_der_base64]})

    def answer(self, request: TokenRequest) -> tuple[int, dict[str, object]]:
        with self._lock:
            self._requests.append(request)
        who = self._who(request.authorization)
        if who is None:
            return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}
        # Anyone gets a token, as from Docker Hub; an anonymous one grants nothing
        # unless anonymous_pull, and the registry refuses it.
        scopes = request.scopes if who or self.anonymous_pull else []
        token = self.issue(who or "anonymous", scopes, may_push=bool(who))
        return 200, {"token": token, "access_token": token, "expires_in": self.expires_in,
                     "issued_at": datetime.datetime.now(datetime.UTC).isoformat()}

    def _who(self, authorization: str | None) -> str | None:
        """The user the credentials name; "" for none given; None for wrong ones."""
        if not authorization:
            return ""
        scheme, _, encoded = authorization.partition(" ")
        try:
            username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        right = (scheme.lower() == "basic" and hmac.compare_digest(username, self.username)
                 and hmac.compare_digest(password.encode(), self._password.encode()))
        return username if right else None


def _granted(scope: str, may_push: bool) -> dict[str, object] | None:
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    allowed = {"pull", "push"} if may_push else {"pull"}
    granted = [action for action in actions.split(",") if action in allowed]
    return {"type": kind, "name": name, "actions": granted} if kind == "repository" and granted else None


class _TokenHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    tokens: TokenServer


class _TokenHandler(BaseHTTPRequestHandler):
    server: _TokenHTTPServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != TOKEN_PATH:
            self._reply(404, {"errors": [{"code": "NOT_FOUND"}]})
            return
        request = TokenRequest(url.path, parse_qs(url.query), self.headers.get("Authorization"))
        self._reply(*self.server.tokens.answer(request))

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, document: dict[str, object]) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="token server"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
