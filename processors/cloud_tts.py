"""Cloud TTS on Pipecat's own services, failing over to the local Piper voice.

`cartesia`: `pipecat.services.cartesia.tts.CartesiaTTSService` (Cartesia's `/tts/websocket`,
one socket per call, a context per sentence). `elevenlabs`:
`pipecat.services.elevenlabs.tts.ElevenLabsTTSService` (ElevenLabs' `multi-stream-input`
websocket). Both are websockets opened when the call starts, so a sentence's request costs no
connection set-up, audio is pushed as it is generated (each chunk becomes a `TTSAudioRawFrame`
at once: the start of a sentence plays while the rest is synthesised), and a barge-in cancels
the sentence in flight on the open socket (Cartesia `cancel`, ElevenLabs `close_context`).
ElevenLabs' HTTP streaming service would open a request per sentence and can only drop the
connection on a barge-in. Both ask for raw 16-bit PCM at the call's output rate (8 kHz).

Failover: the cloud service and the Piper voice sit in Pipecat's `ServiceSwitcher` with
`ServiceSwitcherStrategyFailover`; `CloudFailover`, after it, watches the cloud's sentences
through public hooks only (the services' `on_tts_request` and `on_error` events, the frames
they push). An error (an error event, a refused handshake, a dropped socket: the services are
built with `reconnect_on_error=False`, so a drop is reported, not retried with Pipecat's 4-10 s
backoff while the caller hears nothing), a sentence that ends without audio, or no audio for
`tts.timeout_secs` while a sentence is due (before its first chunk or between two) makes the
cloud service unusable; the switcher then hands the rest of the call to Piper, and every
sentence the cloud had not finished is spoken again by Piper (the caller hears each sentence of
the reply; one cut mid-way is heard again from its start). What the cloud sends for those
sentences afterwards is dropped. Each failover is logged and counted (`failovers`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.service_switcher import (
    ServiceSwitcher,
    ServiceSwitcherStrategyFailover,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.cartesia.tts import CartesiaTTSService
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
from pipecat.services.tts_service import TTSService
from pydantic import SecretStr

from core.errors import ConfigError
from core.metrics import TTS_FAILOVERS
from core.prompts import CartesiaOptions, ElevenLabsOptions, TtsKnobs
from core.settings import reveal

log = logging.getLogger(__name__)

CARTESIA_URL = "wss://api.cartesia.ai/tts/websocket"
ELEVENLABS_URL = "wss://api.elevenlabs.io"
# Pipecat ends a sentence's audio context after this much longer without audio than
# `tts.timeout_secs`, so the failover's own watch always speaks first.
_CONTEXT_GRACE_SECS = 1.0


def websocket_base(base_url: str) -> str:
    """The websocket form of an http(s) base URL (a proxy, a test fake)."""
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if base_url.startswith(http):
            return ws + base_url.removeprefix(http).rstrip("/")
    return base_url.rstrip("/")


def cartesia_service(
    options: CartesiaOptions,
    *,
    api_key: SecretStr,
    base_url: str | None,
    sample_rate: int,
    timeout_secs: float,
) -> TTSService:
    """Pipecat's Cartesia websocket service, as `tts.cartesia` configures it."""
    url = websocket_base(base_url) + "/tts/websocket" if base_url else CARTESIA_URL
    service: TTSService = CartesiaTTSService(
        api_key=reveal(api_key) or "",
        url=url,
        sample_rate=sample_rate,
        settings=CartesiaTTSService.Settings(
            model=options.model, voice=options.voice_id, language=options.language
        ),
        reconnect_on_error=False,
        stop_frame_timeout_s=timeout_secs + _CONTEXT_GRACE_SECS,
    )
    return service


def elevenlabs_service(
    options: ElevenLabsOptions,
    *,
    api_key: SecretStr,
    base_url: str | None,
    sample_rate: int,
    timeout_secs: float,
) -> TTSService:
    """Pipecat's ElevenLabs multi-stream websocket service, as `tts.elevenlabs` configures it."""
    service: TTSService = ElevenLabsTTSService(
        api_key=reveal(api_key) or "",
        url=websocket_base(base_url) if base_url else ELEVENLABS_URL,
        sample_rate=sample_rate,
        settings=ElevenLabsTTSService.Settings(
            model=options.model, voice=options.voice_id, language=options.language
        ),
        reconnect_on_error=False,
        stop_frame_timeout_s=timeout_secs + _CONTEXT_GRACE_SECS,
    )
    return service


@dataclass
class _Sentence:
    text: str
    audio: bool = False


class CloudFailover(FrameProcessor):  # type: ignore[misc]
    """After the `ServiceSwitcher`: fails the cloud voice over to the fallback and has the
    fallback say again every sentence the cloud had not finished."""

    def __init__(
        self,
        *,
        cloud: TTSService,
        fallback: TTSService,
        provider: str,
        timeout_secs: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._cloud = cloud
        self._fallback = fallback
        self.provider = provider
        self._timeout = timeout_secs
        # The cloud's sentences not finished yet, by context, in the order they were asked.
        self._sentences: dict[str, _Sentence] = {}
        self._cloud_contexts: set[str] = set()
        self._due = asyncio.Event()  # a sentence awaits audio from the cloud
        self._progress = asyncio.Event()  # the cloud was asked, or sent something
        self._watch_task: asyncio.Task[None] | None = None
        self._failed_over = False
        self.failovers = 0
        self.respoken = 0  # sentences the cloud had not finished, said again by the fallback
        self.fallback_sentences = 0  # sentences the fallback spoke
        self.reason: str | None = None
        cloud.add_event_handler("on_tts_request", self._on_cloud_request)
        cloud.add_event_handler("on_error", self._on_cloud_error)
        fallback.add_event_handler("on_tts_request", self._on_fallback_request)

    @property
    def failed_over(self) -> bool:
        """Whether the fallback speaks for the rest of this call."""
        return self._failed_over

    # The services' events.

    async def _on_cloud_request(self, _service: object, context_id: str, text: str) -> None:
        self._cloud_contexts.add(context_id)
        if self._failed_over:
            # It reached the cloud service as the switch was made: the fallback says it.
            await self._speak_with_fallback(text)
            return
        self._sentences[context_id] = _Sentence(text)
        self._due.set()
        self._progress.set()

    async def _on_cloud_error(self, _service: object, error: ErrorFrame) -> None:
        # Runs before the error travels: the switcher then finds the cloud unusable.
        await self._fail(error.error)

    async def _on_fallback_request(self, _service: object, _context_id: str, _text: str) -> None:
        self.fallback_sentences += 1

    # Frames.

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self._watch_task = self.create_task(self._watch(), name=f"{self}::watch")
        elif isinstance(frame, (EndFrame, CancelFrame)):
            await self._stop_watch()
        elif isinstance(frame, InterruptionFrame):
            # The sentences in flight were cancelled: nothing is left to finish.
            self._sentences.clear()
            self._due.clear()
        elif direction == FrameDirection.DOWNSTREAM and (context_id := self._cloud_context(frame)):
            if self._failed_over:
                return  # the fallback says these sentences
            sentence = self._sentences.get(context_id)
            if isinstance(frame, TTSAudioRawFrame):
                if sentence is not None:
                    sentence.audio = True
                self._progress.set()
            elif isinstance(frame, TTSStoppedFrame) and sentence is not None:
                if not sentence.audio:
                    await self._fail_cloud("a sentence ended without audio")
                    return
                del self._sentences[context_id]
                if not self._sentences:
                    self._due.clear()
                self._progress.set()
        await self.push_frame(frame, direction)

    def _cloud_context(self, frame: Frame) -> str | None:
        """The cloud's context a frame belongs to, if it is one of the cloud's."""
        context_id = getattr(frame, "context_id", None)
        if isinstance(context_id, str) and context_id in self._cloud_contexts:
            return context_id
        return None

    # Failover.

    async def _watch(self) -> None:
        """Fail over when a sentence is due and the cloud sends nothing for the timeout."""
        while not self._failed_over:
            await self._due.wait()
            self._progress.clear()
            try:
                async with asyncio.timeout(self._timeout):
                    await self._progress.wait()
            except TimeoutError:
                if self._sentences and not self._failed_over:
                    await self._fail_cloud(f"no audio for {self._timeout:g} s")

    async def _stop_watch(self) -> None:
        task, self._watch_task = self._watch_task, None
        if task is not None:
            await self.cancel_task(task)

    async def _fail_cloud(self, reason: str) -> None:
        """A failure only this processor saw: fail over, then report it as the cloud's."""
        await self._fail(reason)
        # The switcher hands the call to the fallback when the cloud reports this.
        await self._cloud.push_error(
            f"{self.provider} TTS: {reason}", force_treat_as_permanent=True
        )

    async def _fail(self, reason: str) -> None:
        if self._failed_over:
            return
        self._failed_over = True
        self.failovers += 1
        TTS_FAILOVERS.labels(provider=self.provider).inc()
        self.reason = reason
        unfinished = [s.text for s in self._sentences.values()]
        self._sentences.clear()
        self._due.clear()
        self._progress.set()
        # No more sentences for the cloud, whether or not the switch is made yet.
        await self._cloud.set_usable(False)
        log.warning(
            "%s TTS: failover %d: %s; %s speaks the rest of the call (%d unfinished "
            "sentence(s) said again)",
            self.provider,
            self.failovers,
            reason,
            self._fallback.name,
            len(unfinished),
        )
        for text in unfinished:
            self.respoken += 1
            await self._speak_with_fallback(text)

    async def _speak_with_fallback(self, text: str) -> None:
        # Straight into the fallback: ahead of whatever the switcher routes to it next.
        await self._fallback.queue_frame(TTSSpeakFrame(text))

    async def cleanup(self) -> None:
        await super().cleanup()  # type: ignore[no-untyped-call]
        await self._stop_watch()


class CloudTTS(Pipeline):  # type: ignore[misc]
    """The call's voice: `ServiceSwitcher([cloud, fallback], failover)`, then `CloudFailover`."""

    def __init__(
        self, *, cloud: TTSService, fallback: TTSService, provider: str, timeout_secs: float
    ) -> None:
        switcher = ServiceSwitcher(
            services=[cloud, fallback], strategy_type=ServiceSwitcherStrategyFailover
        )
        watch = CloudFailover(
            cloud=cloud, fallback=fallback, provider=provider, timeout_secs=timeout_secs
        )
        super().__init__([switcher, watch])
        self.cloud = cloud
        self.fallback = fallback
        self.switcher = switcher
        self.watch = watch


def build_cloud_tts(
    *,
    knobs: TtsKnobs,
    api_key: SecretStr,
    base_url: str | None,
    sample_rate: int,
    fallback: TTSService | None,
) -> FrameProcessor:
    """The cloud voice `tts.provider` names, `fallback` taking over when it fails (with no
    fallback: the cloud service alone, its failures reported as Pipecat `ErrorFrame`s)."""
    if knobs.provider == "cartesia":
        cloud = cartesia_service(
            knobs.cartesia,
            api_key=api_key,
            base_url=base_url,
            sample_rate=sample_rate,
            timeout_secs=knobs.timeout_secs,
        )
    elif knobs.provider == "elevenlabs":
        cloud = elevenlabs_service(
            knobs.elevenlabs,
            api_key=api_key,
            base_url=base_url,
            sample_rate=sample_rate,
            timeout_secs=knobs.timeout_secs,
        )
    else:
        raise ConfigError(f"tts.provider: {knobs.provider} is not a cloud provider")
    if fallback is None:
        return cloud
    return CloudTTS(
        cloud=cloud, fallback=fallback, provider=knobs.provider, timeout_secs=knobs.timeout_secs
    )
