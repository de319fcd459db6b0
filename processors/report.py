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

from core.english import SENTENCE_END
from processors.frames import MemoryFactsFrame, ReplyFrame
from processors.llm_report import Reporter

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
    """MemoryFactsFrame in; ReplyFrame + TTSSpeakFrames out."""

    def __init__(
        self, reporter: Reporter, *, max_sentence_chars: int = 220, first_chunk_chars: int = 0
    ) -> None:
        super().__init__()
        self._reporter = reporter
        self._max_chars = max_sentence_chars
        self._first_chars = first_chunk_chars

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
            )
        )
        for sentence in sentences:
            await self.push_frame(TTSSpeakFrame(sentence))
