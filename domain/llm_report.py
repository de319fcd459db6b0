"""Spoken reports worded by an LLM, checked, with the templates as fallback.

The LLM is Claude (Anthropic Messages API) or, with `provider="openai-compatible"`, any Chat
Completions server (vLLM, Ollama, OpenAI) through the `openai` SDK: the same system prompt, the
same facts and the same checks either way.

`LLMReporter.report(facts)` sends the memory facts for one question to the model as a JSON object
(`facts_payload`: tasks with owner, action, status, group and a due date already phrased for
speech, the meeting dates, the intent, person/topic and recalled snippets) and gets back a few
plain sentences to speak.

The answer is never trusted blindly. `check_report` reads it back against the facts and lists
what it cannot account for:

- *task*: a clause that talks about work (it has content words left once names, dates, filler
  and status talk are taken out) but shares too few of them with any task's action or recalled
  snippet: "Ken will migrate the database" when no task is about a database migration;
- *owner*: a capitalised name that is in no fact (not an owner, the person asked about, or a
  word of any action, snippet, topic or series), nor one of the bot's names;
- *misattributed*: a clause that names a task's owner but matches only other people's tasks
  (or tasks without an owner: the model must not guess one);
- *date*: a weekday, month or day of the month ("the 26th") that no date in the facts has.

Any problem rejects the answer, and so do an API error, a timeout, an empty or cut-off answer,
or one too long to speak: then the deterministic `render(facts, templates)` answers, and
`stats` counts it. The caller always gets something to say.

The model is asked through `domain/llm.py`, the client extraction uses too: one retry policy
(429, 529, other 5xx, timeouts and connection errors retried with exponential backoff and
jitter), here under an overall deadline (people on the call are waiting). The API key comes
from the constructor or the environment (`ANTHROPIC_API_KEY`; `OPENAI_API_KEY`, optional for a
local server), never from YAML, and is never logged or put in an exception message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from core.english import SENTENCE_END, STOP_WORDS, ordinal, verb_lemma
from core.errors import ConfigError
from core.prompts import ReportTemplates, load_yaml_model
from domain.llm import (
    FAILURES,
    BadOutput,
    LlmClient,
    Provider,
    RequestCounts,
    Sleep,
    TextAnswer,
    api_key,
    describe_failure,
)
from domain.report_text import Facts, TaskFact, render, say_due

log = logging.getLogger(__name__)

#: Intents the LLM words; any other (stop, unknown) is answered by the templates directly.
LLM_INTENTS = frozenset({"progress_report", "person_tasks", "today", "recall"})

# --------------------------------------------------------------------------- prompt file


class ReportPrompt(BaseModel):
    """`prompts/report_llm.yaml`: model settings and the system prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field("claude-sonnet-4-5", min_length=1)
    max_tokens: int = Field(400, ge=32, le=4096)
    timeout_secs: float = Field(8.0, gt=0.0, le=120.0)
    max_retries: int = Field(2, ge=0, le=10)
    deadline_secs: float = Field(15.0, gt=0.0, le=300.0)
    max_chars: int = Field(700, ge=40, le=10_000)
    system: str = Field(min_length=1)


def load_report_prompt(path: Path) -> ReportPrompt:
    """Load `prompts/report_llm.yaml`; ConfigError names the file, key path and reason."""
    return load_yaml_model(path, ReportPrompt)


# --------------------------------------------------------------------------- the request

Group = Literal["overdue", "done_since_last_time", "done_earlier", "open", "new_today", "other"]


def task_group(task: TaskFact, facts: Facts) -> Group:
    """Where a task goes in a progress report, as `report_text.render` decides it."""
    today = facts.meeting_date
    if task.status == "done":
        since = facts.previous_meeting or dt.date.min
        return "done_since_last_time" if (task.updated_on or today) > since else "done_earlier"
    if task.status != "open":
        return "other"
    if task.due is not None and task.due < today:
        return "overdue"
    if task.created_on == today:
        return "new_today"
    return "open"


def say_day(day: dt.date) -> str:
    """ "Tuesday, November 24th" """
    return f"{day.strftime('%A')}, {day.strftime('%B')} {ordinal(day.day)}"


def facts_payload(facts: Facts, templates: ReportTemplates) -> dict[str, Any]:
    """The FACTS the model sees: every task in `facts` and nothing else; dates for speech."""
    today = facts.meeting_date
    tasks = [
        {
            "owner": task.owner,
            "action": task.action,
            "status": task.status,
            "group": task_group(task, facts),
            "due": say_due(task.due, today=today, templates=templates).strip() or None,
        }
        for task in facts.tasks
    ]
    return {
        "intent": facts.intent,
        "meeting_date": say_day(today),
        "previous_meeting": say_day(facts.previous_meeting) if facts.previous_meeting else None,
        "series": facts.series,
        "person": facts.person,
        "topic": facts.topic,
        "tasks": tasks,
        "recalled": list(facts.recalled),
    }


# --------------------------------------------------------------------------- the checker


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Report talk: status, time and bookkeeping words that describe no task by themselves.
_FILLER = _wordset(
    """
    report progress update status summary news quick brief short good great nice fine
    task tasks item items action actions thing things work job jobs stuff point points
    done finish finished complete completed wrap wrapped close closed handle handled
    take taking took care own owns owned owner owe owes owed assign assigned
    promise promised commit committed agree agreed say said tell told mention mentioned
    plan planned going go goes supposed expected scheduled set due overdue late behind
    ahead track schedule open pending outstanding remaining left new today tonight tomorrow
    yesterday week weeks weekend month day days time times meeting meetings call calls
    previous earlier recent recently lately so far moment still yet back since ago
    week's today's nothing anything everything stand stands where team keep remember
    recall recalled about regarding topic series question answer ask asked look looking
    reminder note worth noting quickly briefly heads sum short know detail details help
    questions hear glad happy
    """
)

_WEEKDAYS = _wordset("monday tuesday wednesday thursday friday saturday sunday")
_MONTHS = _wordset(
    "january february march april june july august september october november december"
)  # "may" is left out: as a word it is far more often the verb

# A capitalised first word of a sentence is a name when one of these comes next.
_NAME_FOLLOWERS = _wordset(
    """
    will was is has had still needs should must can could would and or owes promised said
    agreed plans wants did does took got made sent finished completed owns hasn't
    isn't wasn't won't
    """
)

_CLAUSE_BREAK = re.compile(
    r"\s*(?:[;:,()]|\s[-\u2013\u2014]\s|[\u2013\u2014])\s*"
    r"|\s+(?:and|but|while|whereas|plus|then|also|as well as)\s+",
    re.IGNORECASE,
)
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'\u2019-]*|\d+(?:st|nd|rd|th)?")
_DAY_OF_MONTH = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)$", re.IGNORECASE)
_DOUBLED = re.compile(r"([b-df-hj-km-np-rt-y])\1$")  # planned -> plann -> plan (not ll/ss/zz)


def _bare(token: str) -> str:
    """Casefolded, possessive and stray apostrophes/hyphens removed."""
    word = token.casefold().replace("\u2019", "'")
    if word.endswith("'s"):
        word = word[:-2]
    return word.strip("'-")


def stem(token: str) -> str:
    """A crude stem, the same for both sides of a comparison: send/sent/sending -> send."""
    word = verb_lemma(_bare(token))
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "es", "s", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith("ss"):
                break
            word = word[: -len(suffix)]
            if suffix in ("ing", "ed"):
                word = _DOUBLED.sub(r"\1", word)
            break
    return word


_FILLER_STEMS = frozenset(stem(w) for w in _FILLER)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _is_number(token: str) -> bool:
    return token[0].isdigit()


def _content_stems(text: str, ignore: frozenset[str]) -> set[str]:
    """Stems of the words that say *what* is done: no function words, names, dates, filler."""
    out: set[str] = set()
    for token in _tokens(text):
        word = _bare(token)
        if (
            not word
            or _is_number(word)
            or word in STOP_WORDS
            or word in _WEEKDAYS
            or word in _MONTHS
            or word in ignore
        ):
            continue
        stemmed = stem(word)
        if stemmed in _FILLER_STEMS or word in _FILLER or stemmed in ignore:
            continue
        out.add(stemmed)
    return out


InventionKind = Literal["task", "owner", "misattributed", "date"]


@dataclass(frozen=True)
class Invention:
    """Something in the answer that the facts do not account for."""

    kind: InventionKind
    text: str  # the clause, name or date concerned
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.text!r} ({self.detail})"


@dataclass(frozen=True)
class _Item:
    """One thing the answer may talk about: a task's action, or a recalled snippet."""

    stems: frozenset[str]
    words: frozenset[str]  # casefolded words, to tell a name in the action from an owner
    owner: str | None  # casefolded; None for a snippet or an ownerless task
    is_task: bool


def _item(text: str, owner: str | None, is_task: bool, ignore: frozenset[str]) -> _Item:
    return _Item(
        stems=frozenset(_content_stems(text, ignore)),
        words=frozenset(_bare(w) for w in _tokens(text)),
        owner=owner.casefold() if owner else None,
        is_task=is_task,
    )


class InventionChecker:
    """Reads an answer back against the facts it was made from (see the module docstring)."""

    def __init__(
        self, facts: Facts, *, bot_names: Sequence[str] = ("Convene",), min_overlap: float = 0.5
    ) -> None:
        self.facts = facts
        self.min_overlap = min_overlap  # share of a clause's content words one fact must have
        owners = {t.owner.casefold() for t in facts.tasks if t.owner and t.owner.strip()}
        people = set(owners)
        if facts.person:
            people.update(_bare(w) for w in _tokens(facts.person))
        bots = {_bare(w) for name in bot_names for w in _tokens(name)}
        # Topic and series words may be said anywhere ("the Acme launch report").
        context = " ".join(x for x in (facts.topic, facts.series) if x)
        self._ignore = frozenset(people | bots | {_bare(w) for w in _tokens(context)})
        texts = [t.action for t in facts.tasks] + list(facts.recalled) + [context]
        words = {_bare(w) for text in texts for w in _tokens(text)}
        self._items = [_item(t.action, t.owner, True, self._ignore) for t in facts.tasks]
        self._items += [_item(text, None, False, self._ignore) for text in facts.recalled]
        self._names = frozenset(people | bots | words)
        self._owners = frozenset(owners)
        self._people = frozenset(people)  # owners and the person asked about
        dates = [t.due for t in facts.tasks if t.due] + [facts.meeting_date]
        if facts.previous_meeting:
            dates.append(facts.previous_meeting)
        days = {d.day for d in dates}
        days |= {int(m.group(1)) for w in words if (m := _DAY_OF_MONTH.match(w))}
        days |= {int(w) for w in words if w.isdigit() and len(w) <= 2}
        self._days = frozenset(days)
        self._weekdays = frozenset(
            {d.strftime("%A").casefold() for d in dates} | (words & _WEEKDAYS)
        )
        self._months = frozenset({d.strftime("%B").casefold() for d in dates} | (words & _MONTHS))

    def check(self, text: str) -> list[Invention]:
        """Everything in `text` the facts do not account for; empty when the answer is faithful."""
        found: list[Invention] = []
        for sentence in SENTENCE_END.split(" ".join(text.split())):
            if not sentence:
                continue
            found.extend(self._unknown_names(sentence))
            found.extend(self._unknown_dates(sentence))
            mentioned = {_bare(w) for w in _tokens(sentence)} & self._people
            for clause in _CLAUSE_BREAK.split(sentence):
                found.extend(self._check_clause(clause.strip(" .!?\"'"), mentioned))
        return found

    def _check_clause(self, clause: str, sentence_owners: set[str]) -> list[Invention]:
        words = _content_stems(clause, self._ignore)
        if not clause or not words:
            return []
        scored = [(len(words & item.stems) / len(words), item) for item in self._items]
        best = max((score for score, _ in scored), default=0.0)
        if best < self.min_overlap or best == 0.0:
            return [
                Invention(
                    "task",
                    clause,
                    f"no task or recalled snippet covers {sorted(words)}",
                )
            ]
        matched = [item for score, item in scored if score >= self.min_overlap and item.is_task]
        named = {_bare(w) for w in _tokens(clause)} & self._people
        named -= {w for item in matched for w in item.words}  # "send the deck to Dana"
        if named and matched and not any(item.owner in sentence_owners for item in matched):
            owners = sorted({item.owner or "nobody" for item in matched})
            return [
                Invention(
                    "misattributed",
                    clause,
                    f"names {sorted(named)}, but the matching task's owner is {owners}",
                )
            ]
        return []

    def _unknown_names(self, sentence: str) -> list[Invention]:
        tokens = _tokens(sentence)
        found: list[Invention] = []
        for index, token in enumerate(tokens):
            if not token[0].isupper() or token == "I":
                continue
            word = _bare(token)
            if (
                word in self._names
                or word in STOP_WORDS
                or word in _FILLER
                or word in _WEEKDAYS
                or word in _MONTHS
                or word == "may"
            ):
                continue
            if index == 0:
                # A sentence's first word is capitalised anyway: a name only when it is used
                # like one ("Ken will ...", "Ken's migration ...", "Ken finished ...").
                after = _bare(tokens[1]) if len(tokens) > 1 else ""
                possessive = token.casefold().replace("\u2019", "'").endswith("'s")
                if not (possessive or after in _NAME_FOLLOWERS or after.endswith("ed")):
                    continue
            found.append(Invention("owner", token, "a name that is in no fact"))
        return found

    def _unknown_dates(self, sentence: str) -> list[Invention]:
        found: list[Invention] = []
        for token in _tokens(sentence):
            word = _bare(token)
            match = _DAY_OF_MONTH.match(word)
            if match and int(match.group(1)) not in self._days:
                found.append(Invention("date", token, "no date in the facts falls on that day"))
            elif word in _WEEKDAYS and word not in self._weekdays:
                found.append(Invention("date", token, "no date in the facts is on that weekday"))
            elif word in _MONTHS and token[0].isupper() and word not in self._months:
                found.append(Invention("date", token, "no date in the facts is in that month"))
        return found


def check_report(
    text: str, facts: Facts, *, bot_names: Sequence[str] = ("Convene",), min_overlap: float = 0.5
) -> list[Invention]:
    """What `text` says that `facts` do not account for (tasks, owners, dates); [] if faithful."""
    return InventionChecker(facts, bot_names=bot_names, min_overlap=min_overlap).check(text)


# --------------------------------------------------------------------------- the reporter


class BadReport(BadOutput):
    """The model answered, but with nothing usable to speak."""


_MARKDOWN = re.compile(r"[*_#`>\[\]]+")
_BULLET = re.compile(r"^\s*(?:[-\u2022]|\d+[.)])\s+", re.MULTILINE)


def speakable(answer: TextAnswer, *, max_chars: int) -> str:
    """The answer's text as one line to speak, markdown stripped; BadReport when unusable."""
    text = " ".join(_MARKDOWN.sub("", _BULLET.sub("", answer.text)).split())
    if not text:
        raise BadReport(f"no text in the reply (got {answer.kinds})")
    if len(text) > max_chars:
        raise BadReport(f"reply too long to speak ({len(text)} > {max_chars} characters)")
    return text


@dataclass
class ReportStats(RequestCounts):
    """Counters, logged with every fallback.

    calls: API requests sent (retries included); retries: requests that were retries;
    answered: answers spoken as the model worded them; fallbacks: answers the templates gave
    instead (any reason); rejected_inventions: model answers rejected by the checker;
    skipped: questions the templates answered without asking (stop, unknown, no facts).
    """

    answered: int = 0
    fallbacks: int = 0
    rejected_inventions: int = 0
    skipped: int = 0


class Reporter(Protocol):
    """What `processors/report.py` needs: the words to speak for one question's facts."""

    async def report(self, facts: Facts) -> str: ...

    async def aclose(self) -> None: ...


class TemplateReporter:
    """The deterministic reporter (`report.backend: templates`), behind the same interface."""

    def __init__(self, templates: ReportTemplates) -> None:
        self.templates = templates

    async def report(self, facts: Facts) -> str:
        return render(facts, self.templates)

    async def aclose(self) -> None:
        return None


class LLMReporter:
    """Reports worded by an LLM, checked against the facts; the templates answer otherwise.

    `report` never raises for an LLM failure and never speaks an unchecked claim.
    """

    def __init__(
        self,
        *,
        prompt: ReportPrompt,
        templates: ReportTemplates,
        api_key: str | None = None,
        base_url: str | None = None,
        bot_names: Sequence[str] = ("Convene",),
        min_overlap: float = 0.5,
        backoff_base_secs: float = 0.5,
        backoff_max_secs: float = 4.0,
        retry_after_cap_secs: float = 5.0,
        sleep: Sleep = asyncio.sleep,
        provider: Provider = "anthropic",
        model: str | None = None,
    ) -> None:
        """`provider` picks the API; `model` overrides the prompt file's (None: keep it)."""
        key = _key(provider, api_key)
        if not 0.0 < min_overlap <= 1.0:
            raise ConfigError("LLMReporter: min_overlap must be in (0, 1]")
        self.prompt = prompt
        self.templates = templates
        self.bot_names = tuple(bot_names)
        self.min_overlap = min_overlap
        self.stats = ReportStats()
        self.llm = LlmClient.for_prompt(
            prompt,
            provider=provider,
            model=model,
            api_key=key,
            base_url=base_url,
            backoff=(backoff_base_secs, backoff_max_secs, retry_after_cap_secs),
            counts=self.stats,
            label="LLM report",
            logger=log,
            sleep=sleep,
        )

    @property
    def provider(self) -> Provider:
        return self.llm.provider

    @property
    def model(self) -> str:
        return self.llm.model

    def __repr__(self) -> str:
        return f"LLMReporter(provider={self.provider!r}, model={self.model!r})"

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.llm.aclose()

    async def __aenter__(self) -> LLMReporter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ----------------------------------------------------------------- public API

    def check(self, text: str, facts: Facts) -> list[Invention]:
        """What `text` claims beyond `facts` (the check every answer goes through)."""
        return check_report(text, facts, bot_names=self.bot_names, min_overlap=self.min_overlap)

    async def report(self, facts: Facts) -> str:
        """The words to speak for `facts`: the model's, once checked, else the templates'."""
        if facts.intent not in LLM_INTENTS or not (facts.tasks or facts.recalled):
            self.stats.skipped += 1
            return render(facts, self.templates)
        body = json.dumps(facts_payload(facts, self.templates), ensure_ascii=False)
        try:
            async with asyncio.timeout(self.prompt.deadline_secs):
                text = await self._ask(body)
        except TimeoutError:
            return self._fall_back(facts, f"no answer within {self.prompt.deadline_secs:g}s")
        except FAILURES as exc:
            return self._fall_back(facts, describe_failure(exc))
        except Exception as exc:  # the bot must answer whatever went wrong
            return self._fall_back(facts, f"unexpected {type(exc).__name__}")
        problems = self.check(text, facts)
        if problems:
            self.stats.rejected_inventions += 1
            log.debug("LLM report rejected: %s", "; ".join(str(p) for p in problems))
            kinds = ", ".join(sorted({p.kind for p in problems}))
            return self._fall_back(facts, f"answer not backed by the facts ({kinds})")
        self.stats.answered += 1
        return text

    # ----------------------------------------------------------------- internals

    async def _ask(self, body: str) -> str:
        """One report through the API (retried per the policy); raises the last failure."""
        answer = await self.llm.ask_text(
            system=self.prompt.system, user=body, max_tokens=self.prompt.max_tokens
        )
        return speakable(answer, max_chars=self.prompt.max_chars)

    def _fall_back(self, facts: Facts, reason: str) -> str:
        self.stats.fallbacks += 1
        log.warning("LLM report not used (%s): templates answer [%s]", reason, self.stats)
        return render(facts, self.templates)


def _key(provider: Provider, explicit: str | None) -> str:
    return api_key(provider, explicit, needed_by="LLM reports need", prompt_file="report_llm.yaml")


def build_llm_reporter(
    *,
    prompt_path: Path,
    templates: ReportTemplates,
    api_key: str | None = None,
    base_url: str | None = None,
    bot_names: Iterable[str] = ("Convene",),
    provider: Provider = "anthropic",
    model: str | None = None,
) -> LLMReporter:
    """An LLMReporter from `prompts/report_llm.yaml`; ConfigError when the file or key is bad.

    `templates` (prompts/report.yaml) phrase the due dates and answer whenever the model's
    answer is not used. `bot_names` (the agent's name and aliases) may be said without being
    in the facts; participants' names may not, so do not pass them. `provider` picks the API
    (for `openai-compatible`, `api_key` may be None: a local server); `model` None keeps the
    prompt file's `model`.
    """
    _key(provider, api_key)  # fail before reading anything else
    prompt = load_report_prompt(prompt_path)
    return LLMReporter(
        prompt=prompt,
        templates=templates,
        api_key=api_key,
        base_url=base_url,
        bot_names=tuple(bot_names),
        provider=provider,
        model=model,
    )
