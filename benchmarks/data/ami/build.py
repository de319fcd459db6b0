"""Build the AMI extraction set: windows of real meeting talk with gold commitments.

    uv run python benchmarks/data/ami/build.py [--source PATH] [--out DIR]

PATH is a checkout of github.com/ELITR/minuting-experimentation (its `data/raw_ami/` holds the
AMI Meeting Corpus manual annotations v1.6.2, CC BY 4.0), or a bare git repository of it (read
with `git show`). Without --source the repository is fetched from GitHub (a partial, sparse
clone that never downloads the held-out meetings) into ~/.cache/convene/ami.

HELD-OUT series are filtered out by file NAME before any file is opened: `_read` refuses them
(tests/test_ami_set.py proves it). See README.md next to this file for how windows and gold are
made.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import permutations
from pathlib import Path

HELD_OUT: frozenset[str] = frozenset(
    {
        "ES2002",
        "ES2006",
        "ES2008",
        "ES2009",
        "ES2011",
        "ES2014",
        "ES2015",
        "ES2016",
        "IS1005",
        "IS1009",
    }
)
REPO_URL = "https://github.com/ELITR/minuting-experimentation.git"
AMI_DIR = "data/raw_ami"
NITE = "{http://nite.sourceforge.net/}"
ROLES = ("Project Manager", "Marketing Expert", "Industrial Designer", "User Interface Designer")
_SERIES = re.compile(r"(?<![A-Z])(ES|IS|TS|IB|IN|EN)(\d{4})")
_SCENARIO = re.compile(r"^(ES|IS|TS)\d{4}[a-d]$")
MAX_LINES = 6
NOMINAL_DATE = "2005-06-06"  # AMI does not publish meeting dates with these annotations


def series_of(name: str) -> str | None:
    """The meeting series a file NAME belongs to ("ES2003" for ".../ES2003b.A.words.xml")."""
    match = _SERIES.search(os.path.basename(name))
    return match.group(0) if match else None


def allowed(name: str) -> bool:
    """False for any file of a held-out series, decided from the name alone."""
    return series_of(name) not in HELD_OUT


# --------------------------------------------------------------------------- sources


class Source:
    """Lists file names under data/raw_ami and reads files, refusing held-out ones."""

    def __init__(self, names: Iterable[str]) -> None:
        # Held-out names are dropped here, before anything is opened.
        self.names = sorted(n for n in names if allowed(n))
        self.opened: list[str] = []

    def read(self, name: str) -> bytes:
        if not allowed(name):
            raise PermissionError(f"held-out AMI file must never be opened: {name}")
        self.opened.append(name)
        return self._read(name)

    def _read(self, name: str) -> bytes:
        raise NotImplementedError


class DirSource(Source):
    def __init__(self, root: Path) -> None:
        self.root = root / AMI_DIR if (root / AMI_DIR).is_dir() else root
        names = [
            str(p.relative_to(self.root)).replace(os.sep, "/")
            for p in self.root.rglob("*.xml")
            if allowed(p.name)
        ]
        super().__init__(names)

    def _read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()


class GitSource(Source):
    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir
        out = subprocess.run(
            ["git", "-C", str(git_dir), "ls-tree", "-r", "--name-only", "HEAD", "--", AMI_DIR],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        prefix = AMI_DIR + "/"
        super().__init__(n[len(prefix) :] for n in out.splitlines() if n.startswith(prefix))

    def _read(self, name: str) -> bytes:
        return subprocess.run(
            ["git", "-C", str(self.git_dir), "show", f"HEAD:{AMI_DIR}/{name}"],
            check=True,
            capture_output=True,
        ).stdout


def clone_from_github(cache: Path) -> Path:
    """A blobless, sparse clone: only allowed files of data/raw_ami are ever downloaded."""
    if not (cache / ".git").is_dir():
        cache.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "clone", "--depth", "1", "--filter=blob:none", "--no-checkout"]
            + [REPO_URL, str(cache)],
            check=True,
        )
    patterns = [f"/{AMI_DIR}/"] + [f"!/{AMI_DIR}/**/{s}*" for s in sorted(HELD_OUT)]
    subprocess.run(["git", "-C", str(cache), "sparse-checkout", "init", "--no-cone"], check=True)
    subprocess.run(
        ["git", "-C", str(cache), "sparse-checkout", "set", "--no-cone", *patterns], check=True
    )
    subprocess.run(["git", "-C", str(cache), "checkout"], check=True)
    return cache


def open_source(path: Path | None) -> Source:
    if path is None:
        path = clone_from_github(Path.home() / ".cache" / "convene" / "ami")
    if (path / "HEAD").is_file() and (path / "objects").is_dir():
        return GitSource(path)
    return DirSource(path)


# --------------------------------------------------------------------------- NXT parsing


@dataclass
class DialogueAct:
    id: str
    channel: str
    start: float
    text: str
    da_type: str | None
    words: int


@dataclass
class SummarySentence:
    id: str
    section: str  # abstract | actions | decisions | problems
    text: str


@dataclass
class Meeting:
    name: str
    acts: list[DialogueAct]
    sentences: dict[str, SummarySentence]
    links: dict[str, set[str]]  # dialogue act id -> summary sentence ids
    roles: dict[str, str] = field(default_factory=dict)  # channel -> role
    names: dict[str, str] = field(default_factory=dict)  # channel -> first name


_HREF = re.compile(r"#id\(([^)]+)\)(?:\.\.id\(([^)]+)\))?")
_DA_TYPES = {
    "ami_da_1": "bck",
    "ami_da_2": "stl",
    "ami_da_3": "fra",
    "ami_da_4": "inf",
    "ami_da_5": "el.inf",
    "ami_da_6": "sug",
    "ami_da_7": "off",
    "ami_da_8": "el.sug",
    "ami_da_9": "ass",
    "ami_da_11": "el.ass",
    "ami_da_12": "und",
    "ami_da_13": "el.und",
    "ami_da_14": "be.pos",
    "ami_da_15": "be.neg",
    "ami_da_16": "oth",
}


def _words(data: bytes) -> tuple[list[tuple[str, str, float | None, bool]], dict[str, int]]:
    """(id, text, start, is_punctuation) for each <w>, and id -> index over all elements."""
    root = ET.fromstring(data)
    items: list[tuple[str, str, float | None, bool]] = []
    index: dict[str, int] = {}
    for el in root:
        wid = el.get(NITE + "id", "")
        index[wid] = len(items)
        start = el.get("starttime")
        if el.tag == "w":
            items.append(
                (wid, el.text or "", float(start) if start else None, el.get("punc") == "true")
            )
        else:
            items.append((wid, "", float(start) if start else None, False))
    return items, index


def _join(tokens: list[tuple[str, bool]]) -> str:
    out = ""
    for text, punc in tokens:
        if not text:
            continue
        out += text if (punc or not out) else " " + text
    return re.sub(r"\s+", " ", out).strip()


def load_meeting(source: Source, name: str) -> Meeting | None:
    files = set(source.names)
    abstract = f"abstractive/{name}.abssumm.xml"
    summlink = f"extractive/{name}.summlink.xml"
    if abstract not in files or summlink not in files:
        return None
    sentences: dict[str, SummarySentence] = {}
    for section in ET.fromstring(source.read(abstract)):
        tag = section.tag.replace(NITE, "")
        for sent in section.iter("sentence"):
            sid = sent.get(NITE + "id", "")
            sentences[sid] = SummarySentence(sid, tag, " ".join((sent.text or "").split()))
    links: dict[str, set[str]] = defaultdict(set)
    for link in ET.fromstring(source.read(summlink)):
        ext = abs_ = None
        for ptr in link:
            match = _HREF.search(ptr.get("href", ""))
            if match and ptr.get("role") == "extractive":
                ext = match.group(1)
            elif match and ptr.get("role") == "abstractive":
                abs_ = match.group(1)
        if ext and abs_:
            links[ext].add(abs_)
    acts: list[DialogueAct] = []
    for channel in "ABCDE":
        da_file = f"dialogueActs/{name}.{channel}.dialog-act.xml"
        words_file = f"words/{name}.{channel}.words.xml"
        if da_file not in files or words_file not in files:
            continue
        items, index = _words(source.read(words_file))
        for dact in ET.fromstring(source.read(da_file)):
            did = dact.get(NITE + "id", "")
            da_type = None
            span: tuple[int, int] | None = None
            for ptr in dact:
                href = ptr.get("href", "")
                if ptr.tag == NITE + "pointer" and ptr.get("role") == "da-aspect":
                    match = _HREF.search(href)
                    da_type = _DA_TYPES.get(match.group(1)) if match else None
                elif ptr.tag == NITE + "child":
                    match = _HREF.search(href)
                    if match and match.group(1) in index:
                        first = index[match.group(1)]
                        last = index.get(match.group(2) or match.group(1), first)
                        span = (first, last)
            if span is None:
                continue
            chunk = items[span[0] : span[1] + 1]
            starts = [s for _, _, s, _ in chunk if s is not None]
            text = _join([(t, p) for _, t, _, p in chunk])
            if not text or not starts:
                continue
            n_words = sum(1 for _, t, _, p in chunk if t and not p)
            acts.append(DialogueAct(did, channel, min(starts), text, da_type, n_words))
    acts.sort(key=lambda a: (a.start, a.channel))
    return Meeting(name, acts, sentences, dict(links))


def meeting_names(source: Source) -> list[str]:
    names = set()
    for n in source.names:
        if n.startswith("abstractive/") and n.endswith(".abssumm.xml"):
            names.add(n.split("/")[-1].removesuffix(".abssumm.xml"))
    return sorted(m for m in names if _SCENARIO.match(m) and allowed(m))


# --------------------------------------------------------------------------- roles and names

_ROLE_WORDS: tuple[tuple[str, str], ...] = (
    (r"project\s+manager|\bpm\b|project\s+leader|team\s+leader", "Project Manager"),
    (
        r"marketing(?:\s+expert|\s+executive|\s+person|\s+manager)?|\bme\b(?=\s+(?:will|is|and))",
        "Marketing Expert",
    ),
    (r"industrial\s+designer|industrial\s+design(?:er)?s?|\bid\b", "Industrial Designer"),
    (
        r"user\s+interface\s+designer|interface\s+designer|user\s+interface|ui\s+designer|\buid?\b",
        "User Interface Designer",
    ),
)
_GROUP = re.compile(
    r"^(?:the\s+)?(?:whole\s+)?(?:team|group|members|participants|everyone|everybody|all|"
    r"all\s+(?:team\s+)?members|all\s+participants|team\s+members|each\s+(?:team\s+)?member|"
    r"each\s+participant|the\s+others|they|designers)\b",
    re.I,
)
_INTRO_ROLE = re.compile(
    r"\b(?:i'm|i\s+am|my\s+role\s+is|as)\s+(?:the|a|an|uh|um|your|\s)*"
    r"(project\s+manager|marketing|industrial\s+designer|(?:us\s+)?user\s+interface|interface\s+designer)",
    re.I,
)
_INTRO_NAME = re.compile(
    r"(?:^|[,.]\s*|\b(?:hi|hello|and|so|okay|um|uh)\s+)(?:i'm|i\s+am|my\s+name\s+is|my\s+name's)"
    r"\s+(?:uh\s+|um\s+)?([A-Z][a-z]{2,})\b"
)
_NOT_NAMES = frozenset(
    [
        "The",
        "Just",
        "Not",
        "Sure",
        "Gonna",
        "Going",
        "Really",
        "Sorry",
        "Afraid",
        "Here",
        "Also",
        "Still",
        "Quite",
        "Very",
        "Actually",
        "Project",
        "Marketing",
        "Industrial",
        "User",
        "Interface",
        "Marketing",
        "Happy",
        "Glad",
        "Fine",
        "Okay",
        "Good",
        "Ready",
    ]
)


def roles_in(text: str) -> list[str]:
    """The roles a phrase names, in order of mention."""
    found: list[tuple[int, str]] = []
    for pattern, role in _ROLE_WORDS:
        match = re.search(pattern, text, re.I)
        if match:
            found.append((match.start(), role))
    return [role for _, role in sorted(found)]


def role_votes(meeting: Meeting) -> dict[str, Counter[str]]:
    """Channel -> role votes: self-introductions ("I'm the Project Manager", 5 each), and
    abstract sentences naming one role as their subject ("The Project Manager presented ...")
    linked to that channel's dialogue acts (1 each)."""
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for act in meeting.acts:
        match = _INTRO_ROLE.search(act.text)
        if match:
            found = roles_in(match.group(1))
            if found:
                votes[act.channel][found[0]] += 5
        for sid in meeting.links.get(act.id, ()):
            sent = meeting.sentences.get(sid)
            if sent is None or sent.section != "abstract":
                continue
            found = roles_in(_SUBJECT_END.split(sent.text, maxsplit=1)[0])
            if len(found) == 1:
                votes[act.channel][found[0]] += 1
    return votes


_SUBJECT_END = re.compile(
    r"\b(?:presented|discussed|introduced|talked|went|gave|said|explained|showed|opened|"
    r"reviewed|suggested|proposed|informed|told|stated|then|also|brought)\b"
)


def infer_roles(meeting: Meeting, series: list[Meeting]) -> dict[str, str]:
    """Channel -> role for one meeting: the best one-to-one assignment of the four roles to the
    channels by the meeting's own votes (double weight) plus its series' votes. Participants
    mostly keep their channel through a series, which helps meetings with little evidence of
    their own; where a meeting's own evidence is strong it decides (channels do move)."""
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for other in series:
        for channel, counter in role_votes(other).items():
            votes[channel].update(counter)
    for channel, counter in role_votes(meeting).items():
        votes[channel].update(counter)
    ordered = sorted({a.channel for a in meeting.acts})
    if len(ordered) > len(ROLES):
        return {}
    best: tuple[int, dict[str, str]] = (-1, {})
    for perm in permutations(ROLES, len(ordered)):
        mapping = dict(zip(ordered, perm, strict=True))
        total = sum(votes[c][r] for c, r in mapping.items())
        if total > best[0]:
            best = (total, mapping)
    return best[1]


def intro_names(meeting: Meeting, roles: dict[str, str]) -> dict[str, str]:
    """Role -> first name, from "I'm Mandy", "my name is ..." early in the meeting."""
    names: dict[str, str] = {}
    cutoff = meeting.acts[len(meeting.acts) // 3].start if meeting.acts else 0.0
    for act in meeting.acts:
        if act.start > cutoff:
            break
        match = _INTRO_NAME.search(act.text)
        if match and match.group(1) not in _NOT_NAMES and act.channel in roles:
            names.setdefault(roles[act.channel], match.group(1))
    return names


# --------------------------------------------------------------------------- gold from <actions>

_MODAL = re.compile(
    r"^(?P<subject>.*?)\s+(?:will|would|shall|should|must|(?:are|is|were|was)\s+(?:going\s+)?to|"
    r"(?:need|needs|have|has)\s+to|are\s+supposed\s+to|is\s+supposed\s+to)\s+(?P<action>.+)$",
    re.I,
)
_DUE_TEXT = re.compile(
    r"\s*,?\s*\b(?:for|before|by|until|in|at)\s+(?:the\s+)?(?:next|following|upcoming|"
    r"conceptual|detailed|functional|final)\s+(?:design\s+)?meeting\b",
    re.I,
)


@dataclass
class Gold:
    sentence: SummarySentence
    roles: list[str]
    action: str
    due_text: str | None


def parse_action(sentence: SummarySentence) -> Gold | None:
    """ "The Marketing Expert will research ... for the next meeting." -> owner roles, action,
    due text. None when the owner is not a role or the group (a name, "she", "*NA*")."""
    text = sentence.text.strip().rstrip(".").strip()
    match = _MODAL.match(text)
    if not match:
        return None
    subject, action = match["subject"], match["action"]
    roles = roles_in(subject)
    if not roles and _GROUP.match(subject.strip()):
        roles = list(ROLES)
    if not roles or len(subject.split()) > 10:
        return None
    due = _DUE_TEXT.search(action)
    due_text = None
    if due:
        due_text = " ".join(due.group(0).replace(",", " ").split())
        action = (action[: due.start()] + action[due.end() :]).strip(" ,")
    return Gold(sentence, roles, " ".join(action.split()), due_text)


# --------------------------------------------------------------------------- windows

_MINOR = {"bck", "stl"}
_CUE = re.compile(
    r"\b(?:will|'ll|gonna|going\s+to|should|shall|need\s+to|needs\s+to|have\s+to|has\s+to|"
    r"let's|we\s+could|you\s+could|next\s+meeting|agenda|minutes|plan|decided?)\b",
    re.I,
)
_AGENDA = re.compile(
    r"\b(?:agenda|minutes|presentations?|first\s+(?:of\s+all|we|i)|then\s+we(?:'ll)?|"
    r"after\s+that|meeting\s+is\s+about|purpose)\b",
    re.I,
)
_PREDICTION = re.compile(
    r"\b(?:it|that|this|they|people|users?|the\s+\w+)\s+(?:will|'ll|would|(?:is|are)\s+gonna|"
    r"(?:is|are)\s+going\s+to)\b|\b(?:it'll|that'll|it'd|that'd|they'll)\b",
    re.I,
)
# Talk that may hold a commitment the summary left out: not used as a negative (except agendas).
_MAYBE_COMMITMENT = re.compile(
    r"\b(?:i'll|i\s+will|i'm\s+gonna|i'm\s+going\s+to|i\s+can|i\s+could|let\s+me|you'll|you\s+will|"
    r"you're\s+gonna|you're\s+going\s+to|can\s+you|could\s+you|would\s+you|i'd\s+like\s+you|"
    r"(?:he|she)\s+will|(?:he|she)'ll|send|e-?mail|mail)\b",
    re.I,
)
_PROPOSAL = re.compile(
    r"\b(?:let's|we\s+could|we\s+should|maybe\s+we|how\s+about|why\s+don't)\b", re.I
)


def _label(role: str, names: dict[str, str]) -> str:
    return names.get(role, role)


def _lines(
    meeting: Meeting, indices: list[int], keep: set[int], speakers: dict[str, str]
) -> list[dict[str, str]]:
    """Consecutive dialogue acts of one speaker make one line; others' backchannels ("mm-hmm")
    that interrupt are dropped unless kept."""
    lines: list[dict[str, str]] = []
    for i in indices:
        act = meeting.acts[i]
        if i not in keep and act.da_type in _MINOR and act.words <= 2:
            continue
        speaker = speakers.get(act.channel, act.channel)
        if lines and lines[-1]["speaker"] == speaker:
            lines[-1]["text"] += " " + act.text
        else:
            lines.append({"speaker": speaker, "text": act.text})
    return lines


def _n_lines(meeting: Meeting, lo: int, hi: int, keep: set[int]) -> int:
    return len(_lines(meeting, list(range(lo, hi + 1)), keep, {}))


def _clusters(indices: list[int], gap: int = 8) -> list[list[int]]:
    out: list[list[int]] = []
    for i in sorted(indices):
        if out and i - out[-1][-1] <= gap:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def _span(meeting: Meeting, cluster: list[int], taken: list[tuple[int, int]]) -> tuple[int, int]:
    """The window around one cluster of linked acts: at most MAX_LINES lines, the linked acts
    first, then context before and after (an act or two each side), never into another window."""
    keep = set(cluster)
    lo, hi = cluster[0], cluster[-1]
    while _n_lines(meeting, lo, hi, keep) > MAX_LINES:
        # Too long: drop the end that holds fewer linked acts.
        inner = [i for i in cluster if lo <= i <= hi]
        if len(inner) <= 1:
            break
        hi = max(i for i in inner if i < hi) if inner[0] == lo else hi
        lo = min(i for i in inner if i > lo) if _n_lines(meeting, lo, hi, keep) > MAX_LINES else lo

    def free(i: int) -> bool:
        return 0 <= i < len(meeting.acts) and not any(a <= i <= b for a, b in taken)

    for _ in range(3):
        for step in (-1, 1):
            j = lo - 1 if step < 0 else hi + 1
            if free(j) and _n_lines(meeting, min(lo, j), max(hi, j), keep) <= MAX_LINES:
                lo, hi = min(lo, j), max(hi, j)
    return lo, hi


@dataclass
class Window:
    meeting: str
    lo: int
    hi: int
    keep: set[int]
    gold: list[Gold]
    negative: str | None = None


def meeting_windows(meeting: Meeting, negatives_per_meeting: int) -> list[Window]:
    index = {a.id: i for i, a in enumerate(meeting.acts)}
    golds = [
        g
        for s in meeting.sentences.values()
        if s.section == "actions"
        for g in [parse_action(s)]
        if g is not None
    ]
    linked: dict[str, list[int]] = defaultdict(list)
    for act_id, sids in meeting.links.items():
        for sid in sids:
            if act_id in index:
                linked[sid].append(index[act_id])
    action_acts = {
        i
        for sid, idx in linked.items()
        if meeting.sentences.get(sid, SummarySentence("", "", "")).section == "actions"
        for i in idx
    }
    windows: list[Window] = []
    taken: list[tuple[int, int]] = []
    # Positive windows: one per cluster of an action's linked acts (the biggest, latest first).
    for gold in golds:
        idx = linked.get(gold.sentence.id, [])
        strong = [i for i in idx if meeting.acts[i].words >= 4]
        if not strong:
            continue
        cluster = max(_clusters(strong), key=lambda c: (len(c), c[-1]))
        if any(a <= i <= b for a, b in taken for i in cluster):
            continue  # already inside a window; gold is assigned below
        lo, hi = _span(meeting, cluster, taken)
        taken.append((lo, hi))
        windows.append(Window(meeting.name, lo, hi, set(cluster), []))
    for window in windows:
        for gold in golds:
            inside = [
                i
                for i in linked.get(gold.sentence.id, [])
                if window.lo <= i <= window.hi and meeting.acts[i].words >= 4
            ]
            if inside:
                window.gold.append(gold)
                window.keep |= set(inside)
    # Hard negatives: future / modal talk linked to no action, far from any action evidence.
    by_kind: dict[str, list[int]] = defaultdict(list)
    for i, act in enumerate(meeting.acts):
        if act.words < 6 or not _CUE.search(act.text) or i in action_acts:
            continue
        if any(abs(i - j) <= 10 for j in action_acts) or any(a - 3 <= i <= b + 3 for a, b in taken):
            continue
        sections = {
            meeting.sentences[s].section
            for s in meeting.links.get(act.id, ())
            if s in meeting.sentences
        }
        if "decisions" in sections:
            kind = "decision"
        elif _AGENDA.search(act.text) and i < len(meeting.acts) // 4:
            kind = "agenda"
        elif act.da_type in {"sug", "el.sug"} or _PROPOSAL.search(act.text):
            kind = "proposal"
        elif _PREDICTION.search(act.text):
            kind = "prediction"
        else:
            kind = "plan"
        lo, hi = max(0, i - 3), min(len(meeting.acts) - 1, i + 3)
        nearby = " ".join(a.text for a in meeting.acts[lo : hi + 1])
        if kind != "agenda" and _MAYBE_COMMITMENT.search(nearby):
            continue
        by_kind[kind].append(i)
    for kind in by_kind:
        by_kind[kind].sort(key=lambda i: hashlib.sha1(meeting.acts[i].id.encode()).hexdigest())
    chosen = 0
    order = ["agenda", "decision", "proposal", "prediction", "plan"]
    while chosen < negatives_per_meeting and any(by_kind.values()):
        for kind in order:
            if chosen >= negatives_per_meeting or not by_kind.get(kind):
                continue
            i = by_kind[kind].pop(0)
            if any(a - 3 <= i <= b + 3 for a, b in taken):
                continue
            lo, hi = _span(meeting, [i], taken)
            taken.append((lo, hi))
            windows.append(Window(meeting.name, lo, hi, {i}, [], negative=kind))
            chosen += 1
    return windows


# --------------------------------------------------------------------------- records and split


def split_of(series: str, all_series: list[str]) -> str:
    """Deterministic split by series: within each scenario family (ES, IS, TS), series sorted by
    SHA-1 of their name alternate dev, test, dev, test, ..."""
    family = sorted(
        (s for s in all_series if s[:2] == series[:2]),
        key=lambda s: hashlib.sha1(s.encode()).hexdigest(),
    )
    return "test" if family.index(series) % 2 else "dev"


def record(
    meeting: Meeting, window: Window, roles: dict[str, str], names: dict[str, str], n: int
) -> dict[str, object]:
    speakers = {c: _label(r, names) for c, r in roles.items()}
    lines = _lines(meeting, list(range(window.lo, window.hi + 1)), window.keep, speakers)
    expected = []
    for gold in window.gold:
        owners = [_label(r, names) for r in gold.roles]
        expected.append(
            {
                "owner": owners[0] if len(owners) == 1 else owners,
                "owner_role": gold.roles[0] if len(gold.roles) == 1 else gold.roles,
                "action": gold.action,
                "due": None,
                "due_text": gold.due_text,
                "kind": "commitment",
                "summary": gold.sentence.text,
            }
        )
    return {
        "id": f"ami-{meeting.name}-{n:02d}",
        "meeting": meeting.name,
        "series": meeting.name[:6],
        "date": NOMINAL_DATE,
        "lines": lines,
        "participants": [
            {"speaker": speakers[c], "role": roles[c], "name": names.get(roles[c])}
            for c in sorted(roles)
        ],
        "expected": expected,
        "negative": window.negative,
        "acts": [meeting.acts[window.lo].id, meeting.acts[window.hi].id],
    }


def build(source: Source, negatives_per_meeting: int = 2) -> dict[str, list[dict[str, object]]]:
    meetings = [m for name in meeting_names(source) for m in [load_meeting(source, name)] if m]
    series: dict[str, list[Meeting]] = defaultdict(list)
    for meeting in meetings:
        series[meeting.name[:6]].append(meeting)
    all_series = sorted(series)
    out: dict[str, list[dict[str, object]]] = {"dev": [], "test": []}
    for name in all_series:
        group = series[name]
        roles_by_meeting = {m.name: infer_roles(m, group) for m in group}
        names: dict[str, str] = {}
        for meeting in group:
            for role, first in intro_names(meeting, roles_by_meeting[meeting.name]).items():
                names.setdefault(role, first)
        for meeting in group:
            windows = sorted(meeting_windows(meeting, negatives_per_meeting), key=lambda w: w.lo)
            for n, window in enumerate(windows, start=1):
                if not window.gold and window.negative is None:
                    continue
                rec = record(meeting, window, roles_by_meeting[meeting.name], names, n)
                if rec["lines"]:
                    out[split_of(name, all_series)].append(rec)
    assert all(allowed(p) for p in source.opened), "a held-out file was opened"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--source", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--negatives-per-meeting", type=int, default=2)
    args = parser.parse_args()
    source = open_source(args.source)
    splits = build(source, args.negatives_per_meeting)
    args.out.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        path = args.out / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
        positives = sum(1 for r in rows if r["expected"])
        items = sum(len(r["expected"]) for r in rows if isinstance(r["expected"], list))
        series = sorted({str(r["series"]) for r in rows})
        print(
            f"{path}: {len(rows)} windows ({positives} with {items} commitments, "
            f"{len(rows) - positives} hard negatives), series {' '.join(series)}"
        )


if __name__ == "__main__":
    main()
