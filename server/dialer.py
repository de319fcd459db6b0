"""Outbound calls through the official twilio SDK."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from core.errors import NotConfigured, ProviderError
from core.settings import Settings

log = logging.getLogger(__name__)

STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]


def missing_twilio_settings(settings: Settings) -> list[str]:
    missing = []
    if not settings.twilio.account_sid:
        missing.append("TWILIO_ACCOUNT_SID")
    if settings.twilio.auth_token is None:
        missing.append("TWILIO_AUTH_TOKEN")
    if not settings.twilio.from_number:
        missing.append("TWILIO_FROM_NUMBER")
    if not settings.twilio.public_host:
        missing.append("PUBLIC_HOST")
    return missing


def _client(settings: Settings, http: AsyncTwilioHttpClient) -> Client:
    assert settings.twilio.auth_token is not None
    client = Client(
        settings.twilio.account_sid,
        settings.twilio.auth_token.get_secret_value(),
        http_client=http,
    )
    if settings.twilio.api_base_url:
        client.api.base_url = settings.twilio.api_base_url
    return client


@asynccontextmanager
async def _twilio(settings: Settings, refused: str) -> AsyncIterator[Client]:
    """A REST client for one request; Twilio's errors as ProviderError ("Twilio `refused`: …"),
    without the request's secrets."""
    http = AsyncTwilioHttpClient()
    try:
        yield _client(settings, http)
    except TwilioRestException as exc:
        raise ProviderError(
            f"Twilio {refused}: {exc.msg} (HTTP {exc.status}, code {exc.code})"
        ) from exc
    except (TwilioException, OSError) as exc:
        raise ProviderError(f"Twilio unreachable: {type(exc).__name__}") from exc
    finally:
        await http.close()


async def place_call(
    settings: Settings, *, to: str, twiml: str, time_limit_secs: int | None = None
) -> str:
    """Ask Twilio to call `to` and run `twiml`; returns the CallSid. `time_limit_secs`: Twilio
    itself ends the call after that long (besides our own hang-up)."""
    missing = missing_twilio_settings(settings)
    if missing:
        raise NotConfigured(f"outbound calls need {', '.join(missing)} (see .env.example)")
    async with _twilio(settings, "refused the call") as client:
        call = await client.calls.create_async(
            to=to,
            from_=settings.twilio.from_number,
            twiml=twiml,
            status_callback=f"https://{settings.twilio.public_host}/twilio/status",
            status_callback_event=STATUS_EVENTS,
            **({"time_limit": time_limit_secs} if time_limit_secs else {}),
        )
    sid: str = call.sid
    return sid


async def hang_up(settings: Settings, call_sid: str) -> None:
    """End a call through Twilio's REST API (Status=completed). Needs the account's SID and
    auth token only (an answered call may be hung up where PUBLIC_HOST is not set)."""
    missing = [
        name
        for name in missing_twilio_settings(settings)
        if name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")
    ]
    if missing:
        raise NotConfigured(f"hanging up needs {', '.join(missing)}")
    async with _twilio(settings, "refused to hang up") as client:
        await client.calls(call_sid).update_async(status="completed")
