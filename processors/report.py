"""The answer: turns memory facts into a short spoken report and hands it to TTS.

The reporter is the templates of prompts/report.yaml (deterministic, no LLM) or, with
`report.backend: anthropic`, Claude writing from the same facts (checked, templates as fallback). The answer is split into sentences
(one `TTSSpeakFrame` each) so the first sentence plays while the rest is synthesised. "Stop" /
"that's all" interrupts the bot instead.
"""

from __future__ import annotations

import logging
import re

from pipecat.frames.frames import Frame, TTSSpeakFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from processors.frames import MemoryFactsFrame, ReplyFrame
from processors.llm_report import Reporter

log = logging.getLogger(__name__)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str, *, max_chars: int = 220) -> list[str]:
    """Sentences for TTS; an over-long one is split at commas so audio starts early."""
    out: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        while len(sentence) > max_chars and "," in sentence[:max_chars]:
            cut = sentence.rfind(",", 0, max_chars) + 1
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            out.append(sentence)
    return out


class ReportProcessor(FrameProcessor):  # type: ignore[misc]
    """MemoryFactsFrame in; ReplyFrame + TTSSpeakFrames out."""

    def __init__(self, reporter: Reporter, *, max_sentence_chars: int = 220) -> None:
        super().__init__()
        self._reporter = reporter
        self._max_chars = max_sentence_chars

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, MemoryFactsFrame):
            await self.push_frame(frame, direction)
            return
        ask = frame.ask
        if ask.intent == "stop":
            log.info("asked to stop talking")
            await self.broadcast_interruption()  # type: ignore[no-untyped-call]
            return
        answer = await self._reporter.report(frame.facts)
        if not answer:
            return
        sentences = split_sentences(answer, max_chars=self._max_chars)
        await self.push_frame(
            ReplyFrame(
                intent=ask.intent,
                question=ask.question,
                answer=answer,
                t_question_end_ms=ask.end_ms,
                sentences=len(sentences),
            )
        )
        for sentence in sentences:
            await self.push_frame(TTSSpeakFrame(sentence))
