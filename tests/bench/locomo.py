"""LoCoMo (Maharana et al., ACL 2024), development split: conversations as timed chat turns, and their questions.

The data lives outside the project (CC BY-NC 4.0; see ../shared/locomo/README.md); `LOCOMO_PATH` overrides where.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

DEFAULT_PATH = Path(__file__).resolve().parents[3] / "shared" / "locomo" / "locomo_dev.json"
DATE_FORMAT = "%I:%M %p on %d %B, %Y"  # "1:56 pm on 8 May, 2023"
TURN_SPACING = timedelta(seconds=1)  # turns of a session get increasing times, so their order survives a sort
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
_EVIDENCE = re.compile(r"D:?(\d+):+(\d+)")  # tolerates "D:11:26" and "D30:05"; finds both ids of "D8:6; D9:17"


@dataclass(frozen=True, slots=True)
class Turn:
    dia_id: str
    speaker: str
    role: Literal["user", "assistant"]
    text: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Question:
    question: str
    answer: str  # "" for most adversarial (category 5) questions, which have no answer
    category: int
    evidence: list[str]


@dataclass(slots=True)
class Conversation:
    sample_id: str
    speaker_a: str
    speaker_b: str
    sessions: list[list[Turn]]
    questions: list[Question]
    by_id: dict[str, Turn] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Index the turns by dialogue id."""
        self.by_id = {turn.dia_id: turn for turn in self.turns}

    @property
    def turns(self) -> list[Turn]:
        """All turns, in order."""
        return [turn for session in self.sessions for turn in session]


def normalise_evidence(ids: list[str]) -> list[str]:
    """Canonical "D<session>:<turn>" ids found in the raw evidence strings, without duplicates."""
    found = (f"D{int(s)}:{int(t)}" for raw in ids for s, t in _EVIDENCE.findall(raw))
    return list(dict.fromkeys(found))


def _turn(raw: dict[str, Any], speakers: dict[str, Literal["user", "assistant"]], at: datetime) -> Turn:
    """One turn; a shared photo becomes a note on its text."""
    text = raw["text"]
    if caption := raw.get("blip_caption"):
        text = f"{text} [shares a photo: {caption}]"
    return Turn(raw["dia_id"], raw["speaker"], speakers[raw["speaker"]], text, at)


def _sessions(conversation: dict[str, Any]) -> list[list[Turn]]:
    """The sessions in order, each turn timed from its session's date."""
    speakers: dict[str, Literal["user", "assistant"]] = {
        conversation["speaker_a"]: "user",
        conversation["speaker_b"]: "assistant",
    }
    numbers = sorted(int(m[1]) for key in conversation if (m := re.fullmatch(r"session_(\d+)", key)))
    sessions = []
    for n in numbers:
        start = datetime.strptime(conversation[f"session_{n}_date_time"], DATE_FORMAT).replace(tzinfo=UTC)
        raw = conversation[f"session_{n}"]
        sessions.append([_turn(turn, speakers, start + i * TURN_SPACING) for i, turn in enumerate(raw)])
    return sessions


def _question(raw: dict[str, Any]) -> Question:
    """One question, with its evidence ids normalised."""
    return Question(raw["question"], str(raw.get("answer", "")), raw["category"], normalise_evidence(raw["evidence"]))


def load(path: Path | None = None) -> list[Conversation]:
    """Read the LoCoMo conversations from `path`, else $LOCOMO_PATH, else ../shared/locomo/locomo_dev.json."""
    path = path or Path(os.environ.get("LOCOMO_PATH") or DEFAULT_PATH)
    return [
        Conversation(
            sample_id=sample["sample_id"],
            speaker_a=sample["conversation"]["speaker_a"],
            speaker_b=sample["conversation"]["speaker_b"],
            sessions=_sessions(sample["conversation"]),
            questions=[_question(q) for q in sample["qa"]],
        )
        for sample in json.loads(path.read_text(encoding="utf-8"))
    ]
