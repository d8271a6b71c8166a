"""A real OAuth2 authorization server on loopback, built with Authlib (the established Python
implementation of RFC 6749 and its companions), for Kittiwake's OAuth2 tests.

It speaks HTTPS with a certificate from the test CA and offers what the big providers offer a
mail program: the authorization code grant with PKCE (RFC 7636) and loopback redirects on any
port (RFC 8252), refresh tokens, the device authorization grant (RFC 8628), revocation
(RFC 7009), and introspection (RFC 7662), which Dovecot's ``oauth2`` passdb calls to check the
access tokens that IMAP and SMTP present. Users sign in on a plain HTML form (a test "browser"
fills it in). Token lifetimes are short and settable, so expiry can be tested.
"""

from __future__ import annotations

import logging
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar
from urllib.parse import urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.models import AuthorizationCodeMixin, ClientMixin, TokenMixin
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint, DeviceCodeGrant
from flask import Flask, request
from werkzeug.serving import make_server

from .ca import TestCA
from .common import SERVER_HOST

CLIENT_ID = "kittiwake-test-client"
SCOPE = "mail offline_access"


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str = CLIENT_ID

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return "http://127.0.0.1/"

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in SCOPE.split())

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """RFC 8252 section 7.3: a loopback redirect may use any port."""
        parts = urlsplit(redirect_uri)
        return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1")

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none"  # a public client (a mail program has no secret to keep)

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in (
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
        )


@dataclass
class Code(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    user: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    issued: float = field(default_factory=time.time)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_auth_time(self) -> int:
        return int(self.issued)


@dataclass
class Token(TokenMixin):  # type: ignore[misc]
    access_token: str
    refresh_token: str | None
    user: str
    scope: str
    issued: float
    expires_in: int
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == CLIENT_ID

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked


class OAuthServer:
    """``with OAuthServer(ca, workdir, users={"ann@example.test": "pw"}) as auth: ...``"""

    def __init__(
        self,
        ca: TestCA,
        workdir: Path,
        users: dict[str, str],
        *,
        access_lifetime: int = 3600,
    ) -> None:
        self.users = dict(users)
        self.ca_file = ca.ca_file
        self.access_lifetime = access_lifetime
        self.codes: dict[str, Code] = {}
        self.tokens: list[Token] = []
        self.devices: dict[str, dict[str, Any]] = {}
        self.client = Client()
        self.app = self._make_app()
        chain, key = ca.issue(workdir, SERVER_HOST, "auth.example.test")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain, key)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = make_server(SERVER_HOST, 0, self.app, threaded=True, ssl_context=context)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"https://{SERVER_HOST}:{self.port}"

    @property
    def authorize_url(self) -> str:
        return f"{self.base}/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.base}/token"

    @property
    def device_url(self) -> str:
        return f"{self.base}/device"

    @property
    def introspection_url(self) -> str:
        return f"{self.base}/introspect"

    def __enter__(self) -> OAuthServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()

    # -- test controls ----------------------------------------------------------------------

    def revoke_all(self, user: str) -> None:
        """What a user does in the provider's security page: every token of theirs dies."""
        with self._lock:
            for token in self.tokens:
                if token.user == user:
                    token.revoked = True

    def approve_device(self, user_code: str, user: str) -> None:
        """The user types the code on another device and signs in there."""
        with self._lock:
            for device in self.devices.values():
                if device["user_code"] == user_code:
                    device["user"] = user
                    return
        raise KeyError(user_code)

    def live_tokens(self, user: str) -> list[Token]:
        return [t for t in self.tokens if t.user == user and not t.revoked and not t.is_expired()]

    # -- the Flask app --------------------------------------------------------------------

    def _make_app(self) -> Flask:
        app = Flask("kittiwake-test-oauth")
        app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {}
        outer = self

        def query_client(client_id: str) -> Client | None:
            return outer.client if client_id == CLIENT_ID else None

        def save_token(token: dict[str, Any], req: Any) -> None:
            user = req.user if isinstance(req.user, str) else getattr(req, "user", None)
            with outer._lock:
                outer.tokens.append(
                    Token(
                        token["access_token"],
                        token.get("refresh_token"),
                        str(user),
                        token.get("scope", ""),
                        time.time(),
                        int(token["expires_in"]),
                    )
                )

        server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
        server.register_token_generator(
            "default",
            lambda client, grant_type, user=None, scope=None, expires_in=None, include_refresh_token=True: {
                "token_type": "Bearer",
                "access_token": secrets.token_urlsafe(24),
                "expires_in": outer.access_lifetime,
                "scope": scope or "",
                **({"refresh_token": secrets.token_urlsafe(24)} if include_refresh_token else {}),
            },
        )

        class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["none"]

            def save_authorization_code(self, code: str, req: Any) -> None:
                with outer._lock:
                    outer.codes[code] = Code(
                        code,
                        req.user,
                        req.payload.redirect_uri,
                        req.payload.scope or "",
                        req.payload.data.get("code_challenge"),
                        req.payload.data.get("code_challenge_method"),
                    )

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                found = outer.codes.get(code)
                if found is None or time.time() - found.issued > 60:
                    return None
                return found

            def delete_authorization_code(self, authorization_code: Code) -> None:
                outer.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: Code) -> str:
                return authorization_code.user

        class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["none"]
            INCLUDE_NEW_REFRESH_TOKEN = True

            def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
                for token in outer.tokens:
                    if token.refresh_token == refresh_token and not token.revoked:
                        return token
                return None

            def authenticate_user(self, credential: Token) -> str:
                return credential.user

            def revoke_old_credential(self, credential: Token) -> None:
                credential.revoked = True

        class DeviceGrant(DeviceCodeGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["none"]

            def query_device_credential(self, device_code: str) -> Any:
                data = outer.devices.get(device_code)
                if data is None:
                    return None
                return _DeviceCredential(data)

            def query_user_grant(self, user_code: str) -> tuple[str, bool] | None:
                for data in outer.devices.values():
                    if data["user_code"] == user_code and data.get("user"):
                        return data["user"], True
                return None

            def should_slow_down(self, credential: Any) -> bool:
                return False

        class Devices(DeviceAuthorizationEndpoint):  # type: ignore[misc]
            CLIENT_AUTH_METHODS: ClassVar[list[str]] = ["none"]
            USER_CODE_TYPE = "string"
            INTERVAL = 1  # seconds between polls (providers say 5; the tests need not wait)

            def get_verification_uri(self) -> str:
                return f"{outer.base}/activate"

            def save_device_credential(
                self, client_id: str, scope: str, data: dict[str, Any]
            ) -> None:
                with outer._lock:
                    outer.devices[data["device_code"]] = {
                        **data,
                        "client_id": client_id,
                        "scope": scope,
                        "issued": time.time(),
                    }

        class Revocation(RevocationEndpoint):  # type: ignore[misc]
            CLIENT_AUTH_METHODS: ClassVar[list[str]] = ["none"]

            def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
                for token in outer.tokens:
                    if token_string in (token.access_token, token.refresh_token):
                        return token
                return None

            def revoke_token(self, token: Token, req: Any) -> None:
                token.revoked = True

        class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
            CLIENT_AUTH_METHODS: ClassVar[list[str]] = ["none"]

            def authenticate_endpoint_client(self, req: Any) -> Client:
                # The resource server (Dovecot, on the test host) posts only the token.
                return outer.client

            def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
                for token in outer.tokens:
                    if token.access_token == token_string:
                        return token
                return None

            def introspect_token(self, token: Token) -> dict[str, Any]:
                return {
                    "active": True,
                    "client_id": CLIENT_ID,
                    "token_type": "Bearer",
                    "username": token.user,
                    "email": token.user,
                    "scope": token.scope,
                    "exp": int(token.issued + token.expires_in),
                    "iat": int(token.issued),
                }

            def check_permission(self, token: Token, client: Any, req: Any) -> bool:
                return True

        server.register_grant(CodeGrant, [CodeChallenge(required=True)])
        server.register_grant(RefreshGrant)
        server.register_grant(DeviceGrant)
        server.register_endpoint(Devices)
        server.register_endpoint(Revocation)
        server.register_endpoint(Introspection)

        @app.route("/authorize", methods=["GET", "POST"])
        def authorize() -> Any:
            if request.method == "GET":
                grant = server.get_consent_grant(end_user=None)
                del grant  # validates client, redirect, PKCE before the form shows
                return (
                    "<form method=post><input name=username><input name=password "
                    "type=password><button>Sign in and allow</button></form>"
                )
            user = request.form.get("username", "")
            if outer.users.get(user) != request.form.get("password"):
                return "wrong user name or password", 403
            return server.create_authorization_response(grant_user=user)

        @app.route("/token", methods=["POST"])
        def token() -> Any:
            return server.create_token_response()

        @app.route("/device", methods=["POST"])
        def device() -> Any:
            return server.create_endpoint_response("device_authorization")

        @app.route("/revoke", methods=["POST"])
        def revoke() -> Any:
            return server.create_endpoint_response("revocation")

        @app.route("/introspect", methods=["POST"])
        def introspect() -> Any:
            return server.create_endpoint_response("introspection")

        return app


class _DeviceCredential:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def get_client_id(self) -> str:
        return str(self.data["client_id"])

    def get_scope(self) -> str:
        return str(self.data.get("scope") or "")

    def get_user_code(self) -> str:
        return str(self.data["user_code"])

    def is_expired(self) -> bool:
        return time.time() > self.data["issued"] + self.data.get("expires_in", 600)


def sign_in_by_code(
    auth: OAuthServer, user: str, password: str, redirect_uri: str = "http://127.0.0.1:9/"
) -> dict[str, Any]:
    """A test browser and client in one: the PKCE authorization code flow end to end (the
    form filled in, the code taken from the redirect), returning the token response."""
    import base64
    import hashlib
    import json
    import urllib.parse
    import urllib.request

    context = ssl.create_default_context(cafile=str(auth.ca_file))

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), NoRedirect)
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": redirect_uri,
            "scope": SCOPE,
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    form = urllib.parse.urlencode({"username": user, "password": password}).encode()
    try:
        opener.open(urllib.request.Request(f"{auth.authorize_url}?{query}", data=form))
        raise AssertionError("the authorization server did not redirect")
    except urllib.error.HTTPError as redirect:
        location = redirect.headers["Location"]
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["code"][0]
    body = urllib.parse.urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": CLIENT_ID,
            "code_verifier": verifier,
        }
    ).encode()
    with opener.open(urllib.request.Request(auth.token_url, data=body)) as answer:
        token: dict[str, Any] = json.loads(answer.read())
    return token


def browser_sign_in(
    auth: OAuthServer, authorize_url: str, user: str, password: str, *, follow: bool = True
) -> str:
    """What a person does in the browser: open the address Kittiwake shows, sign in on the
    form, and (``follow``) let the browser go to the redirect, which reaches Kittiwake's
    loopback listener. Returns the address the browser ended on (for the paste-back flow)."""
    import urllib.parse
    import urllib.request

    context = ssl.create_default_context(cafile=str(auth.ca_file))

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), NoRedirect)
    with opener.open(authorize_url) as page:  # the sign-in form (validates the request)
        page.read()
    form = urllib.parse.urlencode({"username": user, "password": password}).encode()
    try:
        opener.open(urllib.request.Request(authorize_url, data=form))
        raise AssertionError("the authorization server did not redirect")
    except urllib.error.HTTPError as redirect:
        location = str(redirect.headers["Location"])
    if follow:
        with urllib.request.urlopen(location, timeout=10) as landed:
            landed.read()
    return location
