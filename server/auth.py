"""Who is calling the REST API: bearer tokens (opaque, stored hashed in Postgres; or a JWT
from an identity provider, checked against its JWKS), scopes per route, series per token."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from core.settings import SecuritySettings
from memory.access import SCOPES, TOKEN_PREFIX, AccessStore
from memory.store import STORE_DOWN
from server.deps import RuntimeDep
from server.guard import REDIS_ERRORS, Limited, RateLimiter
from server.runtime import Runtime

log = logging.getLogger(__name__)

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="opaque (cvn_…) or JWT",
    description="A token from `convene token create`, or a JWT from the identity provider "
    "at CONVENE_JWKS_URL. Scopes: read, write (delete), dial (place calls), admin (all).",
)
JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: what it may do, and which series it may see (None: all)."""

    actor: str  # for the audit log: "token:NAME#ID", "jwt:SUBJECT", "bootstrap", "insecure-dev"
    scopes: frozenset[str]
    series: frozenset[str] | None
    rate_key: str  # whose budget its requests count against

    def may(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def sees(self, series_key: str | None) -> bool:
        """A series-scoped caller sees its series only (never calls without a series)."""
        return self.series is None or (series_key is not None and series_key in self.series)


INSECURE_DEV = Principal("insecure-dev", frozenset(SCOPES), None, "insecure-dev")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def _too_many(limited: Limited, what: str) -> HTTPException:
    return HTTPException(
        status_code=429,
        detail=f"rate limit reached ({what}); retry after {limited.retry_after}s",
        headers={"Retry-After": str(limited.retry_after)},
    )


def limiter(request: Request, runtime: Runtime) -> RateLimiter:
    """The app's rate limiter, on the runtime's Redis (made on first use)."""
    found: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if found is None:
        found = RateLimiter(runtime.redis)
        request.app.state.rate_limiter = found
    return found


async def count_request(
    request: Request, runtime: Runtime, spec: str, *identifiers: str, what: str, strict: bool
) -> None:
    """One request against a rate limit: 429 past it. Redis away: `strict` limits refuse
    (503), the others let the request through (with a warning)."""
    try:
        limited = await limiter(request, runtime).hit(spec, *identifiers)
    except REDIS_ERRORS as exc:
        if strict:
            raise HTTPException(
                status_code=503, detail=f"rate limiter unavailable (Redis: {type(exc).__name__})"
            ) from exc
        log.warning("rate limiter unavailable (%s): request let through", type(exc).__name__)
        return
    if limited is not None:
        raise _too_many(limited, what)


@lru_cache(maxsize=4)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=5)


def _claim_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.split()
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    return None


def verify_jwt(token: str, security: SecuritySettings) -> Principal:
    """A JWT signed by a key of the JWKS, unexpired, of our issuer and audience (blocking)."""
    assert security.jwks_url is not None
    key = _jwks_client(security.jwks_url).get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=JWT_ALGORITHMS,
        audience=security.jwt_audience,
        issuer=security.jwt_issuer,
        options={"require": ["exp", "sub"], "verify_aud": security.jwt_audience is not None},
    )
    raw_scopes = _claim_list(claims.get(security.jwt_scopes_claim)) or []
    scopes = frozenset(s.removeprefix("convene:") for s in raw_scopes) & frozenset(SCOPES)
    series = _claim_list(claims.get(security.jwt_series_claim))
    subject = str(claims["sub"])
    return Principal(
        actor=f"jwt:{subject}"[:200],
        scopes=scopes,
        series=frozenset(series) if series is not None else None,
        rate_key=f"jwt:{subject}"[:200],
    )


async def resolve(token: str, runtime: Runtime) -> Principal | None:
    """The caller a bearer token names, or None (unknown, revoked, expired, forged)."""
    security = runtime.settings.security
    boot = security.bootstrap_token
    if boot is not None and hmac.compare_digest(
        token.encode("utf-8", "surrogatepass"), boot.get_secret_value().encode()
    ):
        return Principal("bootstrap", frozenset(SCOPES), None, "bootstrap")
    if token.startswith(TOKEN_PREFIX):
        try:
            row = await AccessStore(runtime.store.pool).find_token(token)
        except STORE_DOWN as exc:
            raise HTTPException(
                status_code=503, detail="cannot check the token: Postgres unavailable"
            ) from exc
        if row is None:
            return None
        return Principal(
            actor=f"token:{row.name}#{row.id}",
            scopes=frozenset(row.scopes),
            series=frozenset(row.series) if row.series is not None else None,
            rate_key=f"token:{row.id}",
        )
    if security.jwks_url and token.count(".") == 2:
        try:
            return await asyncio.to_thread(verify_jwt, token, security)
        except jwt.PyJWKClientConnectionError as exc:
            raise HTTPException(
                status_code=503, detail="cannot check the JWT: the JWKS URL is unreachable"
            ) from exc
        except jwt.PyJWTError as exc:
            log.info("JWT refused: %s", type(exc).__name__)
            return None
    return None


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def authenticate(
    request: Request,
    security_scopes: SecurityScopes,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller, checked: within the per-address rate limit, a valid token, the route's
    scopes, within the per-token rate limit."""
    security = runtime.settings.security
    address = client_address(request)
    await count_request(
        request, runtime, security.rate_limit_ip, "ip", address, what="per address", strict=False
    )
    if security.insecure_dev:
        principal: Principal | None = INSECURE_DEV
    elif credentials is None:
        raise _unauthorized("authentication required: send Authorization: Bearer <token>")
    else:
        principal = await resolve(credentials.credentials, runtime)
    if principal is None:
        raise _unauthorized("invalid, expired or revoked token")
    missing = [s for s in security_scopes.scopes if not principal.may(s)]
    if missing:
        raise HTTPException(
            status_code=403, detail=f"this token lacks the scope {', '.join(missing)}"
        )
    await count_request(
        request,
        runtime,
        security.rate_limit_token,
        "token",
        principal.rate_key,
        what="per token",
        strict=False,
    )
    return principal


Reader = Annotated[Principal, Security(authenticate, scopes=["read"])]
Writer = Annotated[Principal, Security(authenticate, scopes=["write"])]
Dialer = Annotated[Principal, Security(authenticate, scopes=["dial"])]
Admin = Annotated[Principal, Security(authenticate, scopes=["admin"])]


async def audit(
    request: Request, runtime: Runtime, principal: Principal, action: str, target: str
) -> None:
    """One line of the audit log (never fails the request: a store outage is logged)."""
    try:
        await AccessStore(runtime.store.pool).audit(
            actor=principal.actor, action=action, target=target, client=client_address(request)
        )
    except STORE_DOWN as exc:
        log.warning("audit log unavailable (%s): %s %s", type(exc).__name__, action, target)
