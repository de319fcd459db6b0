"""Score a commitment extractor on a labelled JSONL set, and measure its throughput.

    uv run python benchmarks/extraction.py [--data benchmarks/data/extraction.jsonl] [--json]

Each line: {"id", "date", "lines": ["Speaker: text", ...], "expected": [{owner, action, due, kind}]}.
A prediction matches an expected item when the kind is equal, the owner is equal (case
insensitive; both unknown counts), and the actions agree: token Jaccard >= 0.5, or one contains
the other after normalisation. Owner and due accuracy are over matched items.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.extraction import (  # noqa: E402
    Commitment,
    DeterministicExtractor,
    parse_transcript_lines,
)

DEFAULT_DATA = Path(__file__).parent / "data" / "extraction.jsonl"
_ARTICLES = {"a", "an", "the", "to"}


def _tokens(text: str) -> set[str]:
    return {t for t in re.findall(r"[a-z0-9']+", text.lower()) if t not in _ARTICLES}


def actions_agree(predicted: str, expected: str) -> bool:
    a, b = _tokens(predicted), _tokens(expected)
    if not a or not b:
        return False
    norm_a, norm_b = " ".join(sorted(a)), " ".join(sorted(b))
    return len(a & b) / len(a | b) >= 0.5 or a <= b or b <= a or norm_a == norm_b


def _same_owner(predicted: str | None, expected: str | None) -> bool:
    return (predicted or "").lower() == (expected or "").lower()


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    owner_ok: int = 0
    due_ok: int = 0
    matched_total: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score_group(
    predicted: list[Commitment], expected: list[dict[str, Any]], score: Score
) -> list[str]:
    """Greedy one-to-one matching; returns notes on misses for the report."""
    notes: list[str] = []
    remaining = list(expected)
    for item in predicted:
        candidates = [
            e
            for e in remaining
            if e.get("kind", "commitment") == item.kind and actions_agree(item.action, e["action"])
        ]
        # Two people with the same action ("Hank and I will ..."): pair each with its owner.
        same_owner = [e for e in candidates if _same_owner(item.owner, e.get("owner"))]
        match = (same_owner or candidates or [None])[0]
        if match is None:
            score.fp += 1
            notes.append(f"extra: {item.kind} {item.owner}: {item.action}")
            continue
        remaining.remove(match)
        score.matched_total += 1
        owner_ok = _same_owner(item.owner, match.get("owner"))
        due_ok = (item.due.isoformat() if item.due else None) == match.get("due")
        score.owner_ok += owner_ok
        score.due_ok += due_ok
        if owner_ok:
            score.tp += 1
        else:
            score.fp += 1
            score.fn += 1
            notes.append(f"owner: {item.owner} != {match.get('owner')} ({item.action})")
        if not due_ok:
            notes.append(f"due: {item.due} != {match.get('due')} ({item.action})")
    for missed in remaining:
        score.fn += 1
        notes.append(
            f"missed: {missed.get('kind', 'commitment')} {missed.get('owner')}: {missed['action']}"
        )
    return notes


def load(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{n}: not JSON ({exc.msg})") from exc
    return rows


def evaluate(rows: list[dict[str, Any]]) -> tuple[Score, dict[str, list[str]]]:
    extractor = DeterministicExtractor()
    score = Score()
    misses: dict[str, list[str]] = {}
    for row in rows:
        found = extractor.extract(
            parse_transcript_lines(row["lines"]), meeting_date=dt.date.fromisoformat(row["date"])
        )
        notes = score_group(found, row["expected"], score)
        if notes:
            misses[row["id"]] = notes
    return score, misses


def throughput(rows: list[dict[str, Any]], seconds: float = 2.0) -> float:
    extractor = DeterministicExtractor()
    groups = [(parse_transcript_lines(r["lines"]), dt.date.fromisoformat(r["date"])) for r in rows]
    utterances = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for lines, date in groups:
            extractor.extract(lines, meeting_date=date)
            utterances += len(lines)
    return utterances / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    rows = load(args.data)
    score, misses = evaluate(rows)
    rate = throughput(rows, args.seconds)
    result = {
        "groups": len(rows),
        "expected": sum(len(r["expected"]) for r in rows),
        "precision": round(score.precision, 3),
        "recall": round(score.recall, 3),
        "f1": round(score.f1, 3),
        "owner_accuracy": round(score.owner_ok / score.matched_total, 3)
        if score.matched_total
        else None,
        "due_accuracy": round(score.due_ok / score.matched_total, 3)
        if score.matched_total
        else None,
        "utterances_per_sec": round(rate),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"deterministic extractor on {args.data.name}: {len(rows)} groups, {result['expected']} expected items"
    )
    for key in (
        "precision",
        "recall",
        "f1",
        "owner_accuracy",
        "due_accuracy",
        "utterances_per_sec",
    ):
        print(f"  {key:<20} {result[key]}")
    print(
        f"  target: f1 >= 0.9 ({'met' if score.f1 >= 0.9 else 'NOT met'}), >= 1000 utt/s ({'met' if rate >= 1000 else 'NOT met'})"
    )
    for rid, notes in misses.items():
        for note in notes:
            print(f"  {rid}: {note}")


if __name__ == "__main__":
    main()
