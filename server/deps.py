"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from twilio.request_validator import RequestValidator

from server.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


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


async def verified_twilio_form(request: Request, runtime: RuntimeDep) -> dict[str, str]:
    """The webhook's form fields, after checking X-Twilio-Signature (403 when absent or wrong)."""
    form = await request.form()
    params = {key: str(value) for key, value in form.multi_items()}
    settings = runtime.settings
    if settings.twilio.dev_skip_signature:
        return params
    if settings.twilio.auth_token is None:
        raise HTTPException(
            status_code=403,
            detail="TWILIO_AUTH_TOKEN is not set, so this Twilio webhook cannot be verified "
            "(set it, or CONVENE_DEV_SKIP_TWILIO_SIGNATURE=1 for local development only)",
        )
    signature = request.headers.get("X-Twilio-Signature")
    if not signature:
        raise HTTPException(status_code=403, detail="missing X-Twilio-Signature header")
    validator = RequestValidator(settings.twilio.auth_token.get_secret_value())
    if not validator.validate(public_url(request, runtime), params, signature):
        raise HTTPException(
            status_code=403, detail="X-Twilio-Signature does not match this request"
        )
    return params


TwilioForm = Annotated[dict[str, str], Depends(verified_twilio_form)]
