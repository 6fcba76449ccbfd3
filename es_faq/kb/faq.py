"""The FAQ record and the JSONL reader for knowledge bases (the faq-bench format plus optional fields)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..config.indices import MAX_ID_BYTES
from ..errors import DataError

# Elasticsearch keeps a keyword (the stored question texts, the category) of at most this many
# UTF-8 bytes; a longer one fails its document, and with it the whole load.
KEYWORD_MAX_BYTES = 32766


@dataclass
class Faq:
    id: str
    question: str
    similar_questions: list[str] = field(default_factory=list)
    answer: str = ""
    category: str = ""
    enabled: bool = True
    updated_at: str | None = None

    @property
    def texts(self) -> list[str]:
        """Every question text, standard first."""
        return [self.question, *self.similar_questions]


@dataclass
class BadRecord:
    line: int
    reason: str
    id: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" (id {self.id})" if self.id else "")
        return f"{where}: {self.reason}"


def _text(value, name: str, max_bytes: int | None = None) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    text = " ".join(value.split())
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in the JSON): no index can hold it
        raise ValueError(f"{name} is not valid Unicode text (a lone surrogate)") from None
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f"{name} is {size} bytes in UTF-8; Elasticsearch stores at most {max_bytes}")
    return text


def parse_faq(record: dict) -> Faq:
    """Validate and clean one FAQ record; ValueError says what is wrong."""
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    faq_id = record.get("id")
    if not isinstance(faq_id, (str, int)) or not str(faq_id).strip():
        raise ValueError("missing id")
    faq_id = str(faq_id).strip()
    try:
        id_bytes = len(faq_id.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("id is not valid Unicode text (a lone surrogate)") from None
    if id_bytes > MAX_ID_BYTES:
        raise ValueError(f"id is {id_bytes} bytes in UTF-8; Elasticsearch's ids are at most {MAX_ID_BYTES}")
    question = _text(record.get("question"), "question", KEYWORD_MAX_BYTES)
    if not question:
        raise ValueError("empty question")
    similar = record.get("similar_questions") or []
    if not isinstance(similar, list):
        raise ValueError("similar_questions must be a list")
    seen = {question}
    cleaned = []
    for text in (_text(s, "similar question", KEYWORD_MAX_BYTES) for s in similar):
        if text and text not in seen:  # duplicates and blanks add nothing to matching
            seen.add(text)
            cleaned.append(text)
    updated_at = record.get("updated_at")
    if updated_at is not None:
        datetime.fromisoformat(str(updated_at))
    enabled = record.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValueError("enabled must be true or false")
    return Faq(faq_id, question, cleaned, _text(record.get("answer") or "", "answer"),
               _text(record.get("category") or "", "category", KEYWORD_MAX_BYTES), enabled,
               str(updated_at) if updated_at is not None else None)


def read_jsonl(path: Path) -> Iterator[Faq | BadRecord]:
    """Yield each line as a Faq, or as a BadRecord naming the line and the problem."""
    seen: set[str] = set()
    with Path(path).open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield BadRecord(number, "not valid UTF-8")
                continue
            if not line.strip():
                continue
            try:
                faq = parse_faq(json.loads(line))
            except json.JSONDecodeError as exc:
                yield BadRecord(number, f"invalid JSON ({exc.msg} at column {exc.colno})")
                continue
            except ValueError as exc:
                yield BadRecord(number, str(exc))
                continue
            if faq.id in seen:
                yield BadRecord(number, "duplicate id", faq.id)
                continue
            seen.add(faq.id)
            yield faq


def count_lines(path: Path) -> int:
    with Path(path).open("rb") as fh:
        return sum(1 for _ in fh)


def read_faqs(path: Path) -> list[Faq]:
    """Every FAQ of a knowledge base that must be whole (a bench, training data): the first bad line
    stops the read with its line number."""
    faqs = []
    for record in read_jsonl(path):
        if isinstance(record, BadRecord):
            raise DataError(f"{path}: {record}; fix the line (a bench must load whole)")
        faqs.append(record)
    return faqs
