"""Spoken reports from memory facts, with templates from prompts/report.yaml (no LLM)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from core.english import ordinal, past_tense, spoken_list
from core.prompts import ReportTemplates, load_yaml_model


def load_report_templates(path: Path) -> ReportTemplates:
    return load_yaml_model(path, ReportTemplates)


def say_due(due: dt.date | None, *, today: dt.date, templates: ReportTemplates) -> str:
    """ " by Wednesday the 25th" (within a month of today), else " by December 3rd"."""
    if due is None:
        return ""
    values = {
        "weekday": due.strftime("%A"),
        "ordinal": ordinal(due.day),
        "month": due.strftime("%B"),
    }
    near = abs((due - today).days) <= 27
    return (templates.due if near else templates.due_far).format(**values)


@dataclass(frozen=True)
class TaskFact:
    owner: str | None
    action: str
    due: dt.date | None
    status: str
    created_on: dt.date | None
    updated_on: dt.date | None


@dataclass(frozen=True)
class Facts:
    """What memory lookup found for one question."""

    intent: str
    meeting_date: dt.date
    series: str | None = None
    tasks: list[TaskFact] = field(default_factory=list)
    previous_meeting: dt.date | None = None
    person: str | None = None
    topic: str | None = None
    recalled: list[str] = field(default_factory=list)


def _progress(facts: Facts, t: ReportTemplates) -> str:
    p = t.progress_report
    today = facts.meeting_date
    since = facts.previous_meeting or dt.date.min

    def item(task: TaskFact, template: str) -> str:
        due = say_due(task.due, today=today, templates=t) if task.status == "open" else ""
        return template.format(
            owner=task.owner or t.someone,
            action=task.action,
            action_done=past_tense(task.action),
            due=due,
        )

    done = [x for x in facts.tasks if x.status == "done" and (x.updated_on or today) > since]
    open_ = [x for x in facts.tasks if x.status == "open"]
    overdue = sorted((x for x in open_ if x.due and x.due < today), key=lambda x: x.due or today)
    new = [x for x in open_ if x.created_on == today and x not in overdue]
    rest = sorted(
        (x for x in open_ if x not in overdue and x not in new),
        key=lambda x: (x.due is None, x.due or today),
    )
    if not facts.tasks:
        return p.nothing.format(series=facts.series or "")
    parts = [p.intro.format(series=facts.series or "")]
    if overdue:
        parts.append(
            p.overdue.format(items=spoken_list([item(x, p.overdue_item) for x in overdue]))
        )
    if done:
        parts.append(p.done.format(items=spoken_list([item(x, p.done_item) for x in done])))
    if rest:
        parts.append(p.open.format(items=spoken_list([item(x, p.open_item) for x in rest])))
    if new:
        parts.append(p.new.format(items=spoken_list([item(x, p.open_item) for x in new])))
    return " ".join(parts)


def render(facts: Facts, templates: ReportTemplates) -> str:
    """The spoken answer for `facts`. Mentions only tasks present in the facts."""
    t = templates
    today = facts.meeting_date
    if facts.intent == "progress_report":
        return _progress(facts, t)
    if facts.intent in ("person_tasks", "greeting"):
        # A caller's greeting names their own open items only, never anyone else's.
        said = t.person_tasks if facts.intent == "person_tasks" else t.caller_greeting
        person = facts.person or t.someone
        mine = [
            x
            for x in facts.tasks
            if x.status == "open" and x.owner and x.owner.lower() == person.lower()
        ]
        if not mine:
            return said.none.format(person=person)
        items = [
            said.item.format(action=x.action, due=say_due(x.due, today=today, templates=t))
            for x in mine
        ]
        return said.some.format(person=person, count=len(mine), items=spoken_list(items))
    if facts.intent == "today":
        new = [x for x in facts.tasks if x.created_on == today]
        if not new:
            return t.today.none
        items = [
            t.today.item.format(
                owner=x.owner or t.someone,
                action=x.action,
                due=say_due(x.due, today=today, templates=t),
            )
            for x in new
        ]
        return t.today.some.format(items=spoken_list(items))
    if facts.intent == "recall":
        topic = facts.topic or "that"
        if not facts.recalled:
            return t.recall.none.format(topic=topic)
        items = [t.recall.item.format(text=text.rstrip(".")) for text in facts.recalled]
        return t.recall.some.format(topic=topic, items=spoken_list(items))
    if facts.intent == "stop":
        return ""
    return t.unknown
