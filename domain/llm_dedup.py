"""What an LLM reported for a meeting already: overlapping windows never report twice."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from domain.extraction import Commitment, Utterance


def _norm(text: str | None) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", (text or "").casefold()).split())


class Seen:
    """What was already reported: same kind+owner with the same action, or the same quote."""

    def __init__(self) -> None:
        self._actions: set[tuple[str, str, str]] = set()
        self._quotes: set[tuple[str, str, str]] = set()

    def fresh(self, found: Iterable[Commitment]) -> list[Commitment]:
        """Drop what was reported by an earlier call; remember the rest."""
        earlier_quotes = set(self._quotes)
        kept: list[Commitment] = []
        for item in found:
            action_key = (item.kind, _norm(item.owner), _norm(item.action))
            quote_key = (item.kind, _norm(item.owner), _norm(item.quote))
            if action_key in self._actions or quote_key in earlier_quotes:
                continue
            self._actions.add(action_key)
            self._quotes.add(quote_key)
            kept.append(item)
        return kept


def in_new_lines(item: Commitment, lines: Sequence[Utterance], new_from: int) -> bool:
    """False only when the quote comes from the context lines and not from the new ones.

    A quote may join a request and its acceptance ("Tom, can you ...? / Sure"): any part of it
    found in a new line counts.
    """
    parts = [p for p in (_norm(part) for part in item.quote.split(" / ")) if p]
    new = [_norm(u.text) for u in lines[new_from:]]
    old = [_norm(u.text) for u in lines[:new_from]]
    if not parts or any(p in text for p in parts for text in new):
        return True
    return not any(p in text for p in parts for text in old)
