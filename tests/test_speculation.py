"""Speculative transcription during pauses, and early answers, in a real Pipecat pipeline.

Real Silero VAD, real Whisper (short window), real wake gate; audio is paced in real time
around the pause so the speculation can finish before the VAD ends the turn.
"""

from __future__ import annotations

import numpy as np
import soxr
from pipecat.frames.frames import Frame, InputAudioRawFrame, TranscriptionFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.tests.utils import SleepFrame, run_test

from bot.call import build_stt, build_vad
from core.prompts import VadKnobs
from processors.frames import (
    AddressedFrame,
    EarlyTranscriptFrame,
    SpeechPausedFrame,
    SpeechResumedFrame,
    TranscriptSegmentFrame,
)
from processors.piper_voice import synthesize
from processors.wake import WakeGate, WakeMatcher
from processors.whisper_stt import SharedWhisperSTTService, transcribe_local
from server.runtime import Runtime
from tests.calls import overridden
from tests.speech import wer

RATE = 16000
FRAME = 320  # 20 ms


def speech(text: str) -> np.ndarray:
    audio, rate = synthesize(text)
    return soxr.resample(audio.astype(np.float32) / 32768.0, rate, RATE)


def frames(samples: np.ndarray, *, paced: bool = False) -> list[Frame]:
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes()
    out: list[Frame] = []
    for i in range(0, len(pcm), FRAME * 2):
        out.append(
            InputAudioRawFrame(audio=pcm[i : i + FRAME * 2], sample_rate=RATE, num_channels=1)
        )
        if paced:
            out.append(SleepFrame(sleep=0.02))
    return out


def silence(secs: float) -> np.ndarray:
    return np.zeros(int(secs * RATE), dtype=np.float32)


def pipeline(
    runtime: Runtime, *, stop_secs: float
) -> tuple[Pipeline, SharedWhisperSTTService, WakeGate]:
    # The main model speculates (stt.quick_model none): its guess becomes the transcript.
    with overridden(runtime, pipeline={"stt": {"quick_model": "none"}}):
        stt = build_stt(runtime.call_deps())
    assert isinstance(stt, SharedWhisperSTTService)
    agent = runtime.prompts.agent
    gate = WakeGate(WakeMatcher(agent.name, agent.aliases), follow_up_secs=0)
    vad = build_vad(VadKnobs(stop_secs=stop_secs, pause_secs=0.15))
    return Pipeline([vad, stt, gate]), stt, gate


async def test_a_paused_question_is_answered_from_its_early_transcript(runtime: Runtime) -> None:
    # The VAD waits 3 s to end the turn; the pause starts speculation after 0.15 s, and the
    # silence is streamed in real time, so the early transcript arrives before the end even on
    # a slow or busy CPU (a short window transcribes this turn in well under a second).
    pipe, stt, gate = pipeline(runtime, stop_secs=3.0)
    sent = [
        *frames(silence(1.0)),
        *frames(speech("Convene, what is Tom working on?")),
        *frames(silence(3.7), paced=True),
    ]
    down, _ = await run_test(pipe, frames_to_send=sent)
    kinds = [type(f) for f in down]
    # The comma after "Convene" may pause (and resume) too; the last pause is the real end.
    assert kinds.count(SpeechPausedFrame) == kinds.count(SpeechResumedFrame) + 1
    early = [f for f in down if isinstance(f, EarlyTranscriptFrame)]
    final = [f for f in down if isinstance(f, TranscriptSegmentFrame)]
    asks = [f for f in down if isinstance(f, AddressedFrame)]
    assert len(early) == 1 and len(final) == 1
    assert wer("Convene, what is Tom working on?", final[0].text) <= 0.2
    # One answer, started from the early transcript, before the turn's final transcript.
    assert len(asks) == 1 and asks[0].person == "Tom" and asks[0].seq == -1
    assert down.index(asks[0]) < down.index(final[0])
    assert gate.early_answers == 1
    # Whisper ran once for the turn: the final transcript is the speculation's.
    assert stt.speculations == kinds.count(SpeechPausedFrame) and stt.speculations_used == 1
    assert final[0].text == early[0].text


async def test_a_speaker_who_goes_on_discards_the_speculation(runtime: Runtime) -> None:
    pipe, stt, gate = pipeline(runtime, stop_secs=0.6)
    sent = [
        *frames(silence(1.0)),
        *frames(speech("I will send the security review")),
        *frames(silence(0.35)),  # a mid-sentence pause: long enough to speculate, not to end
        *frames(speech("to the legal team by Friday.")),
        *frames(silence(1.0)),
    ]
    down, _ = await run_test(pipe, frames_to_send=sent)
    kinds = [type(f) for f in down]
    assert SpeechPausedFrame in kinds and SpeechResumedFrame in kinds
    final = [f for f in down if isinstance(f, TranscriptSegmentFrame)]
    assert len(final) == 1  # one turn, not two
    assert wer("I will send the security review to the legal team by Friday.", final[0].text) <= 0.2
    # Two pauses, two speculations: the mid-sentence one was thrown away, the last one (the
    # whole sentence) became the transcript.
    assert stt.speculations == kinds.count(SpeechPausedFrame) >= 2
    assert stt.speculations_used == 1
    assert not [f for f in down if isinstance(f, AddressedFrame)]
    assert sum(isinstance(f, TranscriptionFrame) for f in down) == 1


async def test_short_window_transcribes_like_the_full_window(runtime: Runtime) -> None:
    """The fast path (encoder window sized to the turn) keeps the words of the 30 s window."""
    deps = runtime.call_deps()
    from bot.call import whisper_settings

    settings = whisper_settings(deps, runtime.prompts.pipeline)
    for text in (
        "Convene, give me a progress report.",
        "Priya is going to update the pricing page next week.",
    ):
        samples = np.concatenate([silence(1.0), speech(text), silence(0.5)])
        pcm = (samples * 32767).astype(np.int16).tobytes()
        short, confidence = transcribe_local(deps.whisper_model, pcm, settings)
        full, _ = transcribe_local(deps.whisper_model, pcm, settings, short_window=False)
        assert wer(text, short) <= 0.1, short
        assert wer(text, full) <= 0.2, full
        assert confidence is not None and 0 < confidence <= 1
    quiet, _ = transcribe_local(deps.whisper_model, bytes(RATE * 2), settings)
    assert quiet == ""  # silence is dropped (no_speech_prob), not hallucinated


async def test_an_early_answer_is_cut_when_the_asker_goes_on(runtime: Runtime) -> None:
    from pipecat.frames.frames import InterruptionFrame

    # The pause leaves the speculation ~2 s to finish (a busy CPU included) before the asker
    # goes on, and still ends no turn.
    pipe, stt, gate = pipeline(runtime, stop_secs=3.0)
    sent = [
        *frames(silence(1.0)),
        *frames(speech("Convene, give me a progress report.")),
        *frames(silence(2.2), paced=True),  # long enough to answer early, not to end the turn
        *frames(speech("Only the pricing work, please.")),
        *frames(silence(3.5), paced=True),
    ]
    down, _ = await run_test(pipe, frames_to_send=sent)
    asks = [f for f in down if isinstance(f, AddressedFrame)]
    final = [f for f in down if isinstance(f, TranscriptSegmentFrame)]
    assert gate.early_answers >= 1 and gate.early_cancelled >= 1
    cut = next(i for i, f in enumerate(down) if isinstance(f, InterruptionFrame))
    assert down.index(asks[0]) < cut  # the early answer came, then was cut ...
    assert len(final) == 1 and "pricing" in final[0].text.lower()
    assert asks[-1].seq != -1 or gate.early_answers == 2  # ... and the whole turn was answered
    assert down.index(asks[-1]) > cut


def test_repeated_sentences_from_a_decoding_loop_are_dropped() -> None:
    from processors.whisper_stt import _stutters, _without_repeats

    looped = "Yes, I will have the demo ready by Friday. Yes, I will have the demo ready by Friday."
    assert _without_repeats(looped) == "Yes, I will have the demo ready by Friday."
    cut = "Convene, what is Tom working on? Convene, what is Tom working on? Convene, what is"
    assert _without_repeats(cut) == "Convene, what is Tom working on?"
    split = "Yes. I will have it ready by Friday. Yes, I will have it ready by Friday."
    assert _without_repeats(split) == "Yes. I will have it ready by Friday."
    # What people do say twice stays: short answers, and sentences that go on differently.
    assert _without_repeats("Yes. Yes.") == "Yes. Yes."
    kept = "I will send it. I will send it to legal."
    assert _without_repeats(kept) == kept
    assert _without_repeats("No, no, no, that is not it.") == "No, no, no, that is not it."
    # A word looping on its own makes the turn-sized window's result unsure.
    assert _stutters("convene convene convene convene convene")
    assert not _stutters("No, no, no, that is not it.")
