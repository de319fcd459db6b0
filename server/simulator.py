"""A Twilio Media Streams simulator: a real websocket client that talks to a stream server as Twilio.

It sends exactly what Twilio sends (`connected`, `start`, 20 ms `media` frames of 8 kHz mu-law,
`dtmf`, `mark`, `stop`, with string sequence numbers increasing across all messages after
`connected`) and records what the server sends back (`media`, `mark`, `clear`, anything else).
Like Twilio it plays the server's audio in real time from a buffer (what comes early waits its
turn), echoes each `mark` the server sends once the audio queued before it has "played", and
on `clear` drops what it has not played and echoes the pending marks at once. It records how
far ahead the server's audio comes (`ahead_at_arrival_ms`: the audio still queued to play when
each `media` arrived), what each `clear` dropped, and for each echoed mark the audio received
when it came and when it was echoed; `played_ms` is what the caller heard. Like a caller it can stay on
the line while the bot talks (`hold`, `keep_line`), and `stop` is a hang-up: nothing after it is
heard. Paced audio keeps one 20 ms cadence across calls, as a phone line does.

It times what a caller's ear times (core/voice.py says what is voiced): when the last voiced
frame it sent went out (`StreamResult.last_voiced_sent_at`) and when each voiced `media` frame
of the server's arrived (`voiced_arrivals`), on the monotonic clock and on the call's clock
(the audio sent by then, as the server counts it); `first_voiced_after(t)` is the first reply
heard after `t`.

`simulate_stream` runs a whole call; `stream_url_from_twiml` reads the `<Stream>` URL and its
parameters out of the TwiML a voice webhook answers with.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import contextlib
import json
import math
import secrets
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from core.errors import ConveneError
from core.voice import voiced_ulaw
from server.audio import TWILIO_SAMPLE_RATE, ULAW_SILENCE, ulaw_to_pcm16, write_wav

FRAME_MS = 20
FRAME_BYTES = TWILIO_SAMPLE_RATE * FRAME_MS // 1000  # 160 bytes of mu-law per 20 ms frame
BYTES_PER_MS = TWILIO_SAMPLE_RATE // 1000
DTMF_DIGITS = frozenset("0123456789*#")
TWILIO_USER_AGENT = "Twilio.TmeWs/1.0"
MEDIA_FORMAT: dict[str, Any] = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}


class StreamError(ConveneError, ConnectionError):
    """The media stream could not be opened or used."""


class StreamConnectError(StreamError):
    """The websocket connection to the stream URL could not be opened."""


class StreamClosed(StreamError):
    """A message could not be sent because the websocket is closed."""


def new_sid(prefix: str) -> str:
    """A Twilio-style SID: two-letter prefix + 32 lowercase hex digits."""
    return prefix + secrets.token_hex(16)


class Arrival(NamedTuple):
    """A `media` message from the server: when it arrived (monotonic) and how much audio the
    client had sent by then (ms): the call's clock at the client."""

    at: float
    sent_ms: int


class EchoedMark(NamedTuple):
    """A `mark` the client echoed: ms of audio received when it came and when it was echoed
    (when the audio before it had played, or at a `clear`)."""

    name: str
    received_ms: float
    echoed_ms: float
    cleared: bool


@dataclass
class StreamResult:
    """What one simulated stream sent and what the server sent back."""

    stream_sid: str
    call_sid: str
    account_sid: str
    media_sent: int = 0
    received_media: bytearray = field(default_factory=bytearray)
    received_marks: list[str] = field(default_factory=list)
    received_clears: int = 0
    received_other: list[dict[str, Any]] = field(default_factory=list)
    closed_by_server: bool = False
    # Bytes of `media` received when `stop` was sent (None before): what the caller got.
    media_before_stop: int | None = None
    # When the last voiced frame sent went out (monotonic) and the audio sent by its end (ms).
    last_voiced_sent_at: float | None = None
    last_voiced_sent_ms: int | None = None
    # Each voiced `media` message from the server, in order of arrival.
    voiced_arrivals: list[Arrival] = field(default_factory=list)
    # For each `media` from the server: ms of its audio still queued to play when it arrived.
    ahead_at_arrival_ms: list[float] = field(default_factory=list)
    # The ms of audio each `clear` before `stop` dropped unplayed and the audio received by
    # then (ms), and what was still queued to play when `stop` was sent.
    unplayed_at_clear_ms: list[float] = field(default_factory=list)
    received_ms_at_clear: list[float] = field(default_factory=list)
    unplayed_at_stop_ms: float | None = None
    # Each mark echoed back: the audio received (ms) when it came and when it was echoed.
    echoed_marks: list[EchoedMark] = field(default_factory=list)

    @property
    def received_ms(self) -> float:
        return len(self.received_media) / BYTES_PER_MS

    @property
    def played_ms(self) -> float:
        """The server's audio the caller heard: what came before `stop` (all of it if none was
        sent), less what a `clear` dropped and what was still queued at the hang-up."""
        before_stop = self.media_before_stop
        got = self.received_ms if before_stop is None else before_stop / BYTES_PER_MS
        return got - sum(self.unplayed_at_clear_ms) - (self.unplayed_at_stop_ms or 0.0)

    def received_pcm16(self) -> bytes:
        """The audio the server sent back, decoded to 8 kHz PCM16 mono."""
        return ulaw_to_pcm16(bytes(self.received_media))


class _PendingMark(NamedTuple):
    due: float  # monotonic time the audio before it has played
    name: str
    received_ms: float  # audio received when it came
    cleared: bool = False  # echoed early, by a `clear`


def _decode_payload(media: Any) -> bytes | None:
    payload = media.get("payload") if isinstance(media, dict) else None
    if not isinstance(payload, str):
        return None
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None


def _is_fast(speed: float) -> bool:
    if math.isnan(speed):
        raise ValueError("speed must be a number, got NaN")
    return speed <= 0 or math.isinf(speed)


class TwilioStreamClient:
    """One Media Streams connection, as Twilio opens it. Use as an async context manager."""

    def __init__(
        self,
        url: str,
        *,
        custom_parameters: Mapping[str, str] | None = None,
        call_sid: str | None = None,
        account_sid: str | None = None,
        max_size: int | None = 2**24,
        auth_token: str | None = None,
        echo_marks: bool = True,
        open_timeout: float = 10.0,
    ) -> None:
        """`auth_token` signs the handshake with X-Twilio-Signature as Twilio does."""
        self.url = url
        self.custom_parameters = dict(custom_parameters or {})
        self.max_size = max_size
        self.auth_token = auth_token
        self.echo_marks = echo_marks
        self.open_timeout = open_timeout
        self._result = StreamResult(
            stream_sid=new_sid("MZ"),
            call_sid=call_sid or new_sid("CA"),
            account_sid=account_sid or new_sid("AC"),
        )
        self._ws: ClientConnection | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._echoer: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        self._sequence = 0
        self._chunk = 0
        self._ulaw_bytes_sent = 0
        self._closing_self = False
        self._stopped = False
        self._closed = asyncio.Event()
        self._playback_until = 0.0  # monotonic time the server's queued audio finishes playing
        self._last_media_at = 0.0  # monotonic time the last `media` came from the server
        self._pending_marks: deque[_PendingMark] = deque()
        self._marks_changed = asyncio.Event()
        # The paced cadence: when the last paced frame was due, its length, when it was sent.
        self._cadence: tuple[float, float, float] | None = None

    @property
    def result(self) -> StreamResult:
        """Everything recorded so far (live: it keeps filling while the stream runs)."""
        return self._result

    @property
    def stream_sid(self) -> str:
        return self._result.stream_sid

    @property
    def closed(self) -> bool:
        """Whether the websocket has closed (either side)."""
        return self._closed.is_set()

    @property
    def close_code(self) -> int | None:
        """The close code the server sent (1008: the stream was refused), once closed."""
        return self._ws.close_code if self._ws is not None else None

    @property
    def close_reason(self) -> str | None:
        return self._ws.close_reason if self._ws is not None else None

    # -- connection ----------------------------------------------------------------------------

    async def __aenter__(self) -> TwilioStreamClient:
        headers: dict[str, str] = {}
        if self.auth_token:
            headers["X-Twilio-Signature"] = RequestValidator(self.auth_token).compute_signature(
                self.url, {}
            )
        try:
            self._ws = await connect(
                self.url,
                additional_headers=headers,
                user_agent_header=TWILIO_USER_AGENT,
                max_size=self.max_size,
                open_timeout=self.open_timeout,
                close_timeout=5,
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise StreamConnectError(f"cannot open media stream {self.url}: {exc}") from exc
        self._receiver = asyncio.create_task(self._receive(self._ws), name="twilio-sim-receiver")
        if self.echo_marks:
            self._echoer = asyncio.create_task(self._echo_marks(), name="twilio-sim-marks")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the websocket from our side (if still open) and stop the background tasks."""
        self._stopped = True
        if self._echoer is not None:
            self._echoer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._echoer
        if self._ws is not None and not self._closed.is_set():
            self._closing_self = True
            await self._ws.close()
        if self._receiver is not None:
            await self._receiver

    async def wait_closed(self, timeout: float) -> None:  # noqa: ASYNC109 (API as specified)
        """Wait until the websocket is closed (after `stop` the server should close it).

        Raises TimeoutError if it is still open after `timeout` seconds.
        """
        if self._ws is None:
            raise RuntimeError("TwilioStreamClient is not connected; use `async with`")
        try:
            await asyncio.wait_for(self._closed.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(f"the server did not close the stream within {timeout:g}s") from None

    # -- receiving -----------------------------------------------------------------------------

    async def _receive(self, ws: ClientConnection) -> None:
        try:
            async for data in ws:
                self._handle(data)
        except ConnectionClosed:
            pass
        finally:
            self._result.closed_by_server = self._server_closed_first(ws)
            self._closed.set()
            self._marks_changed.set()

    def _server_closed_first(self, ws: ClientConnection) -> bool:
        server_first = ws.protocol.close_rcvd_then_sent
        if server_first is not None:
            return server_first
        # No complete closing handshake: whoever did not start closing dropped the connection.
        return not self._closing_self

    def _handle(self, data: str | bytes) -> None:
        try:
            message = json.loads(data)
        except (ValueError, RecursionError):
            self._result.received_other.append({"raw": data})
            return
        if not isinstance(message, dict):
            self._result.received_other.append({"raw": data})
            return
        if not self._handle_event(message):
            self._result.received_other.append(message)

    def _handle_event(self, message: dict[str, Any]) -> bool:
        """Record a media/mark/clear for this stream; False if it is anything else."""
        event = message.get("event")
        if event not in ("media", "mark", "clear") or message.get("streamSid") != self.stream_sid:
            return False
        if event == "media":
            audio = _decode_payload(message.get("media"))
            if audio is None:
                return False
            self._result.received_media.extend(audio)
            now = time.monotonic()
            if voiced_ulaw(audio):
                sent_ms = self._ulaw_bytes_sent // BYTES_PER_MS
                self._result.voiced_arrivals.append(Arrival(now, sent_ms))
            self._last_media_at = now
            self._result.ahead_at_arrival_ms.append(self._ahead_ms(now))
            self._playback_until = max(now, self._playback_until) + len(audio) / TWILIO_SAMPLE_RATE
            return True
        if event == "mark":
            mark = message.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            if not isinstance(name, str):
                return False
            self._result.received_marks.append(name)
            self._queue_mark(max(time.monotonic(), self._playback_until), name)
            return True
        self._result.received_clears += 1
        now = time.monotonic()
        if not self._stopped:  # after `stop` nothing plays to anyone
            self._result.unplayed_at_clear_ms.append(self._ahead_ms(now))
            self._result.received_ms_at_clear.append(self._result.received_ms)
        self._playback_until = now
        self._pending_marks = deque(
            _PendingMark(0.0, mark.name, mark.received_ms, cleared=True)
            for mark in self._pending_marks
        )
        self._marks_changed.set()
        return True

    def _ahead_ms(self, now: float) -> float:
        return max(0.0, self._playback_until - now) * 1000

    def _queue_mark(self, due: float, name: str) -> None:
        if self.echo_marks:
            self._pending_marks.append(_PendingMark(due, name, self._result.received_ms))
            self._marks_changed.set()

    async def _echo_marks(self) -> None:
        """Send each server mark back when the audio before it has played, as Twilio does."""
        while not (self._stopped or self._closed.is_set()):
            if not self._pending_marks:
                self._marks_changed.clear()
                await self._marks_changed.wait()
                continue
            mark = self._pending_marks[0]
            delay = mark.due - time.monotonic()
            if delay > 0:
                self._marks_changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._marks_changed.wait(), delay)
                continue
            self._pending_marks.popleft()
            try:
                await self._send(
                    {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": mark.name}},
                    echo=True,
                )
            except StreamClosed:
                return
            if not self._stopped:
                self._result.echoed_marks.append(
                    EchoedMark(mark.name, mark.received_ms, self._result.received_ms, mark.cleared)
                )

    # -- sending -------------------------------------------------------------------------------

    async def _send(
        self, message: dict[str, Any], *, sequenced: bool = True, echo: bool = False
    ) -> None:
        async with self._send_lock:
            if echo and self._stopped:
                return  # Twilio sends nothing after `stop`
            if sequenced:
                self._sequence += 1
                message = {
                    "event": message.pop("event"),
                    "sequenceNumber": str(self._sequence),
                } | message
            await self._send_text(json.dumps(message, separators=(",", ":")))

    async def _send_text(self, data: str | bytes) -> None:
        if self._ws is None:
            raise RuntimeError("TwilioStreamClient is not connected; use `async with`")
        if self._closed.is_set():
            raise StreamClosed(self._closed_message())
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise StreamClosed(self._closed_message()) from exc

    def _closed_message(self) -> str:
        who = "we" if self._closing_self else "the server"
        code = self._ws.close_code if self._ws is not None else None
        reason = self._ws.close_reason if self._ws is not None else None
        detail = f" (code {code}{': ' + reason if reason else ''})" if code is not None else ""
        return f"media stream {self.stream_sid} was closed by {who}{detail}"

    async def send_raw(self, data: str | bytes) -> None:
        """Send anything as one websocket message (for testing malformed input)."""
        async with self._send_lock:
            await self._send_text(data)

    async def send_connected(self) -> None:
        """Twilio's first message; it carries no sequence number."""
        await self._send(
            {"event": "connected", "protocol": "Call", "version": "1.0.0"}, sequenced=False
        )

    async def send_start(self, **overrides: Any) -> None:
        """Twilio's `start`; `overrides` replace fields of its `start` object (None drops
        one), for testing what the server does with a `start` Twilio would not send."""
        result = self._result
        start: dict[str, Any] = {
            "accountSid": result.account_sid,
            "streamSid": result.stream_sid,
            "callSid": result.call_sid,
            "tracks": ["inbound"],
            "customParameters": dict(self.custom_parameters),
            "mediaFormat": dict(MEDIA_FORMAT),
        }
        for key, value in overrides.items():
            if value is None:
                start.pop(key, None)
            else:
                start[key] = value
        message: dict[str, Any] = {"event": "start", "start": start}
        if start.get("streamSid") is not None:
            message["streamSid"] = start["streamSid"]
        await self._send(message)

    async def send_media(self, ulaw_chunk: bytes) -> None:
        """One `media` message; timestamp = ms of audio sent before this chunk."""
        self._chunk += 1
        media = {
            "track": "inbound",
            "chunk": str(self._chunk),
            "timestamp": str(self._ulaw_bytes_sent // BYTES_PER_MS),
            "payload": base64.b64encode(ulaw_chunk).decode("ascii"),
        }
        self._ulaw_bytes_sent += len(ulaw_chunk)
        await self._send({"event": "media", "media": media, "streamSid": self.stream_sid})
        self._result.media_sent += 1
        if voiced_ulaw(ulaw_chunk):
            self._result.last_voiced_sent_at = time.monotonic()
            self._result.last_voiced_sent_ms = self._ulaw_bytes_sent // BYTES_PER_MS

    async def send_dtmf(self, digit: str) -> None:
        if digit not in DTMF_DIGITS:
            raise ValueError(f"DTMF digit must be one of 0-9, * or #, got {digit!r}")
        await self._send(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    async def send_mark(self, name: str) -> None:
        await self._send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    async def send_stop(self) -> None:
        """Twilio's last message (the call is over); pending mark echoes are dropped."""
        self._stopped = True
        self._pending_marks.clear()
        result = self._result
        result.media_before_stop = len(result.received_media)
        result.unplayed_at_stop_ms = self._ahead_ms(time.monotonic())
        stop = {"accountSid": result.account_sid, "callSid": result.call_sid}
        await self._send({"event": "stop", "streamSid": result.stream_sid, "stop": stop})

    async def hang_up(self) -> None:
        """Hang up as Twilio does when the caller does: `stop`, then close the socket."""
        await self.send_stop()
        await self.close()

    def bot_quiet_since(self) -> float:
        """Monotonic time the server's audio last finished playing (0.0 if none came yet)."""
        return max(self._playback_until, self._last_media_at)

    def first_voiced_after(self, instant: float) -> Arrival | None:
        """The first voiced `media` frame that arrived after `instant` (monotonic), if any."""
        arrivals = self._result.voiced_arrivals
        index = bisect.bisect_right(arrivals, instant, key=lambda arrival: arrival.at)
        return arrivals[index] if index < len(arrivals) else None

    async def hold(
        self, quiet_secs: float, *, for_answer: bool = False, max_secs: float = 120.0
    ) -> None:
        """Stay on the line, sending silence in real time, until the bot is quiet.

        Returns once nothing has played for `quiet_secs` (a caller waiting for an answer, then
        for the end of it), or after `max_secs`. With `for_answer`, the quiet only counts once
        some audio has come back: a caller who asked something waits for the answer.
        """
        started = time.monotonic()

        def quiet() -> bool:
            heard = self.bot_quiet_since()
            waiting = for_answer and heard == 0.0
            return not waiting and time.monotonic() - max(started, heard) >= quiet_secs

        await self.keep_line(quiet, max_secs=max_secs)

    async def keep_line(self, until: Callable[[], bool], *, max_secs: float = 120.0) -> bool:
        """Send silence in real time, 20 ms a frame, until `until()` holds (checked before each
        frame); False if it still did not after `max_secs`."""
        silence = bytes([ULAW_SILENCE]) * FRAME_BYTES
        started = time.monotonic()
        while not until():
            if time.monotonic() - started >= max_secs:
                return False
            await self._paced_send(silence, FRAME_MS / 1000)
        return True

    async def _paced_send(self, frame: bytes, frame_secs: float) -> None:
        """Send one frame when it is due: one frame after the last paced frame was due while
        frames keep coming at this pace (one cadence, late frames catch up, no drift), else a
        frame from now."""
        now = time.monotonic()
        due = now + frame_secs
        if self._cadence is not None:
            last_due, last_secs, last_sent = self._cadence
            if last_secs == frame_secs and now - last_sent <= frame_secs:
                due = last_due + frame_secs
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        await self.send_media(frame)
        self._cadence = (due, frame_secs, time.monotonic())

    async def stream_audio(
        self,
        ulaw: bytes,
        *,
        speed: float = 1.0,
        on_progress: Callable[[float], None] | None = None,
    ) -> None:
        """Send `ulaw` as 20 ms media frames (the last padded with silence), paced like a call.

        Frame i goes out when its audio has been "captured": (i + 1) * 20 ms / speed after the
        start, on an absolute monotonic schedule (no drift from sleep overshoot) that goes on
        from the previous paced frames when the last went out at most a frame ago. `speed` <= 0 or
        infinite sends as fast as possible, yielding to the event loop every frame.
        `on_progress` gets the seconds of audio sent so far after every frame.
        """
        fast = _is_fast(speed)
        frame_secs = FRAME_MS / 1000 / (1.0 if fast else speed)
        for index, offset in enumerate(range(0, len(ulaw), FRAME_BYTES)):
            frame = ulaw[offset : offset + FRAME_BYTES]
            frame += bytes([ULAW_SILENCE]) * (FRAME_BYTES - len(frame))
            if fast:
                await asyncio.sleep(0)
                await self.send_media(frame)
            else:
                await self._paced_send(frame, frame_secs)
            if on_progress is not None:
                on_progress((index + 1) * FRAME_MS / 1000)


async def simulate_stream(
    url: str,
    ulaw: bytes,
    *,
    custom_parameters: Mapping[str, str] | None = None,
    speed: float = 1.0,
    trailing_silence_ms: int = 1000,
    close_timeout: float = 60.0,
    record_path: Path | None = None,
    on_progress: Callable[[float], None] | None = None,
    call_sid: str | None = None,
    account_sid: str | None = None,
    auth_token: str | None = None,
    hold_secs: float = 0.0,
    hold_for_answer: bool = False,
) -> StreamResult:
    """Run one stream as Twilio would: connected, start, media, trailing silence, stop.

    The trailing silence (mu-law 0xFF) lets the far end's VAD hear the end of speech. With
    `hold_secs` > 0 the caller then stays on the line (silence in real time) until the bot has
    been quiet that long, so a reply is heard before the hang-up (`stop`); with
    `hold_for_answer`, it first waits for some reply audio (see `TwilioStreamClient.hold`). Then it
    waits up to `close_timeout` s for the server to close the socket; if it does not, the
    simulator closes it and `closed_by_server` is False. Raises StreamClosed if the server
    closes before `stop` is sent. With `record_path`, what the server sent back (`media`
    audio as 8 kHz PCM16 mono) is written there as WAV (empty if nothing came back), also
    when the stream failed.
    """
    silence = bytes([ULAW_SILENCE]) * (max(0, trailing_silence_ms) * BYTES_PER_MS)
    client = TwilioStreamClient(
        url,
        custom_parameters=custom_parameters,
        call_sid=call_sid,
        account_sid=account_sid,
        auth_token=auth_token,
    )
    try:
        async with client:
            await client.send_connected()
            await client.send_start()
            await client.stream_audio(ulaw + silence, speed=speed, on_progress=on_progress)
            if hold_secs > 0:
                await client.hold(hold_secs, for_answer=hold_for_answer)
            await client.send_stop()
            with contextlib.suppress(TimeoutError):
                await client.wait_closed(close_timeout)
    finally:
        if record_path is not None:
            write_wav(record_path, client.result.received_pcm16(), TWILIO_SAMPLE_RATE)
    return client.result


def stream_url_from_twiml(twiml: str) -> tuple[str, dict[str, str]]:
    """The `<Connect><Stream url=...>` URL and its `<Parameter>`s from a TwiML document."""
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError as exc:
        raise ValueError(f"TwiML is not valid XML: {exc}") from exc
    if root.tag != "Response":
        raise ValueError(f"TwiML root must be <Response>, got <{root.tag}>")
    stream = root.find("./Connect/Stream")
    if stream is None:
        raise ValueError("TwiML has no <Connect><Stream> element")
    url = stream.get("url")
    if not url:
        raise ValueError("TwiML <Stream> has no url attribute")
    params: dict[str, str] = {}
    for param in stream.findall("Parameter"):
        name = param.get("name")
        if name is None:
            raise ValueError("TwiML <Parameter> has no name attribute")
        params[name] = param.get("value", "")
    return url, params
