"""Who may ask the console what: where a request comes from, sessions, sign-in and roles.

`ConsoleApp` inherits these checks from `ConsoleAccess`; they are apart from its routes because
they are the console's security boundary, read and reviewed on their own. Every decision is
made on each request from the signed cookie and the server's access keys now
(`relayflow.api.auth.ROLE_ACTIONS`); nothing the page says is trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from datetime import UTC, datetime
from typing import Any

from relayflow.api.auth import ROLE_ACTIONS, Authenticator
from relayflow.console import session as sessions
from relayflow.console.request_io import (
    Answer,
    Receive,
    Scope,
    header_value,
    json_answer,
    not_signed_in,
    read_json_body,
    refusal_error,
)
from relayflow.console.session import Session, Throttle
from relayflow.engine.engine import Engine

__all__ = ["CSRF_HEADER", "ConsoleAccess"]

log = logging.getLogger("relayflow.console")

#: The header every POST carries with the session's CSRF value.
CSRF_HEADER = "X-Relayflow-CSRF"
# A sign-in's body holds a key id and secret, or a token: never more than this.
_SIGN_IN_BYTES = 8192
# Sec-Fetch-Site values of a page's requests to its own origin.
_SAME_SITE = frozenset({"same-origin"})
_KEYLESS_SESSION = Session("", "admin", 0, "keyless")


def _cookie(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key != b"cookie":
            continue
        text: str = value.decode("latin-1")
        for part in text.split(";"):
            name, _, found = part.strip().partition("=")
            if name == sessions.COOKIE:
                return found
    return None


def _utc(moment: int) -> str:
    """An epoch time as RFC 3339 UTC text (the number itself if no calendar holds it)."""
    try:
        return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return str(moment)


class ConsoleAccess:
    """The checks of who sends a request and what their session may do, as `ConsoleApp`'s.

    The attributes are declared here for the type checker; `ConsoleApp.__init__` sets them.
    """

    engine: Engine
    auth: Authenticator
    session_minutes: int
    secure: bool
    max_body_bytes: int
    hosts: frozenset[str]
    origins: frozenset[str]
    throttle: Throttle
    _keys: tuple[bytes, bytes] | None

    # -- where a request comes from ---------------------------------------------------------------

    def _check_host(self, scope: Scope) -> None:
        """Without access keys, only requests addressed to the loopback address are served.

        A page of another site could otherwise read the console through a DNS name that it
        points at 127.0.0.1 (DNS rebinding).
        """
        host = header_value(scope, b"host") or ""
        if host.lower() not in self.hosts:
            raise refusal_error(
                "InvalidHost",
                f"the Host header {host[:200]!r} does not name this server "
                f"({', '.join(sorted(self.hosts))}); without access keys the console answers "
                "only requests addressed to its loopback address",
                403,
            )

    def _own_origins(self, scope: Scope) -> frozenset[str]:
        """The origins the console's own page has, as `Origin` spells them (lower case)."""
        if not self.auth.enabled:
            return self.origins
        host = (header_value(scope, b"host") or "").lower()
        if not host:
            return frozenset()
        # Behind a proxy that ends TLS the page is https while this server speaks http.
        schemes = ("https",) if self.secure else ("http", "https")
        return frozenset(f"{scheme}://{host}" for scheme in schemes)

    def _check_origin(self, scope: Scope) -> None:
        """A POST must come from the console's own page: `Origin`, else `Sec-Fetch-Site`."""
        origin = header_value(scope, b"origin")
        site = header_value(scope, b"sec-fetch-site")
        if site is not None and site.lower() not in _SAME_SITE:
            raise refusal_error(
                "CrossOriginRequest",
                f"a request the browser marks Sec-Fetch-Site: {site[:40]} is refused: the "
                "console acts only on requests from its own pages",
                403,
            )
        if origin is not None:
            if origin.lower() not in self._own_origins(scope):
                raise refusal_error(
                    "CrossOriginRequest",
                    f"a request from the web page at {origin[:200]!r} is refused: the console "
                    "acts only on requests from its own pages",
                    403,
                )
        elif site is None:
            raise refusal_error(
                "CrossOriginRequest",
                "a POST to the console must say where it comes from (Origin or "
                "Sec-Fetch-Site, which browsers send): the console acts only on requests "
                "from its own pages",
                403,
            )

    def _check_csrf(self, scope: Scope, session: Session) -> None:
        given = header_value(scope, CSRF_HEADER.lower().encode())
        if not given:
            raise refusal_error(
                "CSRFTokenMissing",
                f"the request lacks the {CSRF_HEADER} header; the console's page sends it "
                "(reload the page)",
                403,
            )
        if not hmac.compare_digest(given.encode(), self._csrf(session).encode()):
            raise refusal_error(
                "CSRFTokenInvalid",
                f"the {CSRF_HEADER} header does not belong to this session (reload the page)",
                403,
            )

    # -- sessions -------------------------------------------------------------------------------

    def _signing_keys(self) -> tuple[bytes, bytes]:
        """The session and CSRF keys (derived once the engine has started)."""
        if self._keys is None:
            if not self.engine.accepting:
                raise refusal_error(
                    "ServiceUnavailable",
                    "the engine is starting or stopping; retry in a moment",
                    503,
                )
            self._keys = (
                self.engine.derived_key("console-session"),
                self.engine.derived_key("console-csrf"),
            )
        return self._keys

    def _csrf(self, session: Session) -> str:
        return sessions.csrf_value(self._signing_keys()[1], session.session_id)

    def _key_table(self) -> dict[str, tuple[str, str]]:
        return {key.id: (key.role, key.secret) for key in self.auth.keys.values()}

    def _session(self, scope: Scope) -> Session | None:
        """The request's session: keyless, from a valid cookie, or None."""
        if not self.auth.enabled:
            return _KEYLESS_SESSION
        value = _cookie(scope)
        if not value:
            return None
        return sessions.read_cookie(self._signing_keys()[0], value, self._key_table())

    def _session_doc(self, session: Session | None) -> dict[str, Any]:
        if session is None:
            return {
                "signedIn": False,
                "keyless": False,
                "keyId": "",
                "role": "",
                "csrf": "",
                "expires": 0,
            }
        return {
            "signedIn": True,
            "keyless": not self.auth.enabled,
            "keyId": session.key_id,
            "role": session.role,
            "csrf": self._csrf(session),
            "expires": session.expires,
        }

    def _session_answer(self, session: Session | None) -> Answer:
        return json_answer(200, self._session_doc(session))

    def _set_cookie(self, value: str, max_age: int) -> tuple[bytes, bytes]:
        secure = "; Secure" if self.secure else ""
        text = (
            f"{sessions.COOKIE}={value}; Path=/console; Max-Age={max_age}; HttpOnly; "
            f"SameSite=Strict{secure}"
        )
        return (b"set-cookie", text.encode("latin-1"))

    async def _sign_in(self, scope: Scope, receive: Receive) -> Answer:
        doc = await read_json_body(
            scope, receive, _SIGN_IN_BYTES, max_body_bytes=self.max_body_bytes
        )
        if not self.auth.enabled:
            return self._session_answer(_KEYLESS_SESSION)  # nobody needs to sign in
        address = str((scope.get("client") or ("unknown",))[0])
        if set(doc) == {"token"} and isinstance(doc["token"], str):
            key_id = await self._token_key(doc["token"], address)
        elif (
            set(doc) == {"accessKeyId", "accessKeySecret"}
            and isinstance(doc["accessKeyId"], str)
            and isinstance(doc["accessKeySecret"], str)
        ):
            key_id = self._check_secret(doc["accessKeyId"], doc["accessKeySecret"], address)
        else:
            raise refusal_error(
                "InvalidParameter",
                'sign in with {"accessKeyId": ..., "accessKeySecret": ...} or {"token": ...} '
                "(from relayflow console token), all strings",
                400,
            )
        key = self.auth.keys[key_id]
        session = sessions.new_session(key.id, key.role, self.session_minutes)
        log.info("console sign-in: access key %s (%s) from %s", key.id, key.role, address)
        cookie = sessions.session_cookie(self._signing_keys()[0], session, key.secret)
        return json_answer(
            200,
            self._session_doc(session),
            [self._set_cookie(cookie, self.session_minutes * 60)],
        )

    def _throttled(self, key_id: str, address: str) -> None:
        reason = self.throttle.blocked(key_id, address)
        if reason is not None:
            raise refusal_error(
                "Throttling.SignIn",
                f"sign-in refused for now: {reason}; wait a few minutes and try again",
                429,
            )

    def _check_secret(self, key_id: str, secret: str, address: str) -> str:
        """The key id once its secret matches; counts a failure and refuses otherwise."""
        self._throttled(key_id, address)
        key = self.auth.keys.get(key_id)
        # Digests are compared, so neither the secret's length nor whether the key exists
        # shows in the time taken.
        expected = hashlib.sha256((key.secret if key else "\0").encode()).digest()
        given = hashlib.sha256(secret.encode()).digest()
        if hmac.compare_digest(expected, given) and key is not None:
            return key.id
        self.throttle.failed(key_id if key is not None else None, address)
        raise refusal_error(
            "SignInFailed",
            "the access key id or its secret is wrong (both are in [[server.access_keys]])",
            401,
        )

    async def _token_key(self, token: str, address: str) -> str:
        """The key id a console token signs in; refuses a forged, expired or used one."""
        claim = sessions.read_token(token)
        if claim is None:
            self.throttle.failed(None, address)
            raise refusal_error(
                "InvalidToken",
                "the console token is not one relayflow console token prints (was it cut "
                "short when copied?)",
                401,
            )
        self._throttled(claim.key_id, address)
        key = self.auth.keys.get(claim.key_id)
        if key is None or not claim.signed_by(key.secret):
            self.throttle.failed(claim.key_id if key is not None else None, address)
            raise refusal_error(
                "InvalidToken",
                "the console token was not signed by an access key of this server (forged, "
                "or its key's secret has changed); print a new one with relayflow console token",
                401,
            )
        now = time.time()
        if now >= claim.expires:
            raise refusal_error(
                "TokenExpired",
                f"the console token expired at {_utc(claim.expires)}; print a new one with "
                "relayflow console token",
                401,
            )
        if claim.expires > now + sessions.MAX_TOKEN_MINUTES * 60 + 60:
            raise refusal_error(
                "InvalidToken",
                f"the console token claims to last more than {sessions.MAX_TOKEN_MINUTES} "
                "minutes, which relayflow console token never prints",
                401,
            )
        nonce = hashlib.sha256(f"console-token\0{key.id}\0{claim.nonce}".encode()).hexdigest()
        if not await self.engine.use_nonce(nonce, claim.expires - now + 60):
            raise refusal_error(
                "TokenUsed",
                "this console token signed someone in already; print a new one with "
                "relayflow console token",
                401,
            )
        return key.id

    def _sign_out(self, scope: Scope) -> Answer:
        self._check_origin(scope)
        session = self._session(scope)
        if session is not None and self.auth.enabled:
            self._check_csrf(scope, session)
        headers = [self._set_cookie("", 0)] if self.auth.enabled else []
        doc = self._session_doc(_KEYLESS_SESSION if not self.auth.enabled else None)
        return json_answer(200, doc, headers)

    def _signed_in(self, scope: Scope, action: str) -> Session:
        """The request's session, whose role may call ``action``."""
        session = self._session(scope)
        if session is None:
            raise not_signed_in()
        self._authorize(session, action)
        return session

    @staticmethod
    def _authorize(session: Session, action: str) -> None:
        allowed = ROLE_ACTIONS.get(session.role, frozenset())
        if allowed is not None and action not in allowed:
            raise refusal_error(
                "AccessDenied",
                f"access key {session.key_id!r} has role {session.role}, which may not "
                f"call {action}",
                403,
            )
