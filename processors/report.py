"""The answer: turns memory facts into a short spoken report and hands it to TTS.

The reporter is the templates of prompts/report.yaml (deterministic, no LLM) or, with
`report.backend: anthropic`, Claude writing from the same facts (checked, templates as fallback). The answer is split into sentences
(one `TTSSpeakFrame` each) so the first sentence plays while the rest is synthesised. "Stop" /
"that's all" interrupts the bot instead. Once the caller has hung up, a question still being
answered (asked just before the end) gets its `ReplyFrame`, so it is recorded, but nothing is
synthesised for nobody.
"""

from __future__ import annotations

import asyncio
import logging
import re

from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    StartFrame,
    TTSSpeakFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from core.english import SENTENCE_END
from domain.llm_report import Reporter
from processors.frames import CallerHungUpFrame, MemoryFactsFrame, ReplyFrame

log = logging.getLogger(__name__)


_CLAUSE_END = re.compile(r"[:,;](?=\s)")


def split_sentences(text: str, *, max_chars: int = 220, first_chars: int = 0) -> list[str]:
    """Sentences for TTS; an over-long one is split at commas so audio starts early.

    `first_chars` > 0: a first sentence longer than that is split after its first clause
    ("Tom has 2 open:" | "get the demo environment ready…"). The first audio is then the
    synthesis of a few words (~60 ms with Piper here) instead of the whole sentence (~200 ms);
    the rest is synthesised while that plays.
    """
    out: list[str] = []
    sentences = SENTENCE_END.split(text.strip())
    if first_chars > 0 and sentences and len(sentences[0]) > first_chars:
        sentences[:1] = _first_clause(sentences[0])
    for sentence in sentences:
        while len(sentence) > max_chars and "," in sentence[:max_chars]:
            cut = sentence.rfind(",", 0, max_chars) + 1
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            out.append(sentence)
    return out


def _first_clause(sentence: str) -> list[str]:
    """The sentence cut after its first clause with 2+ words on each side, else whole."""
    for mark in _CLAUSE_END.finditer(sentence):
        head, tail = sentence[: mark.end()].strip(), sentence[mark.end() :].strip()
        if len(head.split()) >= 2 and len(tail.split()) >= 2:
            return [head, tail]
    return [sentence]


class ReportProcessor(FrameProcessor):  # type: ignore[misc]
    """MemoryFactsFrame in; ReplyFrame + TTSSpeakFrames out.

    The reporter (an LLM, possibly) runs in this processor's own task, never in the frame
    loop: questions are answered in order from a queue. An interruption (barge-in, the asker
    going on after an early answer) drops the answer being prepared; at the end of the call the
    questions already asked are still answered (and recorded) before the `EndFrame` goes on.
    """

    def __init__(
        self, reporter: Reporter, *, max_sentence_chars: int = 220, first_chunk_chars: int = 0
    ) -> None:
        super().__init__()
        self._reporter = reporter
        self._max_chars = max_sentence_chars
        self._first_chars = first_chunk_chars
        self._replies = 0
        self._hung_up = False
        self._asks: asyncio.Queue[MemoryFactsFrame] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._start_worker()
        elif isinstance(frame, MemoryFactsFrame):
            if frame.ask.intent == "stop":
                log.info("asked to stop talking")
                self._drop_pending()
                await self.broadcast_interruption()  # type: ignore[no-untyped-call]
            else:
                self._asks.put_nowait(frame)
        elif isinstance(frame, InterruptionFrame):
            await self._restart_worker()
            await self.push_frame(frame, direction)
        elif isinstance(frame, EndFrame):
            await self._asks.join()  # asked before the end: answered and recorded
            await self._stop_worker()
            await self.push_frame(frame, direction)
        elif isinstance(frame, CancelFrame):
            await self._stop_worker()
            await self.push_frame(frame, direction)
        else:
            if isinstance(frame, CallerHungUpFrame):
                self._hung_up = True
            await self.push_frame(frame, direction)

    def _start_worker(self) -> None:
        if self._worker is None:
            self._worker = self.create_task(self._answer_each())

    async def _stop_worker(self) -> None:
        if self._worker is not None:
            await self.cancel_task(self._worker)
            self._worker = None

    def _drop_pending(self) -> None:
        while not self._asks.empty():
            self._asks.get_nowait()
            self._asks.task_done()

    async def _restart_worker(self) -> None:
        if self._worker is None:
            return
        await self._stop_worker()
        self._drop_pending()
        self._start_worker()

    async def _answer_each(self) -> None:
        while True:
            facts = await self._asks.get()
            try:
                await self._answer(facts)
            except Exception as exc:  # a reporter bug must not end the call
                log.exception("report failed")
                await self.push_error(f"report failed: {type(exc).__name__}")
            finally:
                self._asks.task_done()

    async def _answer(self, frame: MemoryFactsFrame) -> None:
        ask = frame.ask
        answer = await self._reporter.report(frame.facts)
        if not answer:
            return
        sentences = split_sentences(
            answer, max_chars=self._max_chars, first_chars=self._first_chars
        )
        await self.push_frame(
            ReplyFrame(
                intent=ask.intent,
                question=ask.question,
                answer=answer,
                t_question_end_ms=ask.end_ms,
                sentences=len(sentences),
                ordinal=self._replies,
            )
        )
        self._replies += 1
        if self._hung_up:
            log.info("not speaking reply %d: the caller has hung up", self._replies - 1)
            return
        for sentence in sentences:
            await self.push_frame(TTSSpeakFrame(sentence))
