"""Analysis dictionaries (user words, synonyms, rewrites, filler), stored in Elasticsearch.

The index `<dict_index>` is the single source of truth; files under analyzers/ are seeds and the
import/export format. Every change bumps a version document, which running analyzers poll.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from elasticsearch import ConflictError, Elasticsearch, NotFoundError, helpers

from ..config.indices import MAX_ID_BYTES
from ..config.settings import Settings
from ..engine.client import ensure_small_index
from ..errors import InvalidInput

KINDS = ("word", "synonym", "rewrite", "filler")
FILES = {"word": "user_words.txt", "synonym": "synonyms.txt", "rewrite": "rewrites.txt", "filler": "filler.txt"}
VERSION_ID = "__version__"
_SPACE = re.compile(r"\s")
MAX_TERM_CHARS = 32
# A synonym group's id joins its sorted terms with this: a term holding it would make two groups
# share an id (["a|b", "c"] and ["a", "b", "c"]), so no term may.
ID_SEPARATOR = "|"


@dataclass
class Dictionary:
    """The dictionaries at one version, which an analyzer works from.

    Not immutable: `DictionaryStore.load` fills it with `put`, `import_dir` checks later rewrites against
    earlier ones by adding them to it, and a preview changes a copy with `put`/`drop` (evaluation/preview.py)."""

    version: int = 0
    words: list[str] = field(default_factory=list)
    synonyms: list[list[str]] = field(default_factory=list)
    rewrites: dict[str, str] = field(default_factory=dict)
    filler: list[str] = field(default_factory=list)

    def put(self, kind: str, terms: list[str]) -> None:
        """Add one (already validated) entry to this snapshot."""
        if kind == "word":
            self.words.append(terms[0])
        elif kind == "synonym":
            self.synonyms.append(terms)
        elif kind == "rewrite":
            self.rewrites[terms[0]] = terms[1]
        elif kind == "filler":
            self.filler.append(terms[0])

    def drop(self, kind: str, terms: list[str]) -> None:
        """Remove the entry that `entry_id(kind, terms)` names from this snapshot."""
        if kind == "word":
            self.words.remove(terms[0])
        elif kind == "synonym":
            self.synonyms = [g for g in self.synonyms if entry_id("synonym", g) != entry_id("synonym", terms)]
        elif kind == "rewrite":
            del self.rewrites[terms[0]]
        elif kind == "filler":
            self.filler.remove(terms[0])

    def entries(self) -> list[tuple[str, list[str]]]:
        """(kind, terms) for every entry, in the order files list them."""
        return ([("word", [w]) for w in self.words] + [("synonym", g) for g in self.synonyms]
                + [("rewrite", [a, b]) for a, b in self.rewrites.items()] + [("filler", [f]) for f in self.filler])


def _term(term: str, what: str) -> str:
    term = term.strip()
    if not term:
        raise InvalidInput(f"{what} is empty")
    if len(term) > MAX_TERM_CHARS:
        raise InvalidInput(f"{what} {term!r} is longer than {MAX_TERM_CHARS} characters")
    return term


def entry_id(kind: str, terms: list[str]) -> str:
    """`kind:key`, one per entry: the word, the rewrite's source, or the synonym group's sorted terms."""
    key = terms[0] if kind != "synonym" else ID_SEPARATOR.join(sorted(terms))
    return f"{kind}:{key}"


def validate(kind: str, terms: list[str], current: Dictionary) -> list[str]:
    """The cleaned terms of a new entry, or InvalidInput saying why it is refused."""
    if kind not in KINDS:
        raise InvalidInput(f"unknown dictionary kind {kind!r}; use one of {', '.join(KINDS)}")
    terms = [_term(t, kind) for t in terms]
    if kind in ("word", "filler"):
        if len(terms) != 1:
            raise InvalidInput(f"a {kind} entry is one term")
        if kind == "word" and _SPACE.search(terms[0]):
            raise InvalidInput(f"user word {terms[0]!r} contains whitespace")
        return terms
    if kind == "synonym":
        unique = list(dict.fromkeys(terms))
        if len(unique) < 2:
            raise InvalidInput("a synonym group needs at least two different terms")
        if any(_SPACE.search(t) for t in unique):
            raise InvalidInput("synonym terms are single words (no whitespace)")
        if any(ID_SEPARATOR in t for t in unique):
            raise InvalidInput(f"synonym terms may not contain {ID_SEPARATOR!r}: it separates the terms "
                               "of a group's id")
        if len(entry_id(kind, unique).encode("utf-8")) > MAX_ID_BYTES:
            raise InvalidInput(f"this synonym group is too long to store ({MAX_ID_BYTES} bytes of terms at most); "
                               "split it into smaller groups")
        return unique
    if len(terms) != 2:
        raise InvalidInput("a rewrite is FROM => TO")
    source, target = terms
    if len(source) < 2:
        raise InvalidInput(f"rewrite source {source!r} is one character: it would rewrite almost every query")
    if source == target or source in target:
        raise InvalidInput(f"rewrite {source} => {target} would apply again to its own output")
    if source in current.rewrites and current.rewrites[source] != target:
        raise InvalidInput(f"{source} is already rewritten to {current.rewrites[source]}; remove that first")
    # Follow the chain with the new rule in place: coming back to a term means the rules loop.
    graph = {**current.rewrites, source: target}
    step, visited = source, set()
    while step in graph:
        if step in visited:
            raise InvalidInput(f"rewrite {source} => {target} makes a loop with existing rewrites")
        visited.add(step)
        step = graph[step]
    return terms


class DictionaryStore:
    """Read and change the dictionaries in Elasticsearch."""

    def __init__(self, client: Elasticsearch, settings: Settings):
        self.client = client
        self.index = settings.dict_index

    def _ensure(self) -> None:
        ensure_small_index(self.client, self.index, {"kind": {"type": "keyword"}, "terms": {"type": "keyword"},
                                                     "version": {"type": "long"}})

    def version(self) -> int:
        try:
            return self.client.get(index=self.index, id=VERSION_ID)["_source"]["version"]
        except NotFoundError:
            return 0

    def load(self) -> Dictionary:
        try:
            version = self.version()
            rows = list(helpers.scan(self.client, index=self.index, query={"query": {"exists": {"field": "kind"}}},
                                     preserve_order=False))
        except NotFoundError:
            return Dictionary()
        rows.sort(key=lambda r: r["_id"])
        snapshot = Dictionary(version=version)
        for row in rows:
            snapshot.put(row["_source"]["kind"], row["_source"]["terms"])
        return snapshot

    def _bump(self) -> int:
        """Increment the version with optimistic concurrency (no scripting on this distribution)."""
        while True:
            try:
                doc = self.client.get(index=self.index, id=VERSION_ID)
                version = doc["_source"]["version"] + 1
                self.client.index(index=self.index, id=VERSION_ID, document={"version": version},
                                  if_seq_no=doc["_seq_no"], if_primary_term=doc["_primary_term"], refresh=True)
                return version
            except NotFoundError:
                try:
                    self.client.create(index=self.index, id=VERSION_ID, document={"version": 1}, refresh=True)
                    return 1
                except ConflictError:
                    continue
            except ConflictError:
                continue

    def add(self, kind: str, terms: list[str]) -> int:
        self._ensure()
        terms = validate(kind, terms, self.load())
        self.client.index(index=self.index, id=entry_id(kind, terms), document={"kind": kind, "terms": terms},
                          refresh=True)
        return self._bump()

    def remove(self, kind: str, terms: list[str]) -> int:
        terms = [t.strip() for t in terms]
        try:
            self.client.delete(index=self.index, id=entry_id(kind, terms), refresh=True)
        except NotFoundError:
            raise InvalidInput(f"no {kind} entry {' '.join(terms)!r} in the dictionary") from None
        return self._bump()

    def import_dir(self, directory: Path) -> dict:
        """Add every entry of the seed files in one bulk write and one version bump.

        Bad lines are reported by file and line; the rest go in."""
        self._ensure()
        snapshot = self.load()
        added: dict[str, int] = {}
        errors: list[str] = []
        actions: list[dict] = []
        for kind, name in FILES.items():
            path = directory / name
            if not path.exists():
                continue
            for number, terms, problem in parse_file(kind, path):
                try:
                    if problem:
                        raise problem
                    terms = validate(kind, terms, snapshot)
                except InvalidInput as exc:
                    errors.append(f"{path.name}:{number}: {exc.message}")
                    continue
                if kind == "rewrite":  # later lines are checked against earlier ones
                    snapshot.rewrites[terms[0]] = terms[1]
                actions.append({"_index": self.index, "_id": entry_id(kind, terms),
                                "_source": {"kind": kind, "terms": terms}})
                added[kind] = added.get(kind, 0) + 1
        if actions:
            helpers.bulk(self.client, actions, refresh=True)
        return {"added": added, "rejected": errors, "version": self._bump() if actions else self.version()}

    def export_dir(self, directory: Path) -> dict:
        snapshot = self.load()
        directory.mkdir(parents=True, exist_ok=True)
        lines: dict[str, list[str]] = {kind: [] for kind in KINDS}
        for kind, terms in snapshot.entries():
            lines[kind].append(format_entry(kind, terms))
        for kind, name in FILES.items():
            (directory / name).write_text("".join(line + "\n" for line in lines[kind]), encoding="utf-8")
        return {kind: len(rows) for kind, rows in lines.items()}


def format_entry(kind: str, terms: list[str]) -> str:
    if kind == "synonym":
        return ", ".join(terms)
    if kind == "rewrite":
        return f"{terms[0]} => {terms[1]}"
    return terms[0]


def parse_line(kind: str, line: str) -> list[str]:
    if kind == "synonym":
        return [t for t in re.split(r"[,，]", line)]
    if kind == "rewrite":
        if "=>" not in line:
            raise InvalidInput("a rewrite line is FROM => TO")
        return [t for t in line.split("=>", 1)]
    if kind == "word":
        return [line.split()[0]]  # jieba's "word [freq] [tag]": the word is what matters here
    return [line]


def parse_file(kind: str, path: Path):
    """(line number, terms, problem or None) for every entry line; '#' starts a comment."""
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            try:
                yield number, parse_line(kind, line), None
            except InvalidInput as exc:
                yield number, [], exc
