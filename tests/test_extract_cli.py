"""`convene extract` as users run it: a real subprocess of the console script's module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_PROMPTS, rules_prompts

pytestmark = pytest.mark.dates  # resolves dates: re-run on other days by .ci/run


def convene(
    *args: str, stdin: str | None = None, prompts: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`convene` with the rules pinned (`prompts`: another prompts folder, e.g. the shipped one,
    whose default is the local model)."""
    env = {**os.environ, "CONVENE_PROMPTS_DIR": str(prompts or rules_prompts())}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
        env=env,
    )


@pytest.mark.timeout(900)  # a bound on 2 busy cores, not a budget: see tests/test_local_llm.py
def test_batch_runs_the_local_model_by_default(tmp_path: Path) -> None:
    """The shipped default (`extraction.backend: local-llm`): llama.cpp's server starts with
    the packaged model; the rules read each window first (their tidy promise stands), the
    model reads the window they miss; none falls back to the rules (which would say so on
    stderr)."""
    batch = tmp_path / "in.jsonl"
    rows = [
        {
            "id": "promise",
            "date": "2026-11-24",
            "lines": ["Priya: I will send the security review to the legal team."],
        },
        {"id": "none", "date": "2026-11-24", "lines": ["Ken: The weather was nice last week."]},
        {
            "id": "messy",
            "date": "2026-11-24",
            "lines": ["Ana: Um, for next time, the the pricing thing, you could look into it."],
        },
    ]
    batch.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = convene("extract", "--batch", str(batch), "--json", "-v", prompts=REPO_PROMPTS)
    assert out.returncode == 0, out.stderr
    assert "extraction by the local model qwen2.5-coder-1.5b-instruct" in out.stderr
    assert "the rules answered" not in out.stderr and "failed" not in out.stderr
    found = {row["id"]: row["commitments"] for row in map(json.loads, out.stdout.splitlines())}
    assert found["none"] == []
    # The model was asked: once to read the prompt at start, once for the window the rules
    # missed (`-v` logs each request).
    assert out.stderr.count("/v1/chat/completions") >= 2
    [item] = found["promise"]
    assert item["owner"] == "Priya" and "security review" in item["action"]


def test_extract_json_from_stdin() -> None:
    transcript = (
        "Ana: Tom, can you send the deck to the client by Friday?\nTom: Sure, I'll send it.\n"
    )
    out = convene("extract", "-", "--date", "2026-11-24", "--json", stdin=transcript)
    assert out.returncode == 0, out.stderr
    [item] = json.loads(out.stdout)["commitments"]
    assert set(item) >= {"owner", "action", "due", "quote", "confidence"}
    assert item["owner"] == "Tom" and item["due"] == "2026-11-27"
    assert "deck" in item["action"]


def test_extract_file_and_empty_transcript(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("I'll update the roadmap tomorrow.\n")
    out = convene("extract", str(path), "--date", "2026-11-24", "--json")
    [item] = json.loads(out.stdout)["commitments"]
    assert item["due"] == "2026-11-25"
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    out = convene("extract", str(empty), "--date", "2026-11-24", "--json")
    assert out.returncode == 0
    assert json.loads(out.stdout) == {"commitments": []}
    assert "empty" in out.stderr


def test_bad_date_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    out = convene("extract", "-", "--date", "next tuesday", stdin="I'll do it.\n")
    assert out.returncode == 2 and "--date 'next tuesday': expected YYYY-MM-DD" in out.stderr
    out = convene("extract", str(tmp_path / "nope.txt"), "--date", "2026-11-24")
    assert out.returncode == 2 and "no such file" in out.stderr


def test_batch_processes_every_line_and_names_the_bad_one(tmp_path: Path) -> None:
    batch = tmp_path / "in.jsonl"
    batch.write_text(
        "\n".join(
            [
                json.dumps(
                    {
                        "id": "a",
                        "date": "2026-11-24",
                        "lines": ["Ken will send the invoice by Monday."],
                    }
                ),
                "{not json",
                json.dumps({"id": "c", "date": "someday", "lines": ["I'll call them."]}),
                json.dumps(
                    {"id": "d", "date": "2026-11-24", "lines": ["Last week I fixed the build."]}
                ),
            ]
        )
        + "\n"
    )
    out = convene("extract", "--batch", str(batch), "--json")
    assert out.returncode == 1
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["a", None, "c", "d"]
    assert rows[0]["commitments"][0]["owner"] == "Ken"
    assert rows[0]["commitments"][0]["due"] == "2026-11-30"
    assert "line 2" in rows[1]["error"] and "line 3" in rows[2]["error"]
    assert "`date` 'someday'" in rows[2]["error"]
    assert rows[3]["commitments"] == []
    assert "in.jsonl:line 2" in out.stderr


def test_the_next_meeting_dates_for_the_next_meeting(tmp_path: Path) -> None:
    said = "Ken: I'll bring the mock-ups to the next meeting.\n"
    out = convene(
        "extract", "-", "--date", "2026-11-24", "--next-meeting", "2026-12-01", "--json", stdin=said
    )
    assert out.returncode == 0, out.stderr
    [item] = json.loads(out.stdout)["commitments"]
    assert item["due"] == "2026-12-01" and item["owner"] == "Ken"
    out = convene("extract", "-", "--date", "2026-11-24", "--json", stdin=said)
    [item] = json.loads(out.stdout)["commitments"]
    assert item["due"] is None  # the series' cadence unknown: no date invented
    batch = tmp_path / "in.jsonl"
    rows = [
        {"id": "a", "date": "2026-11-24", "next_meeting": "2026-12-08", "lines": [said]},
        {"id": "b", "date": "2026-11-24", "next_meeting": "soon", "lines": [said]},
    ]
    batch.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = convene("extract", "--batch", str(batch), "--json")
    first, second = (json.loads(line) for line in out.stdout.splitlines())
    assert first["commitments"][0]["due"] == "2026-12-08"
    assert "`next_meeting` 'soon'" in second["error"]
