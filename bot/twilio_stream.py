"""Twilio Media Streams on our side of the socket: the handshake and a forgiving serializer.

Pipecat's `TwilioFrameSerializer` reads only `media` and `dtmf`. Here the app reads `connected`
and `start` itself (to learn streamSid, callSid, mediaFormat and customParameters), treats
`stop` as the end of the call, passes Twilio's `mark` echoes on as `PlaybackMarkFrame`s (what
has played), notes the last inbound audio frame (so the call can wait for the STT to have it),
keeps the call's clock at the socket (`SocketClock`: the caller's audio as it is read, each
reply chunk as it is written, each `clear`), and skips anything malformed (non-JSON, too large or too deeply
nested to parse, unknown events, bad base64, bad DTMF, media before start) so one bad message
never ends a call. Size and nesting are checked before a message is parsed. Each kind of bad
message is logged the first time it comes and counted after that; the counts are logged once
when the stream ends.

`TwilioTransport` is Pipecat's FastAPI websocket transport put together from its public parts,
with an output that sends reply audio ahead of real time (`call.audio_lead_secs`): Pipecat's
output paces audio at exactly real time, so the caller's end holds only the chunk in flight
(~20-40 ms) and any network jitter above that is heard as a gap. Twilio plays what it is sent
from its own buffer and drops it on `clear` (barge-in), so sending ahead costs nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from pipecat.frames.frames import (
    AudioRawFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.serializers.base_serializer import FrameSerializer
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.base_transport import BaseTransport
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketCallbacks,
    FastAPIWebsocketClient,
    FastAPIWebsocketInputTransport,
    FastAPIWebsocketOutputTransport,
    FastAPIWebsocketParams,
)
from pipecat.utils.security.allowed_origins import is_origin_allowed

from processors.frames import PlaybackMarkFrame
from processors.socket_clock import SocketClock

log = logging.getLogger(__name__)

MAX_MESSAGES_BEFORE_START = 1000
# Twilio's messages nest three deep (`start` > `mediaFormat`); deeper is not Twilio.
MAX_JSON_DEPTH = 8
DTMF_DIGITS = frozenset("0123456789*#")
# The one audio format the pipeline decodes (what Twilio sends for a <Stream>).
MEDIA_FORMAT = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}


class StreamEndedBeforeStart(Exception):
    """The socket closed (or only sent garbage) before Twilio's `start` message."""


class BadStart(Exception):
    """A `start` the call cannot run on (no streamSid, a wrong mediaFormat). It still carries
    its custom parameters, so the call it names can be ended rather than left ringing."""

    def __init__(
        self, reason: str, custom_parameters: dict[str, str], call_sid: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.custom_parameters = custom_parameters
        self.call_sid = call_sid


@dataclass(frozen=True)
class StreamStart:
    """What Twilio's `start` message says about the stream."""

    stream_sid: str
    call_sid: str | None
    account_sid: str | None
    custom_parameters: dict[str, str] = field(default_factory=dict)


class SkippedMessages:
    """Bad messages of one stream: the first of each kind logged, the rest counted."""

    def __init__(self, stream: str = "(before start)") -> None:
        self.stream = stream
        self.counts: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def skip(self, kind: str, detail: str = "") -> None:
        """`kind` is a fixed phrase (never the sender's data); `detail` describes the first."""
        self.counts[kind] += 1
        if self.counts[kind] == 1:
            log.warning(
                "twilio stream %s: skipped %s%s (more of this kind are counted, not logged)",
                self.stream,
                kind,
                f" {detail}" if detail else "",
            )

    def log_summary(self) -> None:
        repeated = {kind: n for kind, n in self.counts.items() if n > 1}
        if repeated:
            log.warning(
                "twilio stream %s: skipped %d bad messages in all: %s",
                self.stream,
                self.total,
                "; ".join(f"{n} x {kind}" for kind, n in sorted(repeated.items())),
            )


def _preview(data: str | bytes) -> str:
    text = data if isinstance(data, str) else repr(data[:60])
    return repr(text[:80])


def _too_deep(data: str | bytes, max_depth: int) -> bool:
    """Whether JSON text nests arrays/objects deeper than `max_depth` (checked before it is
    parsed: a 50,000-deep message never reaches the parser). Brackets inside strings are not
    nesting."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if text.count("[") + text.count("{") <= max_depth:
        return False
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif char in "]}":
            depth -= 1
    return False


def parse_message(
    data: str | bytes, *, max_bytes: int, skipped: SkippedMessages | None = None
) -> dict[str, Any] | None:
    """Decode one Media Streams message, or count why it is skipped and return None."""
    skipped = skipped if skipped is not None else SkippedMessages()
    if len(data) > max_bytes:
        skipped.skip("oversized message", f"({len(data)} bytes > {max_bytes})")
        return None
    if _too_deep(data, MAX_JSON_DEPTH):
        skipped.skip("too deeply nested message", f"(> {MAX_JSON_DEPTH} levels)")
        return None
    try:
        message = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        skipped.skip("non-JSON message", _preview(data))
        return None
    if not isinstance(message, dict) or not isinstance(message.get("event"), str):
        skipped.skip("message without an event")
        return None
    return message


def _custom_parameters(start: dict[str, Any]) -> dict[str, str]:
    params = start.get("customParameters") or {}
    if not isinstance(params, dict):
        return {}
    return {str(k): str(v) for k, v in params.items()}


def parse_start(message: dict[str, Any], skipped: SkippedMessages | None = None) -> StreamStart:
    """A `start` message's stream; raises BadStart when the call cannot run on it."""
    start = message.get("start")
    if not isinstance(start, dict):
        raise BadStart("`start` without a start object", {})
    params = _custom_parameters(start)
    call_sid = start.get("callSid")
    call_sid = call_sid if isinstance(call_sid, str) else None
    stream_sid = message.get("streamSid") or start.get("streamSid")
    if not isinstance(stream_sid, str) or not stream_sid:
        raise BadStart("`start` without a streamSid", params, call_sid)
    media_format = start.get("mediaFormat")
    if media_format != MEDIA_FORMAT:
        shown = json.dumps(media_format)[:120] if media_format is not None else "none"
        raise BadStart(
            f"unsupported mediaFormat {shown} (only audio/x-mulaw, 8000 Hz, 1 channel)",
            params,
            call_sid,
        )
    account_sid = start.get("accountSid")
    return StreamStart(
        stream_sid=stream_sid,
        call_sid=call_sid,
        account_sid=account_sid if isinstance(account_sid, str) else None,
        custom_parameters=params,
    )


async def read_stream_start(
    websocket: WebSocket, *, max_bytes: int, skipped: SkippedMessages | None = None
) -> StreamStart:
    """Read messages until `start`; skip `connected`, early media and malformed input.

    Raises BadStart for a `start` the call cannot run on, StreamEndedBeforeStart when the
    socket goes away (or only sends garbage) first."""
    skipped = skipped if skipped is not None else SkippedMessages()
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
        message = parse_message(data, max_bytes=max_bytes, skipped=skipped)
        if message is None:
            continue
        event = message["event"]
        if event == "start":
            return parse_start(message, skipped)
        if event == "connected":
            log.debug("twilio stream: connected")
        elif event == "stop":
            raise StreamEndedBeforeStart("`stop` before `start`")
        elif event == "media":
            skipped.skip("`media` before `start`")
        else:
            skipped.skip("event before `start`", f"`{event[:40]}`")
    raise StreamEndedBeforeStart(f"no `start` in the first {MAX_MESSAGES_BEFORE_START} messages")


class ConveneTwilioSerializer(TwilioFrameSerializer):  # type: ignore[misc]
    """Twilio's serializer, hardened: validates every message, ends the call on `stop`, and
    sends one `clear` per interruption (noting it on the clock)."""

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
        self.bad_messages = SkippedMessages(stream_sid)
        self.stopped = False
        # The call's clock at the socket: inbound audio as read, reply chunks as written.
        self.clock = SocketClock()
        # The id of the last inbound audio frame handed to the pipeline (None before any).
        self.last_audio_frame_id: int | None = None
        # The interruption whose `clear` went out last (one `clear` per interruption).
        self._cleared_for: int | None = None

    async def deserialize(self, data: str | bytes) -> Frame | None:
        message = parse_message(data, max_bytes=self._max_bytes, skipped=self.bad_messages)
        if message is None:
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
            self.clock.inbound(decoded)
            try:
                frame: Frame | None = await super().deserialize(data)
            except Exception as exc:  # one undecodable message never ends the call
                return self._skip("undecodable `media`", type(exc).__name__)
            if isinstance(frame, InputAudioRawFrame):
                self.last_audio_frame_id = frame.id
            return frame
        if event == "dtmf":
            dtmf = message.get("dtmf")
            digit = dtmf.get("digit") if isinstance(dtmf, dict) else None
            if not isinstance(digit, str) or digit not in DTMF_DIGITS:
                return self._skip("malformed `dtmf`")
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
        return self._skip("unknown event", f"`{event[:40]}`")

    async def serialize(self, frame: Frame) -> str | bytes | None:
        data: str | bytes | None = await super().serialize(frame)
        if data and isinstance(frame, AudioRawFrame):
            # The transport writes this to the socket as soon as it is returned.
            samples = len(frame.audio) / (2 * frame.num_channels)
            self.clock.audio_written(frame.audio, samples * 1000 / frame.sample_rate)
        elif data and isinstance(frame, InterruptionFrame):
            if frame.id == self._cleared_for:
                return None  # this interruption's `clear` is already out
            self._cleared_for = frame.id
            self.clock.cleared()  # `clear`: Twilio drops what it has not played
        return data

    @property
    def skipped(self) -> int:
        """Bad messages skipped so far."""
        return self.bad_messages.total

    def _skip(self, kind: str, detail: str = "") -> Frame | None:
        self.bad_messages.skip(kind, detail)
        return None


class LeadingOutputTransport(FastAPIWebsocketOutputTransport):  # type: ignore[misc]
    """Pipecat's websocket output, but reply audio goes out `lead_secs` ahead of real time.

    Each chunk is written as soon as it is due to keep `lead_secs` of audio queued at the far
    end (`SocketClock.ahead_ms`: Twilio plays what it holds in real time): a reply's first
    `lead_secs` go out at once, then one chunk each time one has played. With `lead_secs` 0
    it is Pipecat's own pacing (exactly real time, one chunk ahead). Everything else (chunking
    into `audio_out_10ms_chunks`, `clear` on an interruption, marks after the audio before
    them, the frame passed downstream once written) is Pipecat's.
    """

    def __init__(
        self,
        transport: BaseTransport,
        client: FastAPIWebsocketClient,
        params: FastAPIWebsocketParams,
        *,
        clock: SocketClock,
        lead_secs: float,
    ) -> None:
        if params.serializer is None or (lead_secs > 0 and params.add_wav_header):
            raise ValueError("the output needs a serializer (and no WAV headers with a lead)")
        super().__init__(transport, client, params)
        self.lead_secs = lead_secs
        self.clock = clock
        self.socket_client = client
        self.serializer: FrameSerializer = params.serializer
        self.channels = params.audio_out_channels

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InterruptionFrame):
            # `clear` first, before Pipecat passes the interruption on and flushes its queues
            # (it writes the interruption again after that; the serializer sends one `clear`
            # per interruption), so the caller's end stops at once and what it had not played
            # is known downstream.
            await self.write_now(frame)
        await super().process_frame(frame, direction)

    async def write_now(self, frame: Frame) -> bool:
        """Serialize `frame` and write it to the socket now (False: it was not sent)."""
        client = self.socket_client
        if client.is_closing or not client.is_connected:
            return False
        try:
            payload = await self.serializer.serialize(frame)
            if payload:
                await client.send(payload)
        except Exception as exc:  # as Pipecat's own write: the frame was not sent
            log.error("twilio stream: sending %s failed: %s", type(frame).__name__, exc)
            return False
        return True

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        if self.lead_secs <= 0:
            written: bool = await super().write_audio_frame(frame)
            return written
        out = OutputAudioRawFrame(
            audio=frame.audio, sample_rate=self.sample_rate, num_channels=self.channels
        )
        if not await self.write_now(out):
            return False
        # Not a poll: the far end plays in real time, so the next chunk is due when the audio
        # queued there is down to the lead.
        due_in = self.clock.ahead_ms() / 1000 - self.lead_secs
        if due_in > 0:
            await asyncio.sleep(due_in)
        return True


class TwilioTransport(BaseTransport):  # type: ignore[misc]
    """One Twilio media stream as a Pipecat transport: Pipecat's FastAPI websocket input and
    client, and `LeadingOutputTransport`, sharing one socket. `on_client_disconnected` is
    called when the caller's side closes the socket (not when we do)."""

    def __init__(
        self,
        websocket: WebSocket,
        params: FastAPIWebsocketParams,
        *,
        clock: SocketClock,
        lead_secs: float,
        on_client_disconnected: Callable[[], Awaitable[None]],
    ) -> None:
        if params.allowed_origins:
            origin = websocket.headers.get("origin", "")
            if not is_origin_allowed(origin, params.allowed_origins):
                raise ValueError(f"WebSocket connection rejected: origin {origin!r} not allowed")
        super().__init__()

        async def connected(_websocket: WebSocket) -> None:
            log.debug("twilio stream: pipeline connected")

        async def disconnected(_websocket: WebSocket) -> None:
            await on_client_disconnected()

        async def timed_out(_websocket: WebSocket) -> None:
            log.debug("twilio stream: session timeout")

        client = FastAPIWebsocketClient(
            websocket,
            FastAPIWebsocketCallbacks(
                on_client_connected=connected,
                on_client_disconnected=disconnected,
                on_session_timeout=timed_out,
            ),
            ws_close_timeout=params.ws_close_timeout,
        )
        self.source = FastAPIWebsocketInputTransport(self, client, params)
        self.sink = LeadingOutputTransport(self, client, params, clock=clock, lead_secs=lead_secs)

    def input(self) -> FastAPIWebsocketInputTransport:
        return self.source

    def output(self) -> LeadingOutputTransport:
        return self.sink
