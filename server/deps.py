"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, HTTPException, Request
from twilio.request_validator import RequestValidator

from server.guard import HangUps
from server.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def hang_ups(request: Request) -> HangUps:
    """The app's call timers (`HangUps`), made on first use where the lifespan did not."""
    found: HangUps | None = getattr(request.app.state, "hang_ups", None)
    if found is None:
        found = HangUps()
        request.app.state.hang_ups = found
    return found


def public_url(request: Request, runtime: Runtime) -> str:
    """The URL Twilio requested: behind a tunnel that is https://PUBLIC_HOST/..."""
    host = runtime.settings.twilio.public_host
    if not host:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return f"https://{host}{request.url.path}{query}"


def media_stream_url(request: Request, runtime: Runtime) -> str:
    host = runtime.settings.twilio.public_host
    if host:
        return f"wss://{host}/twilio/media"
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return f"{scheme}://{request.url.netloc}/twilio/media"


# Twilio's webhook forms are a few kB; a larger body is refused before it is read.
MAX_TWILIO_FORM_BYTES = 64 * 1024


async def _bounded_form(request: Request) -> dict[str, str]:
    """The form fields, read only up to MAX_TWILIO_FORM_BYTES (413 past it)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_TWILIO_FORM_BYTES:
        raise HTTPException(status_code=413, detail="webhook body too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_TWILIO_FORM_BYTES:
            raise HTTPException(status_code=413, detail="webhook body too large")
    pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return dict(pairs)


async def verified_twilio_form(request: Request, runtime: RuntimeDep) -> dict[str, str]:
    """The webhook's form fields, after checking X-Twilio-Signature (403 when absent or wrong).

    A request without a signature is refused before its body is read; a body over
    MAX_TWILIO_FORM_BYTES is refused (413) without reading the rest."""
    settings = runtime.settings
    if settings.twilio.dev_skip_signature:
        return await _bounded_form(request)
    if settings.twilio.auth_token is None:
        raise HTTPException(
            status_code=403,
            detail="TWILIO_AUTH_TOKEN is not set, so this Twilio webhook cannot be verified "
            "(set it, or CONVENE_DEV_SKIP_TWILIO_SIGNATURE=1 for local development only)",
        )
    signature = request.headers.get("X-Twilio-Signature")
    if not signature:
        raise HTTPException(status_code=403, detail="missing X-Twilio-Signature header")
    params = await _bounded_form(request)
    validator = RequestValidator(settings.twilio.auth_token.get_secret_value())
    if not validator.validate(public_url(request, runtime), params, signature):
        raise HTTPException(
            status_code=403, detail="X-Twilio-Signature does not match this request"
        )
    return params


TwilioForm = Annotated[dict[str, str], Depends(verified_twilio_form)]
