"""Whisper STT: in-process (faster-whisper) or a remote OpenAI-compatible server.

Pipecat's `WhisperSTTService` loads a model in its constructor; `SharedWhisperSTTService` takes
the process-wide model instead, so a second caller never waits for a load. Each transcript is
followed by a `TranscriptSegmentFrame` (see `processors/stt_timing.py`).

`RemoteWhisperSTTService` sends each VAD segment to a Whisper server speaking
`/v1/audio/transcriptions` (a DGX Spark running charts/stt) through the official `openai` SDK
(Pipecat's `OpenAISTTService`). A server that errors or stalls past its timeout is retried by
the SDK; then the service gives up, and `ServiceSwitcher` fails the call over to the local model
(processors/stt_failover.py), which is handed the segment, so no speech is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

import numpy as np
from openai import AsyncOpenAI
from pipecat.frames.frames import Frame, TranscriptionFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.utils.time import time_now_iso8601

from core.metrics import STT_DROPPED, transcribing
from core.stt_queue import Dropped, Lane, TranscriptionQueue, shared_queue
from processors.frames import EarlyTranscriptFrame, SpeechPausedFrame, SpeechResumedFrame
from processors.stt_timing import CallClock, SegmentTimingMixin

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)
WAV_HEADER_BYTES = 44


SAMPLE_RATE = 16000
# Whisper's encoder always reads a 30 s window, which makes a 2 s question cost as much as a
# 30 s monologue (about 0.8 s for `base` on 2 CPU cores). CTranslate2 accepts a shorter window:
# a turn this long or shorter is encoded in a window just longer than itself (at least
# SHORT_WINDOW_MIN_FRAMES), several times faster, with the same words in our measurements
# (benchmarks/voice_to_voice.py --stt-compare).
SHORT_MAX_SECS = 20.0
SHORT_WINDOW_MIN_FRAMES = 500  # 5 s of mel frames (10 ms each)
SHORT_WINDOW_STEP = 250
SHORT_WINDOW_PAD_FRAMES = 100
MAX_WORDS_PER_SEC = 5.0
MAX_TOKENS_PER_SEC = 10.0  # text and timestamp tokens: fast speech is ~5 words (6 tokens) a second
SHORT_MIN_LOGPROB = -1.0  # speech scores -0.2 to -0.5 here; silence and noise below -1.2


def transcribe_local(
    model: WhisperModel, pcm16: bytes, settings: Any, *, short_window: bool = True
) -> tuple[str, float | None]:
    """Blocking: transcribe 16-bit PCM with faster-whisper; (text, confidence)."""
    if short_window and (short := transcribe_quick(model, pcm16, settings)) is not None:
        return short
    return transcribe_full(model, _samples(pcm16), settings)


def _samples(pcm16: bytes) -> np.ndarray:
    return np.frombuffer(pcm16, dtype=np.int16).astype(np.float32) / 32768.0


def transcribe_quick(
    model: WhisperModel, pcm16: bytes, settings: Any
) -> tuple[str, float | None] | None:
    """Blocking: the turn-sized window only; None when that is unsure or the turn too long.

    For speculation: a guess that would need the full 30 s window (four times the cost) is not
    worth making while the speaker may go on; the turn's final transcript makes it instead.
    """
    samples = _samples(pcm16)
    if len(samples) > SHORT_MAX_SECS * SAMPLE_RATE:
        return None
    return transcribe_short(model, samples, settings)


def transcribe_full(
    model: WhisperModel, samples: np.ndarray, settings: Any
) -> tuple[str, float | None]:
    """Blocking: faster-whisper's own transcription (30 s windows, fallbacks, no-speech)."""
    segments, _ = model.transcribe(
        samples,
        language=settings.language,
        hotwords=settings.hotwords,
        initial_prompt=settings.initial_prompt,
        beam_size=5,
        condition_on_previous_text=False,
    )
    threshold = settings.no_speech_prob
    kept = [s for s in segments if threshold is None or s.no_speech_prob < threshold]
    text = " ".join(s.text.strip() for s in kept).strip()
    confidence = sum(math.exp(s.avg_logprob) for s in kept) / len(kept) if kept else None
    return text, confidence


def transcribe_short(
    model: WhisperModel, samples: np.ndarray, settings: Any, *, beam_size: int = 5
) -> tuple[str, float | None] | None:
    """Blocking: one short turn through an encoder window sized to it, then beam search.

    None when the result is unsure (mean log-probability under SHORT_MIN_LOGPROB: silence or
    noise, where Whisper invents "You" or "Thank you."); the caller then runs the full window,
    whose no-speech and fallback rules decide.
    """
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    features = model.feature_extractor(samples)
    frames = features.shape[-1]
    window = max(
        SHORT_WINDOW_MIN_FRAMES,
        math.ceil((frames + SHORT_WINDOW_PAD_FRAMES) / SHORT_WINDOW_STEP) * SHORT_WINDOW_STEP,
    )
    window = min(window, model.feature_extractor.nb_max_frames)
    padded = np.zeros((features.shape[0], window), dtype=np.float32)
    padded[:, : min(frames, window)] = features[:, :window]
    tokenizer = Tokenizer(
        model.hf_tokenizer,
        model.model.is_multilingual,
        task="transcribe",
        language=settings.language,
    )
    previous = (
        tokenizer.encode(" " + settings.initial_prompt.strip()) if settings.initial_prompt else []
    )
    # With timestamps: the model says where each piece of text sits, so text it "hears" past
    # the end of the audio (Whisper repeats itself into padding) can be thrown away.
    prompt = model.get_prompt(
        tokenizer, previous, without_timestamps=False, hotwords=settings.hotwords
    )
    result = model.model.generate(
        model.encode(padded),
        [prompt],
        beam_size=beam_size,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, (-1,)),
        # A turn holds a few tokens a second; a cap by its length ends a beam that loops into
        # the padding early instead of decoding 200 tokens that are then thrown away.
        max_length=min(
            len(prompt) + 12 + int(MAX_TOKENS_PER_SEC * frames / 100),
            200 + len(prompt),
            model.max_length,
        ),
    )[0]
    threshold = settings.no_speech_prob
    if threshold is not None and result.no_speech_prob >= threshold:
        return "", None
    if result.scores[0] < SHORT_MIN_LOGPROB:
        return None
    duration = frames * model.feature_extractor.time_per_frame
    tokens = _tokens_within(result.sequences_ids[0], tokenizer.timestamp_begin, duration)
    text = _without_repeats(tokenizer.decode(tokens).strip())
    if not text:
        return "", None
    if len(text.split()) > MAX_WORDS_PER_SEC * duration + 2 or _stutters(text):
        return None  # more words than the audio can hold, or a loop the checks above missed
    return text, math.exp(result.scores[0])


_SENTENCE = re.compile(r"[^.?!]+[.?!]*")


def _without_repeats(text: str) -> str:
    """Drop a sentence that repeats the one before it word for word (3+ words).

    Whisper sometimes loops on a short turn's trailing silence ("Yes, I will have it ready.
    Yes, I will have it ready."); people do not repeat whole sentences back to back.
    """
    kept: list[str] = []
    previous = ""
    for sentence in (m.group().strip() for m in _SENTENCE.finditer(text)):
        norm = re.sub(r"[^a-z0-9 ]", "", sentence.lower()).strip()
        repeated = norm == previous or (  # or a repeat cut off where the decoding stopped
            not sentence.endswith((".", "?", "!")) and previous.startswith(norm)
        )
        if norm and repeated and len(norm.split()) >= 3:
            continue
        kept.append(sentence)
        previous = norm
    return _without_period(" ".join(kept))


def _without_period(text: str) -> str:
    """The whole text is its first 3+ words said again (however punctuated): keep them once."""
    pieces = text.split()
    norm = [re.sub(r"[^a-z0-9']", "", p.lower()) for p in pieces]
    for period in range(3, len(norm) // 2 + 1):
        if len(norm) - period >= 3 and all(
            norm[i] == norm[i - period] for i in range(period, len(norm))
        ):
            return " ".join(pieces[:period])
    return text


def _stutters(text: str, times: int = 4) -> bool:
    """A word `times` times in a row ("convene convene convene convene"): a decoding loop."""
    run, previous = 0, ""
    for word in re.findall(r"[a-z0-9']+", text.lower()):
        run = run + 1 if word == previous else 1
        previous = word
        if run >= times:
            return True
    return False


def _tokens_within(ids: list[int], timestamp_begin: int, duration: float) -> list[int]:
    """Text tokens of the pieces that start inside the audio (timestamps are 20 ms steps)."""
    kept: list[int] = []
    start, piece = 0.0, []
    for token in [*ids, timestamp_begin + 1500]:
        if token < timestamp_begin:
            piece.append(token)
            continue
        if piece:
            if start < duration - 0.2:
                kept.extend(piece)
            piece = []
        start = (token - timestamp_begin) * 0.02
    return kept


class SharedWhisperSTTService(SegmentTimingMixin, SegmentedSTTService):  # type: ignore[misc]
    """faster-whisper STT over VAD segments, with a shared model and segment timing.

    Speculation: on a `SpeechPausedFrame` (the speaker paused, the VAD has not ended the turn
    yet) the turn so far is transcribed at once, in a worker thread, and announced as an
    `EarlyTranscriptFrame`. If the turn then ends without the speaker going on, that result is
    the segment's transcript and Whisper does not run again; a `SpeechResumedFrame` throws it
    away. The transcription so overlaps the VAD's end-of-turn silence instead of following it.

    With a `quick_model` (a smaller Whisper, `stt.quick_model`), a turn up to `quick_max_secs`
    long is speculated on with it instead: a faster guess for the wake gate; the turn's stored
    transcript is then still the main model's, made when the turn ends (from the same audio).
    Every transcription goes through the process's `TranscriptionQueue` (core/stt_queue.py):
    speculations and turns up to `short_secs` before longer turns, so a question is not stuck
    behind other calls' monologues; a speculation the queue has no room for is dropped (the
    turn's own transcription follows).
    """

    def __init__(
        self,
        *,
        model: WhisperModel,
        model_name: str,
        settings: Any = None,  # WhisperSTTService.Settings
        trailing_silence_secs: float = 0.5,
        speculate_max_secs: float = SHORT_MAX_SECS,
        quick_model: WhisperModel | None = None,
        quick_max_secs: float = 0.0,
        clock: CallClock | None = None,
        queue: TranscriptionQueue | None = None,
        short_secs: float = 8.0,
        **kwargs: Any,
    ) -> None:
        settings = settings or WhisperSTTService.Settings()
        settings.model = model_name
        super().__init__(settings=settings, trailing_silence_secs=trailing_silence_secs, **kwargs)
        self._timing_init(clock)
        self._whisper_model = model
        self._whisper = settings
        self._pad_secs = trailing_silence_secs
        self._speculate_max_secs = speculate_max_secs
        self._quick_model = quick_model
        self._quick_max_secs = quick_max_secs if quick_model is not None else 0.0
        self._queue = queue or shared_queue()
        self._short_secs = short_secs
        self._speculation: asyncio.Future[tuple[str, float | None] | None] | None = None
        self._spec: _Speculation | None = None
        # Where in the turn's audio its last pause began (bytes): the turn is transcribed up to
        # there, speculatively or not, so the words do not depend on which finished first.
        self._pause_cut: int | None = None
        self.speculations = 0
        self.speculations_used = 0
        self.quick_speculations = 0

    @property
    def wants_wav_segments(self) -> bool:
        return False  # faster-whisper reads raw 16-bit PCM

    def can_generate_metrics(self) -> bool:
        return True

    def _take_speculation(self) -> Any:
        taken = (self._spec if self._speculation is not None else None, self._pause_cut)
        self._speculation, self._pause_cut, self._spec = None, None, None
        return taken

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, SpeechPausedFrame):
            if self.in_speech:
                self._pause_cut = len(self.turn_audio)
                self._speculate(frame.paused_secs)
        elif isinstance(frame, SpeechResumedFrame):
            # The turn goes on: what was heard so far is not it.
            self._speculation, self._pause_cut, self._spec = None, None, None
        await super().process_frame(frame, direction)

    def _speculate(self, paused_secs: float) -> None:
        model = self._whisper_model
        pcm = self.turn_audio
        if model is None:
            return
        if len(pcm) > self._speculate_max_secs * self.sample_rate * 2:
            return
        quick = self._quick_model is not None and (
            len(pcm) <= self._quick_max_secs * self.sample_rate * 2
        )
        if quick and self._quick_model is not None:
            model = self._quick_model
            self.quick_speculations += 1
        pcm += self.silence(self._pad_secs)
        settings: Any = self._whisper
        started = time.monotonic()

        def timed() -> tuple[str, float | None] | None:
            result = transcribe_quick(model, pcm, settings)
            log.debug(
                "stt: %sspeculation on %.2f s of audio took %.0f ms: %s",
                "quick " if quick else "",
                len(pcm) / (self.sample_rate * 2),
                (time.monotonic() - started) * 1000,
                "unsure" if result is None else f"{len(result[0].split())} words",
            )
            return result

        speculation = self.create_task(
            transcribing(self._queue.run(timed, lane=Lane.FIRST, droppable=True)),
            name="stt-speculate",
        )
        self._speculation = speculation
        spec = _Speculation(speculation, quick=quick)
        self._spec = spec
        self.speculations += 1
        start_ms = self._timing_start_ms
        end_ms = max(start_ms, self.heard_ms - int(paused_secs * 1000))
        self.create_task(self._announce(spec, start_ms, end_ms), name="stt-speculation")

    async def _announce(self, spec: _Speculation, start_ms: int, end_ms: int) -> None:
        speculation = spec.result
        try:
            result = await asyncio.shield(speculation)
        except Dropped:
            STT_DROPPED.inc()
            log.debug("stt: speculation dropped: the transcription queue is full")
            return
        except Exception:
            log.exception("speculative transcription failed")
            return
        if result is None:
            return
        text = result[0]
        # Only while it is still this turn's best guess: not after a resume, and not once the
        # turn has ended (then the final transcript is already on its way).
        if text and self._speculation is speculation:
            spec.announced = text
            await self.push_frame(EarlyTranscriptFrame(text=text, start_ms=start_ms, end_ms=end_ms))

    async def _announce_late(self, spec: _Speculation, timing: tuple[int, int]) -> None:
        """The turn ended before its quick guess was ready: announce it now (before the main
        model's transcript), as the wake gate may answer from it while that is made."""
        try:
            result = await asyncio.shield(spec.result)
        except Exception:
            return  # logged where it was to be announced
        if result is not None and result[0]:
            spec.announced = result[0]
            start_ms, end_ms = timing
            await self.push_frame(
                EarlyTranscriptFrame(text=result[0], start_ms=start_ms, end_ms=end_ms)
            )

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        timing = self.next_timing()
        spec, pause_cut = self.next_speculation() or (None, None)
        speculation = spec.result if spec is not None and not spec.quick else None
        model = self._whisper_model
        if spec is not None and spec.quick and spec.announced is None:
            await self._announce_late(spec, timing)
        await self.start_processing_metrics()
        settings: Any = self._whisper
        result: tuple[str, float | None] | None = None
        unsure = False
        if speculation is not None:
            pending = not speculation.done()
            try:
                result = await speculation
                unsure = result is None
            except Exception:
                pass  # logged where it is announced; transcribed below as if none was made
            if result is not None:
                self.speculations_used += 1
            log.debug(
                "stt: turn ended; speculation %s (%s)",
                "unsure" if unsure else "used",
                "awaited" if pending else "ready",
            )
        if result is None:
            if pause_cut is not None and pause_cut < len(audio):
                # The same audio a speculation would have had: the turn up to its last pause.
                audio = audio[:pause_cut] + self.silence(self._pad_secs)
            turn = audio
            short = len(turn) <= self._short_secs * self.sample_rate * 2
            lane = Lane.FIRST if short else Lane.AFTER
            if unsure:  # the turn-sized window was unsure of this very audio: the full one
                result = await transcribing(
                    self._queue.run(
                        lambda: transcribe_full(model, _samples(turn), settings), lane=lane
                    )
                )
            else:
                result = await transcribing(
                    self._queue.run(lambda: transcribe_local(model, turn, settings), lane=lane)
                )
        text, confidence = result
        await self.stop_processing_metrics()
        if not text:
            return
        yield TranscriptionFrame(text, self.speaker_id, time_now_iso8601(), settings.language)
        segment = self.segment_frame(text, timing, confidence)
        segment.early = spec.announced if spec is not None else None
        yield segment


class _Speculation:
    """One speculative transcription: its result, whether the quick model made it, and the
    text announced from it (an `EarlyTranscriptFrame`), if any."""

    def __init__(
        self, result: asyncio.Future[tuple[str, float | None] | None], *, quick: bool
    ) -> None:
        self.result = result
        self.quick = quick
        self.announced: str | None = None


class RemoteWhisperSTTService(SegmentTimingMixin, SegmentedSTTService):  # type: ignore[misc]
    """Whisper on a remote OpenAI-compatible server (the official `openai` SDK, WAV segments).

    The SDK retries a failed or timed-out request `retries` times; a segment still not
    transcribed leaves the service unusable (`ServiceSwitcher` then fails over, and the segment
    is handed to the fallback: processors/stt_failover.py)."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        settings: Any,  # WhisperSTTService.Settings: language and prompt
        timeout_secs: float = 10.0,
        retries: int = 1,
        api_key: str | None = None,
        clock: CallClock | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._timing_init(clock)
        self.client = AsyncOpenAI(
            base_url=base_url.rstrip("/") + "/v1",
            api_key=api_key or "not-needed",
            max_retries=retries,
            timeout=timeout_secs,
        )
        self.remote_model = model
        self.whisper_settings = settings
        self.settle_secs = timeout_secs * (retries + 1) + 10.0 * retries  # with SDK backoff
        self.remote_ok = 0
        self.remote_failed = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def can_generate_metrics(self) -> bool:
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if self.pending_segments:
            self.idle.clear()

    async def settle(self) -> None:
        """Wait until the segments cut so far are transcribed (or the service gave up)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settle_secs):
                await self.idle.wait()

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        timing = self.next_timing()
        settings = self.whisper_settings
        await self.start_processing_metrics()
        try:
            response = await self.client.audio.transcriptions.create(
                file=("audio.wav", audio, "audio/wav"),
                model=self.remote_model,
                language=str(settings.language or "en"),
                prompt=str(settings.initial_prompt or ""),
            )
        except Exception as exc:  # SDK errors after its retries, timeouts, refused connections
            self.remote_failed += 1
            log.warning("whisper-remote: segment failed after retries (%s)", type(exc).__name__)
            await self.push_error(
                f"whisper-remote failed: {type(exc).__name__}",
                exception=exc,
                force_treat_as_permanent=True,
            )
            return
        finally:
            await self.stop_processing_metrics()
            if not self.pending_segments:
                self.idle.set()
        self.remote_ok += 1
        self.segment_done()
        text = response.text.strip()
        if not text:
            return
        language: Any = settings.language
        yield TranscriptionFrame(text, self.speaker_id, time_now_iso8601(), language)
        yield self.segment_frame(text, timing, None)
