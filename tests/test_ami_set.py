"""The AMI extraction set (benchmarks/data/ami): the committed splits are well-formed and free of
the held-out series, and the build script never opens a held-out file. No network."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

AMI = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "ami"
HELD_OUT = {
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
NEGATIVE_KINDS = {"agenda", "decision", "proposal", "prediction", "plan"}


def _build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ami_build", AMI / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ami_build"] = module
    spec.loader.exec_module(module)
    return module


def _rows(split: str) -> list[dict[str, Any]]:
    text = (AMI / f"{split}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_splits_are_well_formed() -> None:
    dev, test = _rows("dev"), _rows("test")
    assert len(dev) + len(test) >= 150
    ids = [r["id"] for r in dev + test]
    assert len(ids) == len(set(ids))
    for row in dev + test:
        dt.date.fromisoformat(row["date"])
        assert row["meeting"].startswith(row["series"]) and row["id"].startswith("ami-")
        assert 1 <= len(row["lines"]) <= 6, row["id"]
        for line in row["lines"]:
            assert set(line) == {"speaker", "text"}
            assert line["speaker"].strip() and line["text"].strip()
        speakers = {p["speaker"] for p in row["participants"]}
        assert {line["speaker"] for line in row["lines"]} <= speakers
        if row["expected"]:
            assert row["negative"] is None
        else:
            assert row["negative"] in NEGATIVE_KINDS, row["id"]
        for item in row["expected"]:
            owners = item["owner"] if isinstance(item["owner"], list) else [item["owner"]]
            assert owners and set(owners) <= speakers, row["id"]
            assert item["action"].strip() and item["kind"] == "commitment"
            assert item["due"] is None or dt.date.fromisoformat(item["due"])
    assert sum(bool(r["expected"]) for r in dev) and sum(bool(r["expected"]) for r in test)


def test_split_by_series_and_no_held_out_series() -> None:
    dev = {r["series"] for r in _rows("dev")}
    test = {r["series"] for r in _rows("test")}
    assert dev and test and not dev & test
    assert not (dev | test) & HELD_OUT
    for row in _rows("dev") + _rows("test"):
        assert not any(s in json.dumps(row) for s in HELD_OUT), row["id"]


def _xml(body: str) -> str:
    return (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n'
        f'<nite:root xmlns:nite="http://nite.sourceforge.net/">{body}</nite:root>'
    )


def test_build_never_opens_a_held_out_file(tmp_path: Path) -> None:
    build = _build()
    assert build.HELD_OUT == HELD_OUT
    root = tmp_path / "data" / "raw_ami"
    for folder in ("abstractive", "extractive", "words", "dialogueActs"):
        (root / folder).mkdir(parents=True)
    # Every held-out series gets files that would break the parser if they were ever opened.
    for series in HELD_OUT:
        for name in (
            f"abstractive/{series}a.abssumm.xml",
            f"extractive/{series}a.summlink.xml",
            f"words/{series}a.A.words.xml",
            f"dialogueActs/{series}a.A.dialog-act.xml",
        ):
            (root / name).write_text("not xml <", encoding="utf-8")
    # One allowed meeting: the Project Manager asks the Marketing Expert to do something.
    m = "ES2099a"
    words = [
        "Mark",
        "you",
        "will",
        "look",
        "at",
        "the",
        "user",
        "requirements",
        "for",
        "next",
        "time",
    ]
    (root / f"words/{m}.A.words.xml").write_text(
        _xml(
            "".join(
                f'<w nite:id="{m}.A.words{i}" starttime="{i}.0" endtime="{i}.5">{w}</w>'
                for i, w in enumerate(words)
            )
        ),
        encoding="utf-8",
    )
    (root / f"dialogueActs/{m}.A.dialog-act.xml").write_text(
        _xml(
            f'<dact nite:id="{m}.A.da.1"><nite:child href="{m}.A.words.xml#id({m}.A.words0)'
            f'..id({m}.A.words{len(words) - 1})"/></dact>'
        ),
        encoding="utf-8",
    )
    (root / f"abstractive/{m}.abssumm.xml").write_text(
        _xml(
            f'<abstract><sentence nite:id="{m}.s.1">The project manager opened.</sentence>'
            f'</abstract><actions><sentence nite:id="{m}.s.2">The marketing expert will look'
            " at user requirements for the next meeting.</sentence></actions>"
        ),
        encoding="utf-8",
    )
    (root / f"extractive/{m}.summlink.xml").write_text(
        _xml(
            f'<summlink><nite:pointer role="extractive" href="{m}.A.dialog-act.xml#id({m}.A.da.1)"/>'
            f'<nite:pointer role="abstractive" href="{m}.abssumm.xml#id({m}.s.2)"/></summlink>'
        ),
        encoding="utf-8",
    )
    source = build.DirSource(tmp_path)
    assert not any(build.series_of(n) in HELD_OUT for n in source.names)
    splits = build.build(source)
    assert source.opened and not any(build.series_of(p) in HELD_OUT for p in source.opened)
    [row] = splits["dev"] + splits["test"]
    [item] = row["expected"]
    assert item["owner"] == "Marketing Expert"
    assert item["action"] == "look at user requirements"
    assert item["due_text"] == "for the next meeting"
    with pytest.raises(PermissionError):
        source.read("words/ES2002a.A.words.xml")
