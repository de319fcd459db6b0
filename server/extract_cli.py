"""`convene extract`: transcripts in, commitments out (single transcript or a JSONL batch)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from domain.extraction import Commitment, DeterministicExtractor, parse_transcript_lines


def commitment_json(item: Commitment) -> dict[str, Any]:
    out: dict[str, Any] = {
        "owner": item.owner,
        "action": item.action,
        "due": item.due.isoformat() if item.due else None,
        "quote": item.quote,
        "confidence": round(item.confidence, 3),
        "kind": item.kind,
    }
    if item.owners:  # a group task: each owner ("owner" joins them)
        out["owners"] = list(item.owners)
    return out


def extract_lines(
    lines: Iterable[str], *, meeting_date: dt.date, next_meeting: dt.date | None = None
) -> list[dict[str, Any]]:
    utterances = parse_transcript_lines(lines)
    found = DeterministicExtractor().extract(
        utterances, meeting_date=meeting_date, next_meeting=next_meeting
    )
    return [commitment_json(c) for c in found]


@dataclass(frozen=True)
class BatchResult:
    line_no: int
    output: dict[str, Any]
    error: str | None = None


def _batch_item(line_no: int, raw: str) -> BatchResult:
    try:
        item = json.loads(raw)
    except json.JSONDecodeError as exc:
        return BatchResult(
            line_no, {"id": None, "error": f"line {line_no}: not JSON ({exc.msg})"}, "x"
        )
    if not isinstance(item, dict):
        return BatchResult(
            line_no, {"id": None, "error": f"line {line_no}: expected an object"}, "x"
        )
    item_id = item.get("id")
    problems = []
    lines = item.get("lines")
    if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
        problems.append("`lines` must be a list of strings")
    date_raw = item.get("date")
    meeting_date: dt.date | None = None
    try:
        meeting_date = dt.date.fromisoformat(str(date_raw))
    except ValueError:
        problems.append(f"`date` {date_raw!r} is not YYYY-MM-DD")
    next_raw = item.get("next_meeting")
    next_meeting: dt.date | None = None
    if next_raw is not None:
        try:
            next_meeting = dt.date.fromisoformat(str(next_raw))
        except ValueError:
            problems.append(f"`next_meeting` {next_raw!r} is not YYYY-MM-DD")
    if problems or meeting_date is None or not isinstance(lines, list):
        message = f"line {line_no}: " + "; ".join(problems)
        return BatchResult(line_no, {"id": item_id, "error": message}, message)
    found = extract_lines(lines, meeting_date=meeting_date, next_meeting=next_meeting)
    return BatchResult(line_no, {"id": item_id, "commitments": found})


def run_batch(raw_lines: Iterable[str]) -> Iterator[BatchResult]:
    """One result per non-blank input line, in order; a bad line never stops the others."""
    extractor_lines = enumerate(raw_lines, start=1)
    for line_no, raw in extractor_lines:
        if raw.strip():
            yield _batch_item(line_no, raw)
