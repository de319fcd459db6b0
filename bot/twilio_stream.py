"""Twilio Media Streams on our side of the socket: the handshake and a forgiving serializer.

Pipecat's `TwilioFrameSerializer` reads only `media` and `dtmf`. Here the app reads `connected`
and `start` itself (to learn streamSid, callSid and customParameters), treats `stop` as the end
of the call, passes Twilio's `mark` echoes on as `PlaybackMarkFrame`s (what has played), notes the
last inbound audio frame (so the call can wait for the STT to have it), and logs and skips anything malformed (non-JSON, unknown events,
bad base64, oversized messages, media before start) so one bad message never ends a call.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.serializers.twilio import TwilioFrameSerializer

from processors.frames import PlaybackMarkFrame

log = logging.getLogger(__name__)

MAX_MESSAGES_BEFORE_START = 1000


class StreamEndedBeforeStart(Exception):
    """The socket closed (or only sent garbage) before Twilio's `start` message."""


@dataclass(frozen=True)
class StreamStart:
    """What Twilio's `start` message says about the stream."""

    stream_sid: str
    call_sid: str | None
    account_sid: str | None
    custom_parameters: dict[str, str] = field(default_factory=dict)


def _preview(data: str | bytes) -> str:
    text = data if isinstance(data, str) else repr(data[:60])
    return text[:80]


def parse_message(data: str | bytes, *, max_bytes: int) -> dict[str, Any] | None:
    """Decode one Media Streams message, or log why it is skipped and return None."""
    if len(data) > max_bytes:
        log.warning(
            "twilio stream: skipped oversized message (%d bytes > %d)", len(data), max_bytes
        )
        return None
    try:
        message = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning("twilio stream: skipped non-JSON message: %r", _preview(data))
        return None
    if not isinstance(message, dict) or not isinstance(message.get("event"), str):
        log.warning("twilio stream: skipped message without an event: %r", _preview(data))
        return None
    return message


def parse_start(message: dict[str, Any]) -> StreamStart | None:
    start = message.get("start")
    if not isinstance(start, dict):
        log.warning("twilio stream: skipped `start` without a start object")
        return None
    stream_sid = message.get("streamSid") or start.get("streamSid")
    if not isinstance(stream_sid, str) or not stream_sid:
        log.warning("twilio stream: skipped `start` without a streamSid")
        return None
    params = start.get("customParameters") or {}
    if not isinstance(params, dict):
        params = {}
    return StreamStart(
        stream_sid=stream_sid,
        call_sid=start.get("callSid"),
        account_sid=start.get("accountSid"),
        custom_parameters={str(k): str(v) for k, v in params.items()},
    )


async def read_stream_start(websocket: WebSocket, *, max_bytes: int) -> StreamStart:
    """Read messages until `start`; skip `connected`, early media and malformed input."""
    for _ in range(MAX_MESSAGES_BEFORE_START):
        try:
            raw = await websocket.receive()
        except WebSocketDisconnect as exc:
            raise StreamEndedBeforeStart("socket closed before `start`") from exc
        if raw["type"] == "websocket.disconnect":
            raise StreamEndedBeforeStart("socket closed before `start`")
        data = raw.get("text") if raw.get("text") is not None else raw.get("bytes")
        if data is None:
            continue
        message = parse_message(data, max_bytes=max_bytes)
        if message is None:
            continue
        event = message["event"]
        if event == "start":
            start = parse_start(message)
            if start is not None:
                return start
        elif event == "connected":
            log.debug("twilio stream: connected %s", message.get("protocol"))
        elif event == "stop":
            raise StreamEndedBeforeStart("`stop` before `start`")
        else:
            log.warning("twilio stream: skipped `%s` before `start`", event)
    raise StreamEndedBeforeStart(f"no `start` in the first {MAX_MESSAGES_BEFORE_START} messages")


class ConveneTwilioSerializer(TwilioFrameSerializer):  # type: ignore[misc]
    """Twilio's serializer, hardened: validates every message and ends the call on `stop`."""

    def __init__(
        self,
        *,
        stream_sid: str,
        max_message_bytes: int,
        on_stop: Callable[[], Awaitable[None]],
        **kwargs: Any,
    ) -> None:
        super().__init__(stream_sid, **kwargs)
        self.stream_id = stream_sid  # for our logs
        self._max_bytes = max_message_bytes
        self._on_stop = on_stop
        self.marks: list[str] = []
        self.skipped = 0
        self.stopped = False
        self.received_ms = 0.0  # inbound audio accepted so far (8 kHz mu-law: 8 bytes per ms)
        # The id of the last inbound audio frame handed to the pipeline (None before any).
        self.last_audio_frame_id: int | None = None

    async def deserialize(self, data: str | bytes) -> Frame | None:
        message = parse_message(data, max_bytes=self._max_bytes)
        if message is None:
            self.skipped += 1
            return None
        event = message["event"]
        if event == "media":
            media = message.get("media")
            payload = media.get("payload") if isinstance(media, dict) else None
            if not isinstance(payload, str):
                return self._skip("`media` without a payload")
            try:
                decoded = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                return self._skip("`media` with invalid base64")
            self.received_ms += len(decoded) / 8
            frame: Frame | None = await super().deserialize(data)
            if isinstance(frame, InputAudioRawFrame):
                self.last_audio_frame_id = frame.id
            return frame
        if event == "dtmf":
            result: Frame | None = await super().deserialize(data)
            return result
        if event == "stop":
            if not self.stopped:
                self.stopped = True
                await self._on_stop()
            return None
        if event == "mark":
            mark = message.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            if isinstance(name, str):
                self.marks.append(name)
                return PlaybackMarkFrame(mark=name)
            return None
        if event in ("connected", "start"):
            return self._skip(f"repeated `{event}`")
        return self._skip(f"unknown event `{event}`")

    def _skip(self, why: str) -> Frame | None:
        self.skipped += 1
        log.warning("twilio stream %s: skipped %s", self.stream_id, why)
        return None
