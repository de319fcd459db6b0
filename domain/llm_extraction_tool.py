"""The `record_commitments` tool: its input model (the schema the model is given is this
model's own `model_json_schema()`, made strict) and what its input becomes (Commitments)."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

from anthropic.types import ToolChoiceToolParam, ToolParam
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionNamedToolChoiceParam
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from domain.extraction import Commitment, Kind, Utterance
from domain.llm import Tool
from domain.llm_extraction_prompt import TOOL_NAME

log = logging.getLogger(__name__)

_DUE_SCHEMA = {
    "type": ["string", "null"],
    "pattern": r"^\d{4}-\d{2}-\d{2}$",
    "description": "YYYY-MM-DD resolved against the meeting date, or null.",
}
# The schema the model is given is strict (every field, nothing else); parsing its reply is
# lenient (extra keys ignored, a missing owner or due is null).
_STRICT_SCHEMA = ConfigDict(
    json_schema_extra={"additionalProperties": False},
    json_schema_serialization_defaults_required=True,
)


class ToolItem(BaseModel):
    """One commitment, status update or cancellation, as the model reports it."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, **_STRICT_SCHEMA)

    owner: str | None = Field(None, description="First name of who will do it; null when unclear.")
    action: str = Field(
        min_length=1, description="Short imperative phrase, e.g. 'send the deck to legal'."
    )
    due: Annotated[dt.date | None, WithJsonSchema(_DUE_SCHEMA)] = None
    kind: Kind
    quote: str = Field(min_length=1, description="The words from the transcript, verbatim.")
    confidence: float = Field(ge=0.0, le=1.0)

    @field_validator("due", mode="before")
    @classmethod
    def _iso_date(cls, value: object) -> object:
        if value is None or value == "":
            return None
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            raise ValueError("due must be YYYY-MM-DD or null")
        return dt.date.fromisoformat(value.strip())


class ToolInput(BaseModel):
    """The tool's whole input."""

    model_config = ConfigDict(extra="ignore", **_STRICT_SCHEMA)

    commitments: list[ToolItem] = Field(
        description="Everything found in the new lines; an empty list when nothing is."
    )


COMMITMENTS_TOOL = Tool(
    TOOL_NAME,
    "Record the commitments, status updates and cancellations heard in the new lines of the "
    "meeting transcript window.",
    ToolInput,
)
COMMITMENTS_SCHEMA: dict[str, Any] = COMMITMENTS_TOOL.schema
TOOL: ToolParam = COMMITMENTS_TOOL.anthropic
TOOL_CHOICE: ToolChoiceToolParam = COMMITMENTS_TOOL.anthropic_choice
#: The same tool for a Chat Completions server: a function whose parameters are the schema.
OPENAI_TOOL: ChatCompletionFunctionToolParam = COMMITMENTS_TOOL.openai
OPENAI_TOOL_CHOICE: ChatCompletionNamedToolChoiceParam = COMMITMENTS_TOOL.openai_choice


def to_commitments(
    reply: ToolInput,
    *,
    bot_names: Iterable[str] = (),
    lines: Sequence[Utterance] | None = None,
    meeting_date: dt.date | None = None,
) -> list[Commitment]:
    """The tool input as Commitments; the bot is never an owner.

    Given the window (`lines`) and `meeting_date`, an item is rejected (and logged, never
    returned) when its owner is nobody in the window (not a speaker, not a word said) or its due
    date is before the meeting.
    """
    bots = {name.casefold() for name in bot_names}
    kept = []
    for item in reply.commitments:
        problem = _problem(item, lines, meeting_date)
        if problem is not None:
            log.warning("LLM extraction: rejected a %s item: %s", item.kind, problem)
            continue
        kept.append(_to_commitment(item, bots))
    return kept


def _problem(
    item: ToolItem, lines: Sequence[Utterance] | None, meeting_date: dt.date | None
) -> str | None:
    if meeting_date is not None and item.due is not None and item.due < meeting_date:
        return f"due {item.due.isoformat()} is before the meeting ({meeting_date.isoformat()})"
    if lines is not None and item.owner and not _in_meeting(item.owner, lines):
        return f"owner {item.owner!r} is nobody in the meeting"
    return None


def _words(text: str) -> set[str]:
    return set(re.findall(r"[\w']+", text.casefold()))


def _in_meeting(owner: str, lines: Sequence[Utterance]) -> bool:
    """A speaker of the window, or named in it: every word of the owner is a word said or a
    word of a speaker's label ("Marketing Expert", "Tom")."""
    known: set[str] = set()
    for line in lines:
        known |= _words(line.speaker or "") | _words(line.text)
    wanted = _words(owner) - {"the"}
    return bool(wanted) and wanted <= known


def _to_commitment(item: ToolItem, bots: set[str]) -> Commitment:
    owner = item.owner or None
    if owner is not None and owner.casefold() in bots:
        owner = None
    return Commitment(
        owner=owner,
        action=item.action,
        due=item.due,
        quote=item.quote,
        confidence=item.confidence,
        kind=item.kind,
    )
