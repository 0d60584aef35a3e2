"""Console sign-in, sessions and CSRF tokens. Pure: the secrets come in, decisions come out.

Two roles, each from its own secret: viewer (read) and operator (read and act). A secret is a
comma-separated list of tokens, each "user:token" (signs in as that user) or a bare token (signs in
under the role's name). A session is a cookie signed with a key derived from the configured tokens,
carrying a fingerprint of the token used: rotating or removing a token ends its sessions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Literal

import msgspec

Role = Literal["viewer", "operator"]


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    """Who is signed in, with which role."""

    user: str
    role: Role

    @property
    def can_act(self) -> bool:
        return self.role == "operator"


class _Grant(msgspec.Struct, frozen=True):
    identity: Identity
    fingerprint: str


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


class Tokens:
    """The configured console tokens: who each one signs in as."""

    def __init__(self, viewer: str, operator: str) -> None:
        self._grants: list[tuple[bytes, _Grant]] = []
        for role, spec in (("viewer", viewer), ("operator", operator)):
            for entry in (e.strip() for e in spec.split(",")):
                if not entry:
                    continue
                user, sep, token = entry.partition(":")
                if not sep:
                    user, token = role, entry
                ident = Identity(user=user.strip() or role, role=role)  # type: ignore[arg-type]
                self._grants.append((token.strip().encode(), _Grant(ident, _fingerprint(token.strip()))))
        material = b"\0".join(sorted(t for t, _ in self._grants))
        self.key = hashlib.sha256(b"nbzx-console-session\0" + material).digest()

    def __bool__(self) -> bool:
        return bool(self._grants)

    def _grant(self, token: str) -> _Grant | None:
        given = token.strip().encode()
        found = None
        for secret, grant in self._grants:  # every entry compared, in constant time each
            if hmac.compare_digest(given, secret):
                found = grant
        return found if given else None

    def identify(self, token: str) -> Identity | None:
        """The identity a token signs in as, or None."""
        grant = self._grant(token)
        return grant.identity if grant else None

    def session(self, token: str, ttl_s: int, now: float | None = None) -> str | None:
        """A signed session cookie value for a valid token, or None."""
        grant = self._grant(token)
        if grant is None:
            return None
        exp = int((now if now is not None else time.time()) + ttl_s)
        body = {"u": grant.identity.user, "r": grant.identity.role, "f": grant.fingerprint, "e": exp}
        payload = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()
        return f"{payload}.{self._sign(payload)}"

    def verify(self, cookie: str, now: float | None = None) -> Identity | None:
        """The identity of a session cookie that is signed by us, unexpired and of a token still configured."""
        payload, _, sig = cookie.partition(".")
        if not payload or not hmac.compare_digest(sig, self._sign(payload)):
            return None
        try:
            body = json.loads(base64.urlsafe_b64decode(payload.encode()))
        except ValueError:
            return None
        if int(body.get("e", 0)) < (now if now is not None else time.time()):
            return None
        for _, grant in self._grants:
            if grant.fingerprint == body.get("f") and grant.identity.role == body.get("r"):
                return grant.identity
        return None

    def csrf(self, cookie: str) -> str:
        """The CSRF token that forms of this session must carry."""
        return hmac.new(self.key, b"csrf\0" + cookie.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, cookie: str, given: str) -> bool:
        """True when `given` is this session's CSRF token."""
        return bool(cookie) and hmac.compare_digest(self.csrf(cookie), given)

    def _sign(self, payload: str) -> str:
        return hmac.new(self.key, payload.encode(), hashlib.sha256).hexdigest()
