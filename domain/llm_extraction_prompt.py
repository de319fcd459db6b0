"""`prompts/extraction.yaml` (model settings, system prompt, worked examples) and the request
text: the transcript window the model reads, new lines marked."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from core.prompts import load_yaml_model
from domain.extraction import Kind, Utterance

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

    def system_text(self) -> str:
        """The system prompt with the worked examples appended."""
        if not self.examples:
            return self.system
        parts = [
            self.system.rstrip(),
            "",
            "Worked examples (every line in them is new; confidence is left out of them, "
            "but always give it):",
        ]
        for number, example in enumerate(self.examples, start=1):
            parts.append(f"<example {number}>")
            parts.append(f"Meeting date: {_date_label(example.date)}")
            parts.extend(example.lines)
            output = [item.model_dump(mode="json") for item in example.output]
            parts.append(f"{TOOL_NAME} input: {json.dumps({'commitments': output})}")
            parts.append(f"</example {number}>")
        return "\n".join(parts)


def load_extraction_prompt(path: Path) -> ExtractionPrompt:
    """Load `prompts/extraction.yaml`; ConfigError names the file, key path and reason."""
    return load_yaml_model(path, ExtractionPrompt)


def _date_label(day: dt.date) -> str:
    return f"{day.isoformat()} ({day.strftime('%A')})"


def _line(utterance: Utterance) -> str:
    speaker = (utterance.speaker or "").strip() or "(unknown)"
    return f"{speaker}: {' '.join(utterance.text.split())}"


def _span(first: int, last: int) -> str:
    return f"line {first}" if first == last else f"lines {first}-{last}"


def render_window(
    lines: Sequence[Utterance],
    *,
    new_from: int,
    meeting_date: dt.date,
    bot_names: Sequence[str],
    next_meeting: dt.date | None = None,
) -> str:
    """The user message: meeting date, bot names and the numbered window, new lines marked."""
    count = len(lines)
    if new_from <= 0:
        scope = f"All {count} lines are new."
    else:
        scope = (
            f"{_span(1, new_from).capitalize()}: context you have already seen. Record only "
            f"what is made, accepted, finished or cancelled in the new {_span(new_from + 1, count)}."
        )
    header = [
        f"Meeting date: {_date_label(meeting_date)}",
        *(
            [f'The series\' next meeting ("for the next meeting"): {_date_label(next_meeting)}']
            if next_meeting is not None
            else []
        ),
        f"The meeting bot (never an owner): {', '.join(bot_names) or 'none'}",
        f"Transcript window, oldest first. {scope}",
    ]
    body = [
        f"{number}. [{'new' if number > new_from else 'context'}] {_line(u)}"
        for number, u in enumerate(lines, start=1)
    ]
    footer = [f"Call {TOOL_NAME} once, with an empty list if there is nothing to record."]
    return "\n".join([*header, "", *body, "", *footer])
