"""`prompts/extraction.yaml` (model settings, system prompt, worked examples) and the request
text: the transcript window the model reads, new lines marked."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from core.prompts import load_yaml_model
from domain.extraction import Kind, Utterance, parse_transcript_lines

#: The tool the model is made to call with what it found.
TOOL_NAME = "record_commitments"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExampleCommitment(_Strict):
    """One expected tool item in a worked example."""

    owner: str | None
    action: str = Field(min_length=1)
    # The words said ("by Friday"), as the model is asked to give them; a YYYY-MM-DD date is
    # accepted too (older prompt files).
    due: str | None
    kind: Kind = "commitment"
    quote: str = Field(min_length=1)


class ExtractionExample(_Strict):
    """A worked example: transcript lines, meeting date and the exact expected output."""

    lines: list[str] = Field(min_length=1)
    date: dt.date
    output: list[ExampleCommitment]


class ExtractionPrompt(_Strict):
    """`prompts/extraction.yaml`: model settings, system prompt and worked examples."""

    model: str = Field("claude-sonnet-4-5", min_length=1)
    max_tokens: int = Field(1024, ge=64, le=8192)
    # None: not sent. SDK 2.x (API version 2026-10-21) has no `temperature` argument; a value
    # set here goes in the request body as an extra field, for models that still accept it.
    temperature: float | None = Field(None, ge=0.0, le=1.0)
    timeout_secs: float = Field(20.0, gt=0.0, le=600.0)
    max_retries: int = Field(3, ge=0, le=10)
    system: str = Field(min_length=1)
    examples: list[ExtractionExample] = Field(default_factory=list)

    def example_turns(self) -> list[tuple[str, str]]:
        """The worked examples as (user message, tool input JSON) pairs, shown to the model
        as earlier turns of the conversation (small models follow turns better than text)."""
        turns = []
        for example in self.examples:
            user = render_window(
                parse_transcript_lines(example.lines),
                new_from=0,
                meeting_date=example.date,
                bot_names=(),
            )
            output = [
                {**item.model_dump(mode="json"), "confidence": 0.9} for item in example.output
            ]
            turns.append((user, json.dumps({"commitments": output})))
        return turns


def load_extraction_prompt(path: Path) -> ExtractionPrompt:
    """Load `prompts/extraction.yaml`; ConfigError names the file, key path and reason."""
    return load_yaml_model(path, ExtractionPrompt)


def _date_label(day: dt.date) -> str:
    return f"{day.isoformat()} ({day.strftime('%A')})"


def _line(utterance: Utterance) -> str:
    speaker = (utterance.speaker or "").strip() or "Someone"
    return f"{speaker}: {' '.join(utterance.text.split())}"


def render_window(
    lines: Sequence[Utterance],
    *,
    new_from: int,
    meeting_date: dt.date,
    bot_names: Sequence[str],
    next_meeting: dt.date | None = None,
) -> str:
    """The user message: meeting date, who speaks, the bot's names, then the window's lines:
    earlier ones as context, the new ones to record from. Short and plain, for small models."""
    said = [(u.speaker or "").strip() for u in lines]
    speakers = list(dict.fromkeys(name for name in said if name))
    header = [
        f"Meeting date: {_date_label(meeting_date)}",
        *(
            [f'The series\' next meeting ("for the next meeting"): {_date_label(next_meeting)}']
            if next_meeting is not None
            else []
        ),
        *([f"Speakers: {', '.join(speakers)}"] if speakers else []),
        *([f"The meeting bot (never an owner): {', '.join(bot_names)}"] if bot_names else []),
    ]
    context = [_line(u) for u in lines[:new_from]]
    new = [_line(u) for u in lines[new_from:]]
    body = [
        *(["Earlier lines (context only, already read):", *context] if context else []),
        "New lines:" if context else "Transcript:",
        *new,
    ]
    return "\n".join([*header, *body])
