"""Score commitment extractors on labelled sets of meeting talk, and measure their throughput.

    uv run python benchmarks/extraction.py                    # every backend x every set
    uv run python benchmarks/extraction.py --set ami-dev --backend rules --misses
    uv run python benchmarks/extraction.py --data benchmarks/data/extraction.jsonl --json

Sets (`--set`, repeatable; default all three):
  synthetic  benchmarks/data/extraction.jsonl: tidy meeting sentences (in-sample for the rules).
  ami-dev    benchmarks/data/ami/dev.jsonl: windows of real AMI meeting talk (develop on this).
  ami-test   benchmarks/data/ami/test.jsonl: HELD-OUT TEST split of the same; report it, never
             tune on it. (See benchmarks/data/ami/README.md for how both were built.)

Record format: {"id", "date", "lines", "expected": [{owner, action, due, kind}], ...}. A line is
either "Speaker: text" or {"speaker", "text"}. An owner is a string or, for a group task, a list
of owners. Optional "participants": [{"speaker", "role", "name"}] lets an owner be named either
way ("Andrew" or "Marketing Expert" are the same person when a participant has both).

Backends (`--backend`, repeatable; default every one that can run here):
  rules          the deterministic extractor, reading every window.
  rules+gate     the same behind the cheap gate (domain/extraction_gate.py): a window the gate
                 closes is answered with nothing.
  llm            LLMExtractor, provider openai-compatible at OPENAI_BASE_URL (model: LLM_MODEL
                 or the prompt file's), reading every window; only when that server answers
                 (no cloud: skipped with a note otherwise).
  llm+gate       the same with the gate in front: the model reads gated windows (with their
                 context), the rules answer the others, as in a live call.
  local-llm      the offline default: the packaged model (domain/local_llm.py) behind llama.cpp's
                 OpenAI-compatible server, started for the run, through the same LLMExtractor a
                 call uses; `local-llm+gate` with the gate (as calls and `convene extract` run
                 it); `local-llm:<packaged name>[+gate]` for the other packaged candidates. Run
                 only when named (minutes per set on a laptop CPU); `--every N` scores a sample.
Other sessions add theirs with `register_backend(name, factory)`: the factory returns an object
with `extract(utterances, *, meeting_date) -> list[Commitment]`, or raises `BackendUnavailable`
(no model, no key) and the backend is listed as skipped.

Cost. Windows per second: every window of the set extracted from scratch, repeated for
--seconds (one pass for the LLM backends). CPU seconds per hour of meeting: this process' CPU
time (`time.process_time`; for local-llm backends plus the model server's, for `llm` a remote
server's CPU is NOT in it) for one pass over the set, divided by the set's meeting time. The AMI windows carry no timings, so meeting time is
estimated from the words at 150 words a minute (for every set alike).

The gate (`--gate-report`, and in --json under "gate"): the share of windows with gold items it
passes (its recall: the target is >= 0.95), the share of negative windows it passes and the share
of all lines it passes alone (what the model would read).

Matching (one-to-one, greedy in prediction order). A prediction MATCHES an expected item when
  1. the kind is equal;
  2. the owners are compatible: the predicted owner set (a list, or "A and B" / "A, B" split)
     shares at least one person with the expected set (names and roles resolved through
     "participants"; both unknown counts as compatible);
  3. the actions agree: token Jaccard >= 0.5 or one token set contains the other (the original
     rule, after dropping a/an/the/to), OR the project's own word matcher
     (memory.tracking.content_words and word_credit, as task tracking uses to recognise the same
     task in other words: stop words dropped, a near-spelling earns 0.7) gives an F-measure of
     at least 0.4 between the two actions' content words. The 0.4 threshold was fixed before
     any run on AMI; it lets a paraphrase ("look at user requirement specifications" vs "work
     on the user requirements") match and keeps unrelated actions apart.
Among candidates an owner-compatible one is preferred. A match whose owner is not compatible is a
false positive and a false negative. Unmatched predictions are false positives, unmatched
expected items false negatives.
Owner accuracy: over matched items, the predicted owner set equals the expected set exactly (a
group task found for one of its owners is matched but its owner is not accurate). Due accuracy:
over matched items, the predicted due date equals the expected one (ISO date or null). AMI gold
has no dates (the corpus gives none): its due is null, and "for the next meeting" is kept as
`due_text`, so on AMI due accuracy measures that no date was invented.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import datetime as dt
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.prompts import load_prompts  # noqa: E402
from domain.extraction import (  # noqa: E402
    Commitment,
    DeterministicExtractor,
    Utterance,
    parse_transcript_lines,
)
from domain.extraction_gate import may_hold_commitment, window_may_hold_commitment  # noqa: E402
from domain.llm import OPENAI_NO_KEY  # noqa: E402
from domain.llm_extraction import build_llm_extractor, warm_up_server  # noqa: E402
from domain.local_llm import (  # noqa: E402
    DEFAULT_MODEL,
    PACKAGED_MODELS,
    PACKAGED_PREFIX,
    LocalLlmServer,
)
from memory.tracking import content_words, word_credit  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
DEFAULT_DATA = DATA / "extraction.jsonl"
SETS: dict[str, tuple[Path, str]] = {
    "synthetic": (DEFAULT_DATA, "synthetic, tidy sentences (in-sample for the rules)"),
    "ami-dev": (DATA / "ami" / "dev.jsonl", "AMI real talk, dev split"),
    "ami-test": (DATA / "ami" / "test.jsonl", "AMI real talk, HELD-OUT TEST split"),
}
WORD_MATCH_THRESHOLD = 0.4
_ARTICLES = {"a", "an", "the", "to"}
_OWNER_SPLIT = re.compile(r"\s*,\s*(?:and\s+)?|\s+and\s+|\s*&\s*", re.I)


# --------------------------------------------------------------------------- backends


class Extractor(Protocol):
    def extract(
        self, utterances: Sequence[Utterance], *, meeting_date: dt.date
    ) -> list[Commitment]: ...


class BackendUnavailable(Exception):
    """Raised by a backend factory when it cannot run here (no model, no key, no server)."""


class Gated:
    """An extractor behind the gate: a window the gate closes is answered with nothing."""

    def __init__(self, inner: Extractor) -> None:
        self.inner = inner

    def extract(
        self, utterances: Sequence[Utterance], *, meeting_date: dt.date
    ) -> list[Commitment]:
        if not window_may_hold_commitment(utterances):
            return []
        return self.inner.extract(utterances, meeting_date=meeting_date)


_SERVERS: dict[str, LocalLlmServer] = {}


def _local_server(model: str) -> LocalLlmServer:
    """One llama.cpp server per packaged model for the whole run (stopped at exit); its data
    dir (the joined model) is kept in ~/.cache/convene-bench so a rerun does not join it again."""
    if model not in PACKAGED_MODELS:
        raise BackendUnavailable(f"no packaged model {model!r}")
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable("llama-cpp-python is not installed") from exc
    server = _SERVERS.get(model)
    if server is None:
        knobs = load_prompts(ROOT / "prompts").pipeline
        server = LocalLlmServer(
            Path.home() / ".cache" / "convene-bench" / model,
            model=f"{PACKAGED_PREFIX}{model}",
            threads=knobs.local_llm.threads,
            context_tokens=knobs.local_llm.context_tokens,
        )
        server.start()
        _SERVERS[model] = server
        atexit.register(server.stop)
    return server


class SyncLlm:
    """LLMExtractor (async) behind the benchmark's synchronous `extract`, on a loop of its own.

    `local`: a packaged model behind llama.cpp's server, as a call runs it (its prompt read once
    first, not counted; its server's CPU counted); else the server at OPENAI_BASE_URL."""

    def __init__(self, *, gate: bool, local: str | None = None) -> None:
        self.server: LocalLlmServer | None = None
        temperature = timeout = None
        if local is not None:
            self.server = _local_server(local)
            knobs = load_prompts(ROOT / "prompts").pipeline.local_llm
            base_url, api_key, model = self.server.base_url, OPENAI_NO_KEY, self.server.alias
            temperature, timeout = knobs.temperature, knobs.timeout_secs
        else:
            base_url = os.environ.get("OPENAI_BASE_URL") or ""
            if not base_url:
                raise BackendUnavailable("no OPENAI_BASE_URL: no openai-compatible server to ask")
            try:
                httpx.get(base_url.rstrip("/") + "/models", timeout=2.0)
            except httpx.HTTPError as exc:
                raise BackendUnavailable(
                    f"{base_url} does not answer ({type(exc).__name__})"
                ) from exc
            api_key, model = os.environ.get("OPENAI_API_KEY"), os.environ.get("LLM_MODEL")
        self._loop = asyncio.new_event_loop()
        self._spool = Path(tempfile.mkdtemp(prefix="convene-bench-")) / "spool.sqlite3"
        self.llm = build_llm_extractor(
            prompt_path=ROOT / "prompts" / "extraction.yaml",
            spool_path=self._spool,
            fallback=DeterministicExtractor(),
            api_key=api_key,
            base_url=base_url,
            provider="openai-compatible",
            model=model,
            gate=gate,
            rules_too=load_prompts(ROOT / "prompts").pipeline.extraction.rules_too,
            timeout_secs=timeout,
            temperature=temperature,
        )
        if self.server is not None and self.server.alias not in _WARM:
            _WARM.add(self.server.alias)
            self._loop.run_until_complete(
                warm_up_server(
                    prompt_path=ROOT / "prompts" / "extraction.yaml",
                    spool_path=self._spool,
                    base_url=base_url,
                    model=self.server.alias,
                    temperature=temperature,
                )
            )

    def cpu_seconds(self) -> float:
        """This process' CPU time, plus the local model server's."""
        own = time.process_time()
        return own + self.server.cpu_seconds() if self.server is not None else own

    @property
    def fallbacks(self) -> int:
        return self.llm.stats.fallbacks

    def extract(
        self, utterances: Sequence[Utterance], *, meeting_date: dt.date
    ) -> list[Commitment]:
        return self._loop.run_until_complete(
            self.llm.extract(utterances, meeting_date=meeting_date)
        )

    def close(self) -> None:
        self._loop.run_until_complete(self.llm.aclose())
        self._loop.close()


BACKENDS: dict[str, Callable[[], Extractor]] = {
    "rules": DeterministicExtractor,
    "rules+gate": lambda: Gated(DeterministicExtractor()),
    "llm": lambda: SyncLlm(gate=False),
    "llm+gate": lambda: SyncLlm(gate=True),
}
for _name in PACKAGED_MODELS:
    _suffix = "" if _name == DEFAULT_MODEL else f":{_name}"
    BACKENDS[f"local-llm{_suffix}"] = lambda n=_name: SyncLlm(gate=False, local=n)
    BACKENDS[f"local-llm{_suffix}+gate"] = lambda n=_name: SyncLlm(gate=True, local=n)
_WARM: set[str] = set()
# One pass for the rates, not --seconds of them.
SLOW = {name for name in BACKENDS if name.startswith(("llm", "local-llm"))}
# Run only when named: minutes per set on a laptop's CPU.
ON_REQUEST = {name for name in BACKENDS if name.startswith("local-llm")}
WORDS_PER_MINUTE = 150


def register_backend(name: str, factory: Callable[[], Extractor]) -> None:
    """The hook for other backends (local LLM, with or without the gate; cloud LLM)."""
    BACKENDS[name] = factory


# --------------------------------------------------------------------------- matching


def _tokens(text: str) -> set[str]:
    return {t for t in re.findall(r"[a-z0-9']+", text.lower()) if t not in _ARTICLES}


def word_match(predicted: str, expected: str) -> float:
    """F-measure of content-word credit both ways (memory.tracking's matcher, no embeddings)."""
    a, b = content_words(predicted), content_words(expected)
    if not a or not b:
        return 0.0
    recall = sum(word_credit(w, a) for w in b) / len(b)
    precision = sum(word_credit(w, b) for w in a) / len(a)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def actions_agree(predicted: str, expected: str) -> bool:
    a, b = _tokens(predicted), _tokens(expected)
    if not a or not b:
        return False
    if len(a & b) / len(a | b) >= 0.5 or a <= b or b <= a:
        return True
    return word_match(predicted, expected) >= WORD_MATCH_THRESHOLD


def _aliases(row: dict[str, Any]) -> dict[str, str]:
    """Any way to name a participant -> their speaker label (lower case)."""
    out: dict[str, str] = {}
    for p in row.get("participants") or []:
        key = str(p["speaker"]).lower()
        for name in (p.get("speaker"), p.get("role"), p.get("name")):
            if name:
                out[str(name).lower()] = key
    return out


def owner_set(owner: Any, aliases: dict[str, str]) -> frozenset[str]:
    if owner is None:
        return frozenset()
    names = owner if isinstance(owner, list) else _OWNER_SPLIT.split(str(owner))
    out = set()
    for name in names:
        key = str(name).strip().lower().removeprefix("the ").strip()
        if key:
            out.add(aliases.get(key, key))
    return frozenset(out)


def _predicted_owner(item: Commitment) -> Any:
    owners = getattr(item, "owners", None)  # a backend may give a group task several owners
    return list(owners) if owners else item.owner


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    owner_ok: int = 0
    due_ok: int = 0
    matched_total: int = 0
    negatives: int = 0
    negatives_fired: int = 0

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
    predicted: list[Commitment],
    expected: list[dict[str, Any]],
    score: Score,
    aliases: dict[str, str] | None = None,
) -> list[str]:
    """Greedy one-to-one matching; returns notes on misses for the report."""
    aliases = aliases or {}
    notes: list[str] = []
    remaining = list(expected)
    for item in predicted:
        mine = owner_set(_predicted_owner(item), aliases)
        candidates = [
            e
            for e in remaining
            if e.get("kind", "commitment") == item.kind and actions_agree(item.action, e["action"])
        ]

        def compatible(e: dict[str, Any], mine: frozenset[str] = mine) -> bool:
            theirs = owner_set(e.get("owner"), aliases)
            return mine == theirs or bool(mine & theirs)

        ranked = [e for e in candidates if compatible(e)] or candidates
        if not ranked:
            score.fp += 1
            notes.append(f"extra: {item.kind} {item.owner}: {item.action}")
            continue
        match = ranked[0]
        remaining.remove(match)
        score.matched_total += 1
        owner_ok = mine == owner_set(match.get("owner"), aliases)
        due_ok = (item.due.isoformat() if item.due else None) == match.get("due")
        score.owner_ok += owner_ok
        score.due_ok += due_ok
        if compatible(match):
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


# --------------------------------------------------------------------------- sets and runs


def load(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{n}: not JSON ({exc.msg})") from exc
    return rows


def utterances(row: dict[str, Any]) -> list[Utterance]:
    lines = row["lines"]
    if all(isinstance(line, str) for line in lines):
        return parse_transcript_lines(lines)
    return [
        Utterance(speaker=line.get("speaker"), text=line["text"])
        if isinstance(line, dict)
        else parse_transcript_lines([line])[0]
        for line in lines
        if (line["text"] if isinstance(line, dict) else line).strip()
    ]


def evaluate(
    rows: list[dict[str, Any]], extractor: Extractor | None = None
) -> tuple[Score, dict[str, list[str]]]:
    score = Score()
    misses: dict[str, list[str]] = {}
    for row in rows:
        found = (extractor or DeterministicExtractor()).extract(
            utterances(row), meeting_date=dt.date.fromisoformat(row["date"])
        )
        if not row["expected"]:
            score.negatives += 1
            score.negatives_fired += bool(found)
        notes = score_group(found, row["expected"], score, _aliases(row))
        if notes:
            misses[row["id"]] = notes
    return score, misses


def meeting_hours(rows: list[dict[str, Any]]) -> float:
    """The set's meeting time, from its words at WORDS_PER_MINUTE (no window has timings)."""
    words = sum(len(u.text.split()) for row in rows for u in utterances(row))
    return words / WORDS_PER_MINUTE / 60


def throughput(
    rows: list[dict[str, Any]], factory: Callable[[], Extractor], seconds: float = 2.0
) -> tuple[float, float, float]:
    """(windows per second, utterances per second, CPU seconds per pass over the set), each
    window from a fresh extractor; at least one pass."""
    groups = [(utterances(r), dt.date.fromisoformat(r["date"])) for r in rows]
    windows = lines = passes = 0
    start, cpu = time.perf_counter(), time.process_time()
    while passes == 0 or time.perf_counter() - start < seconds:
        for group, date in groups:
            factory().extract(group, meeting_date=date)
            windows += 1
            lines += len(group)
        passes += 1
    elapsed = time.perf_counter() - start
    return windows / elapsed, lines / elapsed, (time.process_time() - cpu) / passes


def gate_report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How the gate does on a set: recall of gold-bearing windows, negatives and lines passed."""
    gold = [r for r in rows if r["expected"]]
    negatives = [r for r in rows if not r["expected"]]
    lines = [u for r in rows for u in utterances(r)]

    def passed(group: list[dict[str, Any]]) -> int:
        return sum(window_may_hold_commitment(utterances(r)) for r in group)

    return {
        "gold_windows": len(gold),
        "gold_windows_passed": passed(gold),
        "recall": round(passed(gold) / len(gold), 3) if gold else None,
        "negatives": len(negatives),
        "negatives_passed": passed(negatives),
        "lines": len(lines),
        "lines_passed": sum(may_hold_commitment(u.text) for u in lines),
    }


def run(
    set_name: str, path: Path, backend: str, seconds: float, every: int = 1
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    rows = load(path)[::every]
    factory = BACKENDS[backend]
    extractor = factory()
    clock_cpu = getattr(extractor, "cpu_seconds", time.process_time)
    start, started_cpu = time.perf_counter(), clock_cpu()
    fallbacks = 0
    try:
        score, misses = evaluate(rows, extractor)
    finally:
        if isinstance(extractor, SyncLlm):
            fallbacks = extractor.fallbacks
            extractor.close()
    if backend in SLOW:  # the scored pass is the one timed: no model is asked twice
        elapsed, cpu = time.perf_counter() - start, clock_cpu() - started_cpu
        lines = sum(len(utterances(r)) for r in rows)
        windows_rate, utterance_rate = len(rows) / elapsed, lines / elapsed
    else:
        windows_rate, utterance_rate, cpu = throughput(rows, factory, seconds)

    def ratio(n: int) -> float | None:
        return round(n / score.matched_total, 3) if score.matched_total else None

    return {
        "set": set_name,
        "backend": backend,
        "groups": len(rows),
        "expected": sum(len(r["expected"]) for r in rows),
        "negatives": score.negatives,
        "negatives_fired": score.negatives_fired,
        "tp": score.tp,
        "fp": score.fp,
        "fn": score.fn,
        "precision": round(score.precision, 3),
        "recall": round(score.recall, 3),
        "f1": round(score.f1, 3),
        "owner_accuracy": ratio(score.owner_ok),
        "due_accuracy": ratio(score.due_ok),
        "windows_per_sec": round(windows_rate, 1),
        "utterances_per_sec": round(utterance_rate, 1),
        "cpu_secs_per_meeting_hour": round(cpu / meeting_hours(rows), 2),
        "meeting_hours": round(meeting_hours(rows), 2),
        "gate": gate_report(rows),
        "every": every,
        "llm_failures_answered_by_rules": fallbacks,
    }, misses


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, help="one JSONL set instead of the named ones")
    parser.add_argument("--set", action="append", choices=sorted(SETS), dest="sets")
    parser.add_argument("--backend", action="append", dest="backends")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--misses", action="store_true", help="list each miss and extra")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument(
        "--every", type=int, default=1, help="score every Nth window only (a sample, said so)"
    )
    parser.add_argument(
        "--gate-report", action="store_true", help="how the gate does on each set, then stop"
    )
    args = parser.parse_args()
    if args.data:
        targets = [(args.data.stem, args.data, str(args.data))]
    else:
        targets = [(name, SETS[name][0], SETS[name][1]) for name in args.sets or list(SETS)]
    if args.gate_report:
        if not args.data and not args.sets:  # the held-out test split only when asked for
            targets = [t for t in targets if t[0] != "ami-test"]
        for _name, path, label in targets:
            report = gate_report(load(path))
            print(
                f"gate on {label}: passes {report['gold_windows_passed']} of "
                f"{report['gold_windows']} windows with gold items (recall {report['recall']}), "
                f"{report['negatives_passed']} of {report['negatives']} negative windows, "
                f"{report['lines_passed']} of {report['lines']} lines"
            )
        return
    results: list[dict[str, Any]] = []
    for backend in args.backends or [b for b in BACKENDS if b not in ON_REQUEST]:
        if backend not in BACKENDS:
            raise SystemExit(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
        try:
            probe = BACKENDS[backend]()
            if isinstance(probe, SyncLlm):
                probe.close()
        except BackendUnavailable as exc:
            print(f"backend {backend}: skipped ({exc})", file=sys.stderr)
            continue
        for name, path, label in targets:
            result, misses = run(name, path, backend, args.seconds, args.every)
            results.append(result)
            if args.json:
                continue
            sample = f" (every {args.every}th window)" if args.every > 1 else ""
            print(
                f"{backend} on {label}{sample}: {result['groups']} windows, "
                f"{result['expected']} expected items, {result['negatives']} without any"
            )
            for key in (
                "precision",
                "recall",
                "f1",
                "owner_accuracy",
                "due_accuracy",
                "windows_per_sec",
                "utterances_per_sec",
                "cpu_secs_per_meeting_hour",
            ):
                print(f"  {key:<20} {result[key]}")
            print(f"  fired on {result['negatives_fired']} of {result['negatives']} negatives")
            if backend in SLOW:
                print(
                    f"  LLM failures the rules answered: {result['llm_failures_answered_by_rules']}"
                )
            if args.misses:
                for rid, notes in misses.items():
                    for note in notes:
                        print(f"  {rid}: {note}")
    if args.json:
        print(json.dumps(results[0] if args.data and len(results) == 1 else results))


if __name__ == "__main__":
    main()
