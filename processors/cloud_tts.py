"""Cloud TTS through the providers' official SDKs, with retry and failover to the local voice.

`cartesia`: the `cartesia` SDK's websocket (`AsyncCartesia(...).tts.websocket_connect()`): one
connection per call, opened on the first sentence and kept; one context per sentence.
`elevenlabs`: the `elevenlabs` SDK's streaming endpoint (`AsyncElevenLabs(...).text_to_speech
.stream`), one request per sentence.

Both ask for raw 16-bit PCM at the call's output rate (8 kHz on a Twilio call; 16 kHz,
resampled here, where the provider lacks the rate), so the Twilio serializer only has to turn
it into mu-law. Audio is streamed: each chunk becomes a `TTSAudioRawFrame` as it arrives, so
the start of a sentence plays while the provider is still synthesising the rest.

Failover: a sentence whose provider errors, disconnects, or sends no audio for
`tts.timeout_secs` (before the first chunk or between two) is tried once more; if that fails
too, the call fails over: this sentence and the rest of the call are spoken by `fallback` (the
local Piper voice by default). Every retry and failover is logged and counted (`retries`,
`failovers`). A barge-in cancels the sentence in flight: Pipecat cancels `run_tts`, the
Cartesia context is cancelled on the socket, the ElevenLabs stream is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, cast

from pipecat.frames.frames import CancelFrame, EndFrame, ErrorFrame, Frame
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from core.errors import ConfigError
from core.prompts import CartesiaOptions, ElevenLabsOptions, TtsKnobs
from processors.tts_audio import pcm_frames

if TYPE_CHECKING:
    import httpx
    from cartesia import AsyncCartesia
    from cartesia.lib._tts import AsyncTTSResourceConnection
    from elevenlabs.client import AsyncElevenLabs

log = logging.getLogger(__name__)

# A failed sentence is tried this many more times before the call fails over.
RETRIES = 1
# PCM rates each provider streams; another pipeline rate gets 16 kHz, resampled by Pipecat.
CARTESIA_RATES = frozenset({8000, 16000, 22050, 24000, 44100, 48000})
ELEVENLABS_RATES = frozenset({8000, 16000, 22050, 24000, 32000, 44100, 48000})
_CLOSE_SECS = 1.0


class CloudTTSError(Exception):
    """A provider answered, but not with the audio asked for."""


class CloudTTSService(TTSService):  # type: ignore[misc]
    """Streams a cloud provider's audio; retries a failed sentence, then fails over for good."""

    provider = "cloud"

    def __init__(
        self,
        *,
        settings: TTSSettings,
        api_key: str,
        timeout_secs: float,
        fallback: TTSService | None,
        retries: int = RETRIES,
        **kwargs: Any,
    ) -> None:
        # Pipecat ends a sentence's audio context after this long without audio: it must
        # outlast every attempt plus the fallback's first chunk, or the sentence would be
        # closed (and marked) before its audio arrives.
        quiet_secs = max(3.0, timeout_secs * (retries + 1) + 2.0)
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            stop_frame_timeout_s=quiet_secs,
            settings=settings,
            **kwargs,
        )
        self._api_key = api_key
        self._timeout = timeout_secs
        self._retries = retries
        self._fallback = fallback
        self._failed_over = False
        self.retries = 0
        self.failovers = 0
        self.fallback_sentences = 0

    @property
    def failed_over(self) -> bool:
        """Whether the fallback speaks for the rest of this call."""
        return self._failed_over

    def can_generate_metrics(self) -> bool:
        return True

    # Lifecycle: the fallback is not in the pipeline, so it is set up and torn down here.

    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]
        await super().setup(setup)
        if self._fallback is not None:
            # Its frames are re-yielded by this service, which reports the metrics.
            await self._fallback.setup(
                dataclasses.replace(
                    setup, enable_metrics=False, enable_usage_metrics=False, observer=None
                )
            )

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        await self._close()

    async def cancel(self, frame: CancelFrame) -> None:
        await super().cancel(frame)
        await self._close()

    async def cleanup(self) -> None:
        await super().cleanup()  # type: ignore[no-untyped-call]
        await self._close()
        if self._fallback is not None:
            await self._fallback.cleanup()  # type: ignore[no-untyped-call]

    # What a provider implements.

    def _request_rate(self) -> int:
        """The PCM rate to ask the provider for."""
        raise NotImplementedError

    def _synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        """The provider's audio for `text`: raw PCM s16le mono at `_request_rate()`, streamed."""
        raise NotImplementedError

    async def _reset(self) -> None:
        """Forget connection state after a failed attempt (the next one starts afresh)."""

    async def _close(self) -> None:
        """Release the provider's connections and clients (idempotent)."""

    # Synthesis with retry and failover.

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        if self._failed_over:
            async for frame in self._speak_with_fallback(text, context_id):
                yield frame
            return
        await self.start_tts_usage_metrics(text)
        attempts = self._retries + 1
        error = ""
        for attempt in range(1, attempts + 1):
            spoke = False
            try:
                async for frame in pcm_frames(
                    self._guarded(self._synthesize(text)),
                    in_rate=self._request_rate(),
                    out_rate=self.sample_rate,
                    context_id=context_id,
                ):
                    if not spoke:
                        spoke = True
                        await self.stop_ttfb_metrics()
                    yield frame
                if spoke:
                    return
                raise CloudTTSError("the stream ended without audio")
            except Exception as exc:
                error = self._describe(exc)
                await self._reset()
                restart = " (the sentence restarts)" if spoke else ""
                if attempt < attempts:
                    self.retries += 1
                    log.warning(
                        "%s TTS: attempt %d of %d failed: %s; retrying%s",
                        self.provider,
                        attempt,
                        attempts,
                        error,
                        restart,
                    )
        if self._fallback is None:
            log.error(
                "%s TTS: %d attempts failed, no fallback configured; sentence not spoken: %s",
                self.provider,
                attempts,
                error,
            )
            yield ErrorFrame(error=f"{self.provider} TTS failed: {error}")
            return
        self._failed_over = True
        self.failovers += 1
        log.warning(
            "%s TTS: failover %d: %d attempts failed (%s); %s speaks this sentence and the "
            "rest of the call",
            self.provider,
            self.failovers,
            attempts,
            error,
            self._fallback.name,
        )
        await self._close()
        async for frame in self._speak_with_fallback(text, context_id):
            yield frame

    async def _speak_with_fallback(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        if self._fallback is None:
            return
        self.fallback_sentences += 1
        spoke = False
        async for frame in self._fallback.run_tts(text, context_id):
            if frame is None:
                continue
            if not spoke:
                spoke = True
                await self.stop_ttfb_metrics()
            yield frame

    async def _guarded(self, chunks: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
        """`chunks`, failing when the next one (the first: connecting included) is late."""
        try:
            while True:
                deadline = asyncio.timeout(self._timeout)
                try:
                    async with deadline:
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    if deadline.expired():
                        raise CloudTTSError(f"no audio for {self._timeout:g} s") from None
                    raise
                if chunk:
                    yield chunk
        finally:
            await chunks.aclose()

    def _describe(self, exc: BaseException) -> str:
        """A short account of a failure, for logs; never the API key."""
        status = getattr(exc, "status_code", None)
        if isinstance(status, int) and not isinstance(exc, CloudTTSError):
            body = getattr(exc, "body", None)
            text = f"HTTP {status}" + (f": {body}" if body else "")
        else:
            text = str(exc) or type(exc).__name__
            if not isinstance(exc, CloudTTSError):
                text = f"{type(exc).__name__}: {text}"
        if self._api_key:
            text = text.replace(self._api_key, "[api key]")
        return text[:300]


def _websocket_url(base_url: str | None) -> str | None:
    """The websocket base for an http(s) base URL (a proxy, a test fake); None: the SDK's."""
    if base_url is None:
        return None
    if base_url.startswith("https://"):
        return "wss://" + base_url.removeprefix("https://")
    if base_url.startswith("http://"):
        return "ws://" + base_url.removeprefix("http://")
    return base_url


class CartesiaTTSService(CloudTTSService):
    """Cartesia over its websocket, through the official `cartesia` SDK."""

    provider = "cartesia"

    def __init__(
        self,
        *,
        options: CartesiaOptions,
        api_key: str,
        base_url: str | None = None,
        timeout_secs: float = 5.0,
        fallback: TTSService | None = None,
        **kwargs: Any,
    ) -> None:
        from cartesia import AsyncCartesia

        super().__init__(
            settings=TTSSettings(
                model=options.model, voice=options.voice_id, language=options.language
            ),
            api_key=api_key,
            timeout_secs=timeout_secs,
            fallback=fallback,
            **kwargs,
        )
        self._options = options
        self._client: AsyncCartesia | None = AsyncCartesia(
            api_key=api_key,
            base_url=base_url,
            websocket_base_url=_websocket_url(base_url),
            max_retries=0,
        )
        self._conn: AsyncTTSResourceConnection | None = None
        self.connections = 0

    def _request_rate(self) -> int:
        return self.sample_rate if self.sample_rate in CARTESIA_RATES else 16000

    async def _connection(self) -> AsyncTTSResourceConnection:
        if self._conn is None:
            if self._client is None:
                raise CloudTTSError("the Cartesia client is closed")
            self._conn = await self._client.tts.websocket_connect().enter()
            self.connections += 1
        return self._conn

    async def _synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        from cartesia.types.websocket_client_event import CancelContextRequest
        from cartesia.types.websocket_response import Chunk, Done, Error
        from websockets.exceptions import ConnectionClosed

        context_id = str(uuid.uuid4())
        request: dict[str, Any] = {
            "context_id": context_id,
            "model_id": self._options.model,
            "transcript": text,
            "voice": self._options.voice_id,
            "output_format": {
                "container": "raw",
                "encoding": "pcm_s16le",
                "sample_rate": self._request_rate(),
            },
            "language": self._options.language,
            "continue": False,
        }
        conn = await self._connection()
        try:
            await conn.send(cast(Any, request))
        except ConnectionClosed:
            # The kept connection was closed while idle (a server timeout): open a fresh one.
            await self._reset()
            conn = await self._connection()
            await conn.send(cast(Any, request))
        finished = False
        try:
            while True:
                event = await conn.recv()
                if isinstance(event, Error) and event.context_id in (None, context_id):
                    finished = True
                    raise CloudTTSError(
                        f"error event {event.status_code}: {event.title}: {event.message}"
                    )
                if getattr(event, "context_id", None) != context_id:
                    continue  # a cancelled sentence's late audio
                if isinstance(event, Chunk):
                    audio = event.audio
                    if audio:
                        yield audio
                elif isinstance(event, Done):
                    finished = True
                    return
        finally:
            if not finished:
                # Cut off (barge-in, timeout, close): stop the generation on Cartesia's side.
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(_CLOSE_SECS):
                        await conn.send(CancelContextRequest(cancel=True, context_id=context_id))

    async def _reset(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CLOSE_SECS):
                    await conn.close()

    async def _close(self) -> None:
        await self._reset()
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()


class ElevenLabsTTSService(CloudTTSService):
    """ElevenLabs' streaming endpoint, through the official `elevenlabs` SDK."""

    provider = "elevenlabs"

    def __init__(
        self,
        *,
        options: ElevenLabsOptions,
        api_key: str,
        base_url: str | None = None,
        timeout_secs: float = 5.0,
        fallback: TTSService | None = None,
        **kwargs: Any,
    ) -> None:
        import httpx
        from elevenlabs.client import AsyncElevenLabs

        super().__init__(
            settings=TTSSettings(
                model=options.model, voice=options.voice_id, language=options.language
            ),
            api_key=api_key,
            timeout_secs=timeout_secs,
            fallback=fallback,
            **kwargs,
        )
        self._options = options
        self._http: httpx.AsyncClient | None = httpx.AsyncClient(
            timeout=httpx.Timeout(max(10.0, 4 * timeout_secs)), follow_redirects=True
        )
        self._client: AsyncElevenLabs = AsyncElevenLabs(
            api_key=api_key, base_url=base_url, httpx_client=self._http
        )

    def _request_rate(self) -> int:
        return self.sample_rate if self.sample_rate in ELEVENLABS_RATES else 16000

    async def _synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        if self._http is None:
            raise CloudTTSError("the ElevenLabs client is closed")
        stream = self._client.text_to_speech.stream(
            self._options.voice_id,
            text=text,
            model_id=self._options.model,
            language_code=self._options.language,
            output_format=f"pcm_{self._request_rate()}",
            request_options={"max_retries": 0},
        )
        # The SDK's stream is an async generator: closing it closes the HTTP response.
        chunks = cast(AsyncGenerator[bytes, None], stream)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            with contextlib.suppress(Exception):
                await chunks.aclose()

    async def _close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            with contextlib.suppress(Exception):
                await http.aclose()


def build_cloud_tts(
    *, knobs: TtsKnobs, api_key: str, base_url: str | None, fallback: TTSService | None
) -> TTSService:
    """The cloud TTS service `tts.provider` names, `fallback` taking over when it fails."""
    if knobs.provider == "cartesia":
        return CartesiaTTSService(
            options=knobs.cartesia,
            api_key=api_key,
            base_url=base_url,
            timeout_secs=knobs.timeout_secs,
            fallback=fallback,
        )
    if knobs.provider == "elevenlabs":
        return ElevenLabsTTSService(
            options=knobs.elevenlabs,
            api_key=api_key,
            base_url=base_url,
            timeout_secs=knobs.timeout_secs,
            fallback=fallback,
        )
    raise ConfigError(f"tts.provider: {knobs.provider} is not a cloud provider")
