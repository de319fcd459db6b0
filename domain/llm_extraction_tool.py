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

from domain.dates import resolve_due
from domain.extraction import Commitment, Kind, Utterance
from domain.extraction_gate import has_commitment_cue
from domain.llm import Tool
from domain.llm_extraction_prompt import TOOL_NAME

log = logging.getLogger(__name__)

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}")
# The model gives the words said ("by Friday", "for the next meeting"); Convene resolves them
# against the meeting date (domain.dates, as the rules do): small models get weekdays wrong.
# A date already resolved (YYYY-MM-DD) is taken as it is, and checked.
_DUE_SCHEMA = {
    "type": ["string", "null"],
    "maxLength": 60,
    "description": "When, in the words said ('by Friday', 'for the next meeting'), or null.",
}
# Owners that mean nobody known: the item stands with owner null.
NOBODY = frozenset({"unknown", "someone", "somebody", "none", "null", "n/a", "speaker", "?"})
# Owners that mean the whole group: the window's speakers (the bot left out) own it together.
GROUP_OWNERS = frozenset(
    {"everyone", "everybody", "we", "us", "all", "all of us", "the group", "the team", "team"}
)
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
    due: Annotated[str | None, WithJsonSchema(_DUE_SCHEMA)] = None
    kind: Kind
    quote: str = Field(min_length=1, description="The words from the transcript, verbatim.")
    confidence: float = Field(ge=0.0, le=1.0)

    @field_validator("due", mode="before")
    @classmethod
    def _due_words(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            raise ValueError("due must be the words said, YYYY-MM-DD, or null")
        text = value.strip()
        if _ISO.fullmatch(text):
            try:
                dt.date.fromisoformat(text)
            except ValueError as exc:
                raise ValueError(f"due {text!r} is no calendar date") from exc
        return text


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
    next_meeting: dt.date | None = None,
) -> list[Commitment]:
    """The tool input as Commitments; the bot is never an owner.

    Given the window (`lines`) and `meeting_date`, an item is rejected (and logged, never
    returned) when its owner is nobody in the window (not a speaker, not a word said), its due
    date is before the meeting, or the line it quotes puts no work on anyone
    (`has_commitment_cue`: an agenda, an opinion). The due words are resolved against the
    meeting date (and `next_meeting`); one action given to several owners is one group task,
    and "everyone" / "we" own it as the window's speakers.
    """
    bots = {name.casefold() for name in bot_names}
    merged: dict[tuple[str, str], tuple[ToolItem, list[str]]] = {}
    for item in reply.commitments:
        problem = _problem(item, lines, meeting_date)
        if problem is not None:
            log.warning("LLM extraction: rejected a %s item: %s", item.kind, problem)
            continue
        if lines is not None and not has_commitment_cue(_quoted_line(item.quote, lines)):
            log.info("LLM extraction: dropped a %s item: its line puts work on nobody", item.kind)
            continue
        key = (item.kind, " ".join(_said(item.action)))
        owners = _owners(item.owner, lines, bots)
        if key in merged:
            merged[key][1].extend(o for o in owners if o not in merged[key][1])
        else:
            merged[key] = (item, owners)
    return [
        _to_commitment(item, owners, meeting_date, next_meeting) for item, owners in merged.values()
    ]


def _problem(
    item: ToolItem, lines: Sequence[Utterance] | None, meeting_date: dt.date | None
) -> str | None:
    due = item.due
    dated = due is not None and _ISO.fullmatch(due) is not None
    if meeting_date is not None and due is not None and dated:
        day = dt.date.fromisoformat(due)
        if day < meeting_date:
            return f"due {due} is before the meeting ({meeting_date.isoformat()})"
    owner = (item.owner or "").strip()
    named = bool(owner) and owner.casefold() not in GROUP_OWNERS | NOBODY
    if lines is not None and named and not _in_meeting(owner, lines):
        return f"owner {owner!r} is nobody in the meeting"
    return None


def _quoted_line(quote: str, lines: Sequence[Utterance]) -> str:
    """The line of the window that holds the quote (its first words), else the quote."""
    wanted = " ".join(_said(quote))[:30]
    for line in lines:
        if wanted and wanted in " ".join(_said(line.text)):
            return line.text
    return quote


def _owners(owner: str | None, lines: Sequence[Utterance] | None, bots: set[str]) -> list[str]:
    name = (owner or "").strip()
    if not name or name.casefold() in bots | NOBODY:
        return []
    if name.casefold() in GROUP_OWNERS:
        speakers = dict.fromkeys(
            line.speaker.strip()
            for line in lines or ()
            if line.speaker and line.speaker.strip().casefold() not in bots
        )
        return list(speakers)
    return [name]


def _said(text: str) -> list[str]:
    """The words of a text, in order, lower case."""
    return re.findall(r"[\w']+", text.casefold())


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


def _to_commitment(
    item: ToolItem,
    owners: list[str],
    meeting_date: dt.date | None,
    next_meeting: dt.date | None,
) -> Commitment:
    due: dt.date | None = None
    if item.due is not None and _ISO.fullmatch(item.due):
        due = dt.date.fromisoformat(item.due)
    elif item.due is not None and meeting_date is not None:
        due = resolve_due(item.due, meeting_date=meeting_date, next_meeting=next_meeting)
    return Commitment(
        owner=" and ".join(owners) if owners else None,
        action=item.action,
        due=due,
        quote=item.quote,
        confidence=item.confidence,
        kind=item.kind,
        owners=tuple(owners) if len(owners) > 1 else (),
    )
