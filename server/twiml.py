"""TwiML built with twilio's TwiML classes."""

from __future__ import annotations

from collections.abc import Mapping

from twilio.twiml.voice_response import Connect, VoiceResponse


def stream_twiml(
    stream_url: str, parameters: Mapping[str, str], *, digits: str | None = None
) -> str:
    """Optionally play DTMF digits (meeting ID, passcode, `w` pauses), then connect the stream."""
    response = VoiceResponse()
    if digits:
        response.play(digits=digits)
    connect = Connect()
    stream = connect.stream(url=stream_url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def refusal_twiml(message: str) -> str:
    """Say `message` to the caller, then hang up (no stream, no token)."""
    response = VoiceResponse()
    response.say(message)
    response.hangup()
    return str(response)
