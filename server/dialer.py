"""Outbound calls through the official twilio SDK."""

from __future__ import annotations

import logging

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


async def place_call(settings: Settings, *, to: str, twiml: str) -> str:
    """Ask Twilio to call `to` and run `twiml`; returns the CallSid."""
    missing = missing_twilio_settings(settings)
    if missing:
        raise NotConfigured(f"outbound calls need {', '.join(missing)} (see .env.example)")
    assert settings.twilio.auth_token is not None
    http = AsyncTwilioHttpClient()
    client = Client(
        settings.twilio.account_sid,
        settings.twilio.auth_token.get_secret_value(),
        http_client=http,
    )
    if settings.twilio.api_base_url:
        client.api.base_url = settings.twilio.api_base_url
    try:
        call = await client.calls.create_async(
            to=to,
            from_=settings.twilio.from_number,
            twiml=twiml,
            status_callback=f"https://{settings.twilio.public_host}/twilio/status",
            status_callback_event=STATUS_EVENTS,
        )
    except TwilioRestException as exc:
        raise ProviderError(
            f"Twilio refused the call: {exc.msg} (HTTP {exc.status}, code {exc.code})"
        ) from exc
    except (TwilioException, OSError) as exc:
        raise ProviderError(f"Twilio unreachable: {type(exc).__name__}") from exc
    finally:
        await http.close()
    sid: str = call.sid
    return sid
