"""The Twilio Media Streams simulator and its audio helpers, against a real loopback websocket server."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, VoiceResponse
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers

from server.audio import (
    AudioFormatError,
    float_to_pcm16,
    load_audio,
    pcm16_to_float,
    pcm16_to_ulaw,
    resample,
    to_twilio_ulaw,
    ulaw_to_pcm16,
    write_wav,
)
from server.simulator import (
    StreamClosed,
    StreamConnectError,
    TwilioStreamClient,
    simulate_stream,
    stream_url_from_twiml,
)

SID_PATTERNS = {
    "streamSid": re.compile(r"^MZ[0-9a-f]{32}$"),
    "callSid": re.compile(r"^CA[0-9a-f]{32}$"),
    "accountSid": re.compile(r"^AC[0-9a-f]{32}$"),
}
ECHO_ULAW = bytes(range(0, 256, 2)) + bytes(range(1, 64, 2))  # 160 bytes the server plays back

Behaviour = Callable[[ServerConnection, dict[str, Any], "FakeTwilioServer"], Awaitable[bool]]


class FakeTwilioServer:
    """Records every message; `behaviour` reacts to each one and returns True to close."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or echo_then_close_on_stop
        self.raw: list[str | bytes] = []
        self.times: list[float] = []
        self.headers: Headers = Headers()
        self.path = ""
        self.done = asyncio.Event()
        self.marked_at = 0.0
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(m) for m in self.raw]

    def events(self) -> list[str]:
        return [m["event"] for m in self.messages]

    async def handler(self, ws: ServerConnection) -> None:
        self.headers = ws.request.headers if ws.request else Headers()
        self.path = ws.request.path if ws.request else ""
        try:
            async for data in ws:
                self.raw.append(data)
                self.times.append(time.monotonic())
                self._changed.set()
                try:
                    message = json.loads(data)
                except ValueError:
                    continue
                if await self.behaviour(ws, message, self):
                    await ws.close()
                    return
        finally:
            self.done.set()


async def echo_then_close_on_stop(
    ws: ServerConnection, message: dict[str, Any], server: FakeTwilioServer
) -> bool:
    """Like a bot: on `start` play some audio, mark it, clear it; close after `stop`."""
    sid = message.get("streamSid")
    if message.get("event") == "start":
        payload = base64.b64encode(ECHO_ULAW).decode()
        await ws.send(
            json.dumps({"event": "media", "streamSid": sid, "media": {"payload": payload}})
        )
        await ws.send(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "m1"}}))
        await ws.send(json.dumps({"event": "clear", "streamSid": sid}))
    return bool(message.get("event") == "stop")


async def never_close(
    ws: ServerConnection, message: dict[str, Any], server: FakeTwilioServer
) -> bool:
    return False


@asynccontextmanager
async def running(server: FakeTwilioServer) -> AsyncIterator[str]:
    async with serve(server.handler, "127.0.0.1", 0) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/twilio/media"


def tone_ulaw(seconds: float, freq: float = 440.0) -> bytes:
    t = np.arange(int(8000 * seconds)) / 8000
    return pcm16_to_ulaw(float_to_pcm16(0.5 * np.sin(2 * np.pi * freq * t)))


def assert_sequence_numbers(messages: list[dict[str, Any]]) -> None:
    assert "sequenceNumber" not in messages[0]  # `connected` carries none
    numbers = [m["sequenceNumber"] for m in messages[1:]]
    assert all(isinstance(n, str) for n in numbers)
    assert [int(n) for n in numbers] == list(range(1, len(numbers) + 1))


# -- the stream, message by message ------------------------------------------------------------


async def test_simulate_stream_speaks_twilio_media_streams(tmp_path: Path) -> None:
    server = FakeTwilioServer()
    ulaw = tone_ulaw(1.0)
    record = tmp_path / "reply.wav"
    async with running(server) as url:
        result = await simulate_stream(
            url,
            ulaw,
            custom_parameters={"call_id": "call-123", "series": "team-sync"},
            speed=0,
            trailing_silence_ms=200,
            record_path=record,
            close_timeout=10,
        )
    messages = server.messages
    assert server.path == "/twilio/media"
    assert messages[0] == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    assert_sequence_numbers(messages)

    start = messages[1]
    assert start["event"] == "start"
    assert start["sequenceNumber"] == "1"
    assert set(start["start"]) == {
        "accountSid",
        "streamSid",
        "callSid",
        "tracks",
        "customParameters",
        "mediaFormat",
    }
    for key, pattern in SID_PATTERNS.items():
        assert pattern.match(start["start"][key]), key
    assert start["streamSid"] == start["start"]["streamSid"] == result.stream_sid
    assert start["start"]["callSid"] == result.call_sid
    assert start["start"]["accountSid"] == result.account_sid
    assert start["start"]["tracks"] == ["inbound"]
    assert start["start"]["customParameters"] == {"call_id": "call-123", "series": "team-sync"}
    assert start["start"]["mediaFormat"] == {
        "encoding": "audio/x-mulaw",
        "sampleRate": 8000,
        "channels": 1,
    }

    media = [m for m in messages if m["event"] == "media"]
    assert len(media) == result.media_sent == 50 + 10
    payloads = [base64.b64decode(m["media"]["payload"]) for m in media]
    assert all(len(p) == 160 for p in payloads)
    assert b"".join(payloads) == ulaw + b"\xff" * 1600
    assert [m["media"]["chunk"] for m in media] == [str(i) for i in range(1, 61)]
    assert [m["media"]["timestamp"] for m in media] == [str(20 * i) for i in range(60)]
    assert {m["media"]["track"] for m in media} == {"inbound"}
    assert {m["streamSid"] for m in media} == {result.stream_sid}

    stop = messages[-1]
    assert stop["event"] == "stop"
    assert stop["streamSid"] == result.stream_sid
    assert stop["stop"] == {"accountSid": result.account_sid, "callSid": result.call_sid}
    assert server.events().count("stop") == 1

    # Twilio echoes the server's mark (at once here, because the server cleared its audio).
    echoed = [m for m in messages if m["event"] == "mark"]
    assert [m["mark"]["name"] for m in echoed] == ["m1"]
    assert echoed[0]["streamSid"] == result.stream_sid

    assert result.received_media == ECHO_ULAW
    assert result.received_marks == ["m1"]
    assert result.received_clears == 1
    assert result.received_other == []
    assert result.closed_by_server is True

    samples, rate = sf.read(record, dtype="int16")
    assert rate == 8000
    assert samples.ndim == 1
    assert samples.tobytes() == ulaw_to_pcm16(ECHO_ULAW) == result.received_pcm16()


async def test_last_frame_is_padded_with_silence() -> None:
    server = FakeTwilioServer()
    async with running(server) as url:
        await simulate_stream(url, b"\x00" * 250, speed=0, trailing_silence_ms=0)
    payloads = [
        base64.b64decode(m["media"]["payload"]) for m in server.messages if m["event"] == "media"
    ]
    assert payloads == [b"\x00" * 160, b"\x00" * 90 + b"\xff" * 70]


async def test_dtmf_mark_and_raw_messages() -> None:
    server = FakeTwilioServer(never_close)
    async with running(server) as url, TwilioStreamClient(url, call_sid="CA" + "1" * 32) as client:
        await client.send_connected()
        await client.send_start()
        await client.send_dtmf("7")
        await client.send_mark("greeting-done")
        await client.send_raw("not json")
        await client.send_media(b"\xff" * 80)
        await client.send_media(b"\xff" * 160)
        with pytest.raises(ValueError, match="DTMF"):
            await client.send_dtmf("x")
        await client.send_stop()
        await server.wait_until(lambda: len(server.raw) >= 8)
    assert server.raw[4] == "not json"
    messages = [json.loads(m) for i, m in enumerate(server.raw) if i != 4]
    assert_sequence_numbers(messages)
    sid = client.stream_sid
    assert messages[1]["start"]["callSid"] == "CA" + "1" * 32
    assert messages[2] == {
        "event": "dtmf",
        "sequenceNumber": "2",
        "streamSid": sid,
        "dtmf": {"track": "inbound_track", "digit": "7"},
    }
    assert messages[3] == {
        "event": "mark",
        "sequenceNumber": "3",
        "streamSid": sid,
        "mark": {"name": "greeting-done"},
    }
    assert [m["media"]["timestamp"] for m in messages[4:6]] == ["0", "10"]
    assert messages[-1]["event"] == "stop"
    assert client.result.closed_by_server is False


async def test_handshake_is_signed_like_twilio() -> None:
    server = FakeTwilioServer()
    token = "test-token-0123456789"
    async with running(server) as url:
        await simulate_stream(url, b"", speed=0, trailing_silence_ms=20, auth_token=token)
    assert server.headers["User-Agent"] == "Twilio.TmeWs/1.0"
    assert RequestValidator(token).validate(url, {}, server.headers["X-Twilio-Signature"])


# -- pacing ------------------------------------------------------------------------------------


async def test_real_time_pacing() -> None:
    server = FakeTwilioServer()
    progress: list[float] = []
    async with running(server) as url:
        began = time.monotonic()
        await simulate_stream(
            url, tone_ulaw(0.5), speed=1, trailing_silence_ms=0, on_progress=progress.append
        )
        elapsed = time.monotonic() - began
    assert elapsed >= 0.45  # paced: never sooner than the audio lasts
    assert progress == sorted(progress)
    assert progress[-1] == pytest.approx(0.5)
    media_times = [
        t for t, m in zip(server.times, server.messages, strict=True) if m["event"] == "media"
    ]
    assert media_times[-1] - media_times[0] >= 0.4


async def test_double_speed_takes_about_half() -> None:
    server = FakeTwilioServer()
    async with running(server) as url:
        began = time.monotonic()
        await simulate_stream(url, tone_ulaw(0.6), speed=2, trailing_silence_ms=0)
        elapsed = time.monotonic() - began
    assert elapsed >= 0.25  # 0.6 s of audio at double speed: paced, never sooner


@pytest.mark.parametrize("speed", [0.0, -1.0, float("inf")])
async def test_unpaced_streaming_is_fast(speed: float) -> None:
    server = FakeTwilioServer()
    async with running(server) as url:
        began = time.monotonic()
        result = await simulate_stream(url, tone_ulaw(10.0), speed=speed, trailing_silence_ms=0)
        elapsed = time.monotonic() - began
    assert result.media_sent == 500
    assert elapsed < 10  # not paced: a paced stream of 10 s of audio cannot end sooner


async def test_the_client_times_voiced_frames_as_a_callers_ear() -> None:
    """The last voiced frame sent, and each voiced frame received with the audio sent by then;
    silence either way is not what a caller hears."""

    async def answer_after_the_question(
        ws: ServerConnection, message: dict[str, Any], server: FakeTwilioServer
    ) -> bool:
        if message.get("event") == "media" and message["media"]["chunk"] == "20":
            sid = message["streamSid"]
            for audio in (b"\xff" * 160, tone_ulaw(0.02)):
                payload = base64.b64encode(audio).decode()
                media = {"event": "media", "streamSid": sid, "media": {"payload": payload}}
                await ws.send(json.dumps(media))
        return False

    server = FakeTwilioServer(answer_after_the_question)
    async with running(server) as url, TwilioStreamClient(url) as client:
        await client.send_connected()
        await client.send_start()
        await client.stream_audio(tone_ulaw(0.2) + b"\xff" * 1600, speed=0)
        asked = client.result.last_voiced_sent_at
        assert asked is not None
        assert await client.keep_line(lambda: client.first_voiced_after(asked) is not None)
        # Nothing else comes: the line is kept open until `max_secs`, then it says so.
        assert not await client.keep_line(lambda: False, max_secs=0.1)
    result = client.result
    assert result.last_voiced_sent_ms == 200  # the tone's 10 frames, not the silence after
    [heard] = result.voiced_arrivals  # the silent frame before it is not heard
    assert heard == client.first_voiced_after(asked)
    assert heard.at > asked and heard.sent_ms >= 400  # after the whole question had been sent
    assert client.first_voiced_after(heard.at) is None
    assert len(result.received_media) == 320


# -- server -> client --------------------------------------------------------------------------


async def test_mark_is_echoed_after_the_audio_before_it_has_played() -> None:
    async def play_then_mark(
        ws: ServerConnection, message: dict[str, Any], server: FakeTwilioServer
    ) -> bool:
        if message.get("event") == "start":
            sid = message["streamSid"]
            server.marked_at = time.monotonic()
            payload = base64.b64encode(b"\xff" * 2400).decode()  # 0.3 s
            await ws.send(
                json.dumps({"event": "media", "streamSid": sid, "media": {"payload": payload}})
            )
            await ws.send(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "said"}}))
        return False

    server = FakeTwilioServer(play_then_mark)
    async with running(server) as url, TwilioStreamClient(url) as client:
        await client.send_connected()
        await client.send_start()
        await server.wait_until(lambda: "mark" in server.events())
    mark_index = server.events().index("mark")
    assert server.times[mark_index] - server.marked_at >= 0.25
    assert server.messages[mark_index]["mark"] == {"name": "said"}


async def test_receiver_survives_unexpected_messages() -> None:
    async def garbage(
        ws: ServerConnection, message: dict[str, Any], server: FakeTwilioServer
    ) -> bool:
        if message.get("event") == "start":
            sid = message["streamSid"]
            for junk in (
                "not json",
                b"\x00\x01binary",
                "[1, 2, 3]",
                '"just a string"',
                "[" * 100_000,
                json.dumps({"event": "media", "streamSid": sid, "media": {"payload": "!!!"}}),
                json.dumps({"event": "media", "streamSid": sid, "media": "oops"}),
                json.dumps(
                    {"event": "media", "streamSid": "MZwrong", "media": {"payload": "AAAA"}}
                ),
                json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": 5}}),
                json.dumps({"event": ["media"], "streamSid": sid}),
                json.dumps({"event": "surprise", "streamSid": sid}),
                json.dumps({"no_event": True}),
            ):
                await ws.send(junk)
            ok = base64.b64encode(b"\x80\x00").decode()
            await ws.send(
                json.dumps({"event": "media", "streamSid": sid, "media": {"payload": ok}})
            )
        return bool(message.get("event") == "stop")

    server = FakeTwilioServer(garbage)
    async with running(server) as url:
        result = await simulate_stream(url, tone_ulaw(0.1), speed=0, trailing_silence_ms=0)
    assert result.received_media == b"\x80\x00"
    assert len(result.received_other) == 12
    assert result.received_other[0] == {"raw": "not json"}
    assert result.received_other[1] == {"raw": b"\x00\x01binary"}
    assert result.received_other[-2] == {"event": "surprise", "streamSid": result.stream_sid}
    assert result.closed_by_server is True


async def test_send_after_server_close_raises_stream_closed() -> None:
    async def hang_up_on_start(
        ws: ServerConnection, message: dict[str, Any], server: FakeTwilioServer
    ) -> bool:
        return bool(message.get("event") == "start")

    server = FakeTwilioServer(hang_up_on_start)
    async with running(server) as url, TwilioStreamClient(url) as client:
        await client.send_connected()
        await client.send_start()
        await client.wait_closed(5)
        assert client.result.closed_by_server is True
        with pytest.raises(StreamClosed, match="closed by the server") as caught:
            await client.send_media(b"\xff" * 160)
        assert isinstance(caught.value, ConnectionError)
        with pytest.raises(StreamClosed):
            await client.send_stop()
    assert client.result.media_sent == 0


async def test_simulate_stream_raises_when_server_hangs_up_mid_stream(tmp_path: Path) -> None:
    async def hang_up_after_media(
        ws: ServerConnection, message: dict[str, Any], server: FakeTwilioServer
    ) -> bool:
        await echo_then_close_on_stop(ws, message, server)
        return server.events().count("media") >= 5

    server = FakeTwilioServer(hang_up_after_media)
    record = tmp_path / "partial.wav"
    async with running(server) as url:
        with pytest.raises(StreamClosed):
            await simulate_stream(url, tone_ulaw(30.0), speed=0, record_path=record)
    assert "stop" not in server.events()
    samples, rate = sf.read(record, dtype="int16")
    assert samples.tobytes() == ulaw_to_pcm16(ECHO_ULAW)


async def test_close_timeout_closes_from_our_side(tmp_path: Path) -> None:
    server = FakeTwilioServer(never_close)
    record = tmp_path / "silent.wav"
    async with running(server) as url:
        result = await simulate_stream(
            url, b"", speed=0, trailing_silence_ms=40, close_timeout=0.3, record_path=record
        )
        await asyncio.wait_for(server.done.wait(), 5)
    assert result.closed_by_server is False
    assert server.events()[-1] == "stop"
    info = sf.info(record)
    assert (info.samplerate, info.channels, info.frames) == (8000, 1, 0)


async def test_wait_closed_times_out_while_open() -> None:
    server = FakeTwilioServer(never_close)
    async with running(server) as url, TwilioStreamClient(url) as client:
        with pytest.raises(TimeoutError):
            await client.wait_closed(0.05)
        assert not client.closed
    assert client.closed


async def test_connecting_to_nothing_is_a_clear_error() -> None:
    async with serve(lambda ws: asyncio.sleep(0), "127.0.0.1", 0) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]
    with pytest.raises(StreamConnectError, match=f"127.0.0.1:{port}"):
        async with TwilioStreamClient(f"ws://127.0.0.1:{port}/twilio/media"):
            pass


# -- TwiML -------------------------------------------------------------------------------------


def test_stream_url_from_twilio_twiml() -> None:
    response = VoiceResponse()
    response.play(digits="ww1234#")
    connect = Connect()
    stream = connect.stream(url="wss://convene.example/twilio/media")
    stream.parameter(name="call_id", value="c-1")
    stream.parameter(name="series", value="a & b <c>")
    response.append(connect)
    url, params = stream_url_from_twiml(str(response))
    assert url == "wss://convene.example/twilio/media"
    assert params == {"call_id": "c-1", "series": "a & b <c>"}


@pytest.mark.parametrize(
    ("twiml", "why"),
    [
        ("<Response><Say>hi</Say></Response>", "no <Connect><Stream>"),
        ("<Response><Connect><Stream/></Connect></Response>", "no url"),
        ("<Response><Connect>", "not valid XML"),
        ("<Other/>", "root must be <Response>"),
    ],
)
def test_stream_url_from_bad_twiml(twiml: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        stream_url_from_twiml(twiml)


# -- audio -------------------------------------------------------------------------------------


def test_ulaw_known_values() -> None:
    assert pcm16_to_ulaw(np.array([0], "<i2").tobytes()) == b"\xff"
    assert pcm16_to_ulaw(np.array([32767, -32768], "<i2").tobytes()) == b"\x80\x00"
    decoded = np.frombuffer(ulaw_to_pcm16(b"\xff\x7f\x00\x80\x7e\xfe\xf0\x70"), "<i2")
    assert decoded.tolist() == [0, 0, -32124, 32124, -8, 8, 120, -120]


def test_ulaw_matches_audioop_exactly() -> None:
    audioop = pytest.importorskip("audioop")
    pcm = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert pcm16_to_ulaw(pcm) == audioop.lin2ulaw(pcm, 2)
    codes = bytes(range(256))
    assert ulaw_to_pcm16(codes) == audioop.ulaw2lin(codes, 2)


def test_ulaw_round_trip() -> None:
    codes = bytes(range(256))
    # Every code survives decode -> encode, except 0x7F ("negative zero") which becomes 0xFF.
    expected = bytes(c if c != 0x7F else 0xFF for c in codes)
    assert pcm16_to_ulaw(ulaw_to_pcm16(codes)) == expected

    x = np.arange(-32635, 32636, dtype=np.int32)
    back = np.frombuffer(ulaw_to_pcm16(pcm16_to_ulaw(x.astype("<i2").tobytes())), "<i2")
    error = np.abs(back.astype(np.int32) - x)
    assert np.all(error <= 8 + np.abs(x) / 32)
    assert pcm16_to_ulaw(b"") == b"" and ulaw_to_pcm16(b"") == b""
    with pytest.raises(ValueError, match="even number"):
        pcm16_to_ulaw(b"\x00")


def test_float_pcm16_conversions() -> None:
    pcm = float_to_pcm16([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, float("nan")])
    assert np.frombuffer(pcm, "<i2").tolist() == [0, 16384, -16384, 32767, -32768, 32767, -32768, 0]
    samples = np.arange(-32768, 32768, dtype="<i2").tobytes()
    back = pcm16_to_float(samples)
    assert back.dtype == np.float32
    assert float(back.min()) == -1.0 and float(back.max()) < 1.0
    assert float_to_pcm16(back) == samples


def test_load_audio_wav_stereo_and_flac(tmp_path: Path) -> None:
    left = np.full(1600, 0.5, dtype=np.float32)
    right = np.full(1600, -0.25, dtype=np.float32)
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 16000, subtype="PCM_16")
    samples, rate = load_audio(tmp_path / "stereo.wav")
    assert rate == 16000
    assert samples.dtype == np.float32 and samples.shape == (1600,)
    assert np.allclose(samples, 0.125, atol=1e-4)

    tone = (0.3 * np.sin(np.arange(4410) / 10)).astype(np.float32)
    sf.write(tmp_path / "tone.flac", tone, 44100)
    samples, rate = load_audio(tmp_path / "tone.flac")
    assert rate == 44100
    assert np.allclose(samples, tone, atol=1e-4)


@pytest.mark.parametrize(
    ("src", "dst"), [(16000, 8000), (44100, 8000), (8000, 8000), (8000, 48000)]
)
def test_resample_length(src: int, dst: int) -> None:
    x = np.sin(np.arange(src) / 7).astype(np.float32)  # 1 s
    y = resample(x, src, dst)
    assert y.dtype == np.float32
    assert abs(len(y) - dst) <= 1
    with pytest.raises(ValueError, match="positive"):
        resample(x, src, 0)


def test_load_audio_errors_name_the_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio")
    with pytest.raises(AudioFormatError, match=r"notes\.wav.*not a supported audio format"):
        load_audio(text)
    with pytest.raises(AudioFormatError, match=r"missing\.wav.*no such file"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(ValueError, match="not a regular file"):
        load_audio(tmp_path)


def test_to_twilio_ulaw(tmp_path: Path) -> None:
    t = np.arange(16000) / 16000
    sf.write(tmp_path / "a.wav", 0.5 * np.sin(2 * np.pi * 300 * t), 16000, subtype="PCM_16")
    ulaw = to_twilio_ulaw(tmp_path / "a.wav")
    assert abs(len(ulaw) - 8000) <= 1
    decoded = pcm16_to_float(ulaw_to_pcm16(ulaw))
    assert 0.4 < float(np.abs(decoded).max()) < 0.6

    sf.write(tmp_path / "silence.ogg", np.zeros(4800, dtype=np.float32), 48000)
    assert set(to_twilio_ulaw(tmp_path / "silence.ogg")) <= {0xFF, 0x7F}


def test_write_wav(tmp_path: Path) -> None:
    pcm = np.array([0, 1000, -1000, 32767], "<i2").tobytes()
    write_wav(tmp_path / "x.wav", pcm, 8000)
    samples, rate = sf.read(tmp_path / "x.wav", dtype="int16")
    assert rate == 8000 and samples.tobytes() == pcm
    write_wav(tmp_path / "empty.wav", b"", 8000)
    assert sf.info(tmp_path / "empty.wav").frames == 0
