"""Stream tokens: a media stream opens only for a call this server created.

`POST /calls` and `/twilio/voice` mint one token per call and put it in the TwiML's `<Stream>`
as a `<Parameter>`; Twilio hands it back in the `start` message's `customParameters`. A token
is `v1.<claims>.<mac>`: base64url JSON claims (the call's id, its series, meeting date and
title as decided when the call was created, the CallSid where known, an expiry and a nonce)
and an HMAC-SHA256 over them with the server's secret. Checking one needs no storage, so a
stream still starts while Postgres is away; being single-use is enforced by Postgres (the
nonce is claimed once, with the stream's attachment to its call) and, within a process, here.

The token is a bearer secret: it is never logged.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core import clock

log = logging.getLogger(__name__)

TOKEN_PARAMETER = "stream_token"
SECRET_FILE = "stream-token.key"
_VERSION = "v1"
_MAX_TOKEN_CHARS = 4096


class TokenRefused(Exception):
    """Why a stream token does not open a stream (for the log; never the token itself)."""

    def __init__(self, reason: str, *, call_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.call_id = call_id


@dataclass(frozen=True)
class StreamClaims:
    """What a valid token says about its call (as recorded when the call was created)."""

    call_id: str
    nonce: str
    expires_at: dt.datetime
    series: str | None = None
    meeting_date: dt.date | None = None
    meeting_title: str | None = None
    call_sid: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_or_create_secret(home: Path) -> bytes:
    """The HMAC key kept in CONVENE_HOME (created once, 0600; racing processes agree)."""
    path = home / SECRET_FILE
    home.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(32))
        log.info("stream tokens: generated a new secret in %s", path)
    key = path.read_text(encoding="ascii").strip()
    if len(key) < 32:
        raise ValueError(f"{path} holds no usable stream-token secret (delete it to regenerate)")
    return key.encode("ascii")


class StreamTokens:
    """Mints and checks stream tokens with one secret."""

    def __init__(
        self,
        secret: bytes,
        *,
        ttl_secs: float,
        now: Callable[[], dt.datetime] = clock.now,
    ) -> None:
        self._secret = secret
        self._ttl = dt.timedelta(seconds=ttl_secs)
        self._now = now
        # Nonces used by this process, until they expire (single use while Postgres is away).
        self._used: dict[str, dt.datetime] = {}

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode("ascii"), hashlib.sha256).digest())

    def mint(
        self,
        *,
        call_id: str,
        series: str | None,
        meeting_date: dt.date | None,
        meeting_title: str | None = None,
        call_sid: str | None = None,
        issued_at: dt.datetime | None = None,
    ) -> str:
        expires = (issued_at or self._now()) + self._ttl
        claims = {
            "c": call_id,
            "n": secrets.token_urlsafe(12),
            "x": int(expires.timestamp()),
            "s": series,
            "d": meeting_date.isoformat() if meeting_date else None,
            "t": meeting_title,
            "a": call_sid,
        }
        body = _b64(json.dumps({k: v for k, v in claims.items() if v is not None}).encode())
        return f"{_VERSION}.{body}.{self._mac(body)}"

    def verify(self, token: str | None) -> StreamClaims:
        """The claims of a token this server minted and that has not expired; raises
        TokenRefused otherwise. (Single use is checked by `claim`.)"""
        if not token:
            raise TokenRefused("no stream token")
        if len(token) > _MAX_TOKEN_CHARS or token.count(".") != 2:
            raise TokenRefused("malformed stream token")
        version, body, mac = token.split(".")
        if version != _VERSION:
            raise TokenRefused("malformed stream token")
        if not hmac.compare_digest(mac, self._mac(body)):
            raise TokenRefused("forged stream token (bad signature)")
        try:
            raw = json.loads(_unb64(body))
            claims = StreamClaims(
                call_id=str(raw["c"]),
                nonce=str(raw["n"]),
                expires_at=dt.datetime.fromtimestamp(int(raw["x"]), dt.UTC),
                series=raw.get("s"),
                meeting_date=dt.date.fromisoformat(raw["d"]) if raw.get("d") else None,
                meeting_title=raw.get("t"),
                call_sid=raw.get("a"),
            )
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            raise TokenRefused("malformed stream token") from None
        if self._now() >= claims.expires_at:
            raise TokenRefused("expired stream token", call_id=claims.call_id)
        return claims

    def claim(self, claims: StreamClaims) -> None:
        """Use a token once in this process; raises TokenRefused when it was used already."""
        now = self._now()
        for nonce, until in list(self._used.items()):
            if until <= now:
                del self._used[nonce]
        if claims.nonce in self._used:
            raise TokenRefused("reused stream token", call_id=claims.call_id)
        self._used[claims.nonce] = claims.expires_at

    def release(self, claims: StreamClaims) -> None:
        """Give back a nonce `claim` took for a stream that Postgres then refused without using
        the token (its CallSid is not the call's): the call's real stream may still use it."""
        self._used.pop(claims.nonce, None)
