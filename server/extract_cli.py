"""`convene extract`: transcripts in, commitments out (single transcript or a JSONL batch).

The extractor is the one prompts/pipeline.yaml names (`extraction.backend`): by default the
local model (`local-llm`: llama.cpp's server started for the run, stopped after it), the rules
answering any window it fails on; `deterministic`: the rules only; `llm`/`anthropic`: the
configured cloud or remote provider (its keys from the environment).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.prompts import load_prompts
from core.settings import Settings, reveal
from domain.extraction import Commitment, DeterministicExtractor, Utterance, parse_transcript_lines
from domain.llm import OPENAI_NO_KEY
from domain.llm_extraction import LLMExtractor, build_llm_extractor, warm_up_server
from domain.local_llm import LocalLlmServer

log = logging.getLogger(__name__)


class CliExtractor:
    """One extractor for the run: the rules, or an LLM (the rules as its fallback)."""

    def __init__(self, rules: DeterministicExtractor, llm: LLMExtractor | None = None) -> None:
        self.rules = rules
        self.llm = llm

    @property
    def fallbacks(self) -> int:
        """Windows the rules answered because the LLM failed on them."""
        return self.llm.stats.fallbacks if self.llm is not None else 0

    async def extract(
        self,
        utterances: list[Utterance],
        *,
        meeting_date: dt.date,
        next_meeting: dt.date | None = None,
    ) -> list[Commitment]:
        if self.llm is None:
            return self.rules.extract(
                utterances, meeting_date=meeting_date, next_meeting=next_meeting
            )
        return await self.llm.extract(
            utterances, meeting_date=meeting_date, next_meeting=next_meeting
        )


@asynccontextmanager
async def open_extractor(settings: Settings) -> AsyncIterator[CliExtractor]:
    """The extractor prompts/pipeline.yaml names; a local model's server lives as long as it."""
    prompts = load_prompts(settings.convene_prompts_dir)
    knobs = prompts.pipeline
    agent = prompts.agent
    names = tuple(n.lower() for n in (agent.name, *agent.aliases))
    rules = DeterministicExtractor(window=knobs.extraction.window, bot_names=names)
    backend = knobs.extraction.backend
    provider = knobs.llm_for(backend)
    if backend != "local-llm" and provider is None:
        yield CliExtractor(rules)
        return
    server: LocalLlmServer | None = None
    with tempfile.TemporaryDirectory(prefix="convene-extract-") as spool_dir:
        try:
            if backend == "local-llm":
                local = knobs.local_llm
                server = LocalLlmServer(
                    settings.convene_home / "local-llm",
                    model=local.model,
                    threads=local.threads,
                    context_tokens=local.context_tokens,
                )
                await asyncio.to_thread(server.start)
                log.info("extraction by the local model %s at %s", server.alias, server.base_url)
                await warm_up_server(
                    prompt_path=settings.convene_prompts_dir / "extraction.yaml",
                    spool_path=Path(spool_dir) / "llm-spool.sqlite3",
                    base_url=server.base_url,
                    model=server.alias,
                    temperature=local.temperature,
                )
                llm = build_llm_extractor(
                    prompt_path=settings.convene_prompts_dir / "extraction.yaml",
                    spool_path=Path(spool_dir) / "llm-spool.sqlite3",
                    fallback=rules,
                    api_key=OPENAI_NO_KEY,
                    base_url=server.base_url,
                    provider="openai-compatible",
                    model=server.alias,
                    timeout_secs=local.timeout_secs,
                    temperature=local.temperature,
                    gate=knobs.extraction.gate,
                    rules_too=knobs.extraction.rules_too,
                )
            else:
                assert provider is not None
                conf = settings.llm
                secret, base_url = (
                    (conf.anthropic_api_key, conf.anthropic_base_url)
                    if provider == "anthropic"
                    else (conf.openai_api_key, conf.openai_base_url)
                )
                llm = build_llm_extractor(
                    prompt_path=settings.convene_prompts_dir / "extraction.yaml",
                    spool_path=Path(spool_dir) / "llm-spool.sqlite3",
                    fallback=rules,
                    api_key=reveal(secret),
                    base_url=base_url,
                    provider=provider,
                    model=knobs.llm.model,
                    gate=knobs.extraction.gate,
                    rules_too=knobs.extraction.rules_too,
                )
            async with llm:
                yield CliExtractor(rules, llm)
        finally:
            if server is not None:
                await asyncio.to_thread(server.stop)


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


async def extract_lines(
    lines: Iterable[str],
    *,
    meeting_date: dt.date,
    extractor: CliExtractor,
    next_meeting: dt.date | None = None,
) -> list[dict[str, Any]]:
    utterances = parse_transcript_lines(lines)
    found = await extractor.extract(
        utterances, meeting_date=meeting_date, next_meeting=next_meeting
    )
    return [commitment_json(c) for c in found]


@dataclass(frozen=True)
class BatchResult:
    line_no: int
    output: dict[str, Any]
    error: str | None = None


async def _batch_item(line_no: int, raw: str, extractor: CliExtractor) -> BatchResult:
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
    found = await extract_lines(
        lines, meeting_date=meeting_date, extractor=extractor, next_meeting=next_meeting
    )
    return BatchResult(line_no, {"id": item_id, "commitments": found})


async def run_batch(
    raw_lines: Iterable[str], extractor: CliExtractor
) -> AsyncIterator[BatchResult]:
    """One result per non-blank input line, in order; a bad line never stops the others."""
    for line_no, raw in enumerate(raw_lines, start=1):
        if raw.strip():
            yield await _batch_item(line_no, raw, extractor)
