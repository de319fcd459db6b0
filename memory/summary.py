"""A call's summary from what it heard: template text, no LLM (deterministic and offline)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from memory.models import CommitmentRecord


def _item(c: CommitmentRecord) -> str:
    owner = c.owner or "someone"
    due = f" by {c.due:%A %d %B}" if c.due else ""
    return f"{owner}: {c.action}{due}"


def summarize_call(
    *, meeting_date: dt.date, segments: int, commitments: Sequence[CommitmentRecord]
) -> str:
    """E.g. "Meeting of Tuesday 24 November 2026 (5 utterances). Promised: Tom: ...; Done: ..."."""
    parts = [f"Meeting of {meeting_date:%A %d %B %Y} ({segments} utterances)."]
    for kind, label in (
        ("commitment", "Promised"),
        ("status_done", "Done"),
        ("cancel", "Cancelled"),
    ):
        items = [_item(c) for c in commitments if c.kind == kind]
        if items:
            parts.append(f"{label}: " + "; ".join(items) + ".")
    if len(parts) == 1:
        parts.append("No commitments were made.")
    return " ".join(parts)
