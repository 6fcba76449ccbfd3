"""Stage: phrase rewrites (typo and variant fixes), filler removal, and query-side synonym expansion."""

from __future__ import annotations

import re

from .dictionary import Dictionary


def _is_word(term: str) -> bool:
    return term.isalnum()


class Rewriter:
    """Compiled from one dictionary snapshot; immutable, so it can be swapped in whole."""

    def __init__(self, dictionary: Dictionary):
        self.version = dictionary.version
        rules = sorted(dictionary.rewrites, key=len, reverse=True)  # longest source wins
        self._rules = dictionary.rewrites
        self._pattern = re.compile("|".join(map(re.escape, rules))) if rules else None
        # Emoticon codes such as "/微笑" or "[微笑]" go anywhere; word fillers ("亲") only as whole tokens.
        symbols = sorted((f for f in dictionary.filler if not _is_word(f)), key=len, reverse=True)
        self._symbols = re.compile("|".join(map(re.escape, symbols))) if symbols else None
        self.filler_words = {f for f in dictionary.filler if _is_word(f)}
        self._synonyms: dict[str, list[str]] = {}
        for group in dictionary.synonyms:
            for term in group:
                self._synonyms.setdefault(term, [])
                self._synonyms[term] += [t for t in group if t != term and t not in self._synonyms[term]]

    def rewrite(self, text: str) -> tuple[str, list[list[str]]]:
        """The text with filler symbols removed and rewrites applied once; and which rewrites fired."""
        if self._symbols:
            text = self._symbols.sub(" ", text)
        applied: list[list[str]] = []
        if self._pattern:
            def swap(match: re.Match) -> str:
                applied.append([match.group(0), self._rules[match.group(0)]])
                return self._rules[match.group(0)]
            text = self._pattern.sub(swap, text)
        return " ".join(text.split()), applied

    def expand(self, tokens: list[str]) -> dict[str, list[str]]:
        """Synonyms of the query's tokens (the stored text is never expanded, so no reindex)."""
        return {t: self._synonyms[t] for t in dict.fromkeys(tokens) if t in self._synonyms}
