"""Stage (queries only): typo, homophone and pinyin correction against the knowledge base's own words.

A query span that the knowledge base never uses but that is one homophone away from one of its
words ("花被" for "花呗": one character typed for another of the same reading) is replaced by that
word; so is Latin input that spells the knowledge base's words in full
pinyin ("huabei") or by their initials ("hb"). Words the knowledge base uses are never touched, so
a clean query is left as it is. The vocabulary comes from es_faq/search/vocabulary.py."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from pypinyin import Style, lazy_pinyin, pinyin

MAX_SPAN_CHARS = 6  # the longest run of characters looked up as one word
MAX_SPAN_TOKENS = 4  # a typo splits a word into at most this many jieba tokens
# How much likelier a knowledge-base word must be than the span as typed, per typo: 1 in 1000.
TYPO_PRIOR = 1e-3
MAX_SPELLINGS = 8  # pinyin spellings kept per word whose characters have several readings
_HAN = re.compile(r"[\u3400-\u9fff]+")
_LATIN = re.compile(r"[a-z]+")
# Piece costs of the pinyin cover of a Latin token: whole words by full pinyin are the likeliest reading.
_FULL, _CHAR, _INITIALS = 1.0, 1.6, 1.4


def is_han(text: str) -> bool:
    return bool(_HAN.fullmatch(text))


@lru_cache(maxsize=20000)
def _reading(char: str) -> str:
    """A typed character's usual toneless reading: what an input method lists it under first
    (pypinyin's rarer readings made 有 a homophone of 为, "wei")."""
    return lazy_pinyin(char, style=Style.NORMAL)[0]


@lru_cache(maxsize=20000)
def _all_readings(char: str) -> tuple[str, ...]:
    """Every toneless reading of a character of the knowledge base, usual one first (还: hai, huan)."""
    return tuple(dict.fromkeys(pinyin(char, style=Style.NORMAL, heteronym=True)[0]))


def word_readings(word: str) -> list[tuple[str, ...]]:
    """Per character, its reading in the word (pypinyin's phrase data) and then every other reading:
    the phrase data lacks many words (it reads 还款 as hai kuan), so no reading is ruled out."""
    phrase = lazy_pinyin(word, style=Style.NORMAL)
    if len(phrase) != len(word):
        phrase = [_all_readings(ch)[0] for ch in word]
    return [tuple(dict.fromkeys((first, *_all_readings(ch)))) for first, ch in zip(phrase, word, strict=True)]


def spellings(options: list[tuple[str, ...]]) -> list[str]:
    """The first MAX_SPELLINGS ways to join one option per position."""
    return ["".join(combo) for combo in itertools.islice(itertools.product(*options), MAX_SPELLINGS)]


def _slot(word: str, i: int) -> str:
    return word[:i] + "\0" + word[i + 1:]


def _better(counts: Mapping[str, int], a: str, b: str | None) -> bool:
    return b is None or (counts[a], a) > (counts[b], b)


class Corrector:
    """Compiled from one vocabulary (word -> how many questions use it) and the general word
    frequencies of the segmenter's dictionary; immutable."""

    def __init__(self, counts: Mapping[str, int], extra_words: Iterable[str] = (),
                 general: Mapping[str, int] | None = None, typo_prior: float = TYPO_PRIOR):
        self.counts: dict[str, int] = dict(counts)
        for word in extra_words:
            self.counts.setdefault(word, 1)
        self._general = general or {}
        self._general_total = max(1, sum(self._general.values()))
        self._kb_total = max(1, sum(self.counts.values()))
        self._log_prior = math.log(typo_prior)
        # word with one character blanked -> (word, how that character may be read in it)
        self._slots: dict[str, list[tuple[str, frozenset[str]]]] = {}
        self._by_full: dict[str, str] = {}
        self._by_initials: dict[str, str] = {}
        for word in self.counts:
            if not is_han(word) or len(word) > MAX_SPAN_CHARS:
                continue
            readings = word_readings(word)
            for full in spellings(readings):
                if _better(self.counts, word, self._by_full.get(full)):
                    self._by_full[full] = word
            if len(word) < 2:
                continue
            # zh, ch and sh are typed as z, c and s by initials
            for initials in spellings([tuple(dict.fromkeys(r[0] for r in rs)) for rs in readings]):
                if _better(self.counts, word, self._by_initials.get(initials)):
                    self._by_initials[initials] = word
            for i, options in enumerate(readings):
                self._slots.setdefault(_slot(word, i), []).append((word, frozenset(options)))

    def __len__(self) -> int:
        return len(self.counts)

    def log_p(self, word: str) -> float:
        """A unigram language model: half general Chinese (jieba's counts), half this knowledge base."""
        general = (self._general.get(word, 0) + 0.5) / self._general_total
        return math.log(0.5 * general + 0.5 * self.counts.get(word, 0) / self._kb_total)

    def likelier(self, typed: list[str], word: str) -> bool:
        """Whether `word` with one typo explains the span better than the `typed` tokens as they stand."""
        return self.log_p(word) + self._log_prior > sum(self.log_p(t) for t in typed)

    def homophone(self, span: str) -> str | None:
        """The knowledge base's commonest word that `span` is one homophone away from ("花被": "花呗"),
        if `span` itself is not a word of it."""
        if span in self.counts or not is_han(span) or not 2 <= len(span) <= MAX_SPAN_CHARS:
            return None
        best: str | None = None
        for i, char in enumerate(span):
            reading = _reading(char)
            for word, options in self._slots.get(_slot(span, i), ()):
                if reading in options and _better(self.counts, word, best):
                    best = word
        return best

    def spell(self, latin: str) -> str | None:
        """Chinese words a Latin token spells in pinyin (full, or initials of words of 2+ characters)."""
        if latin in self.counts or len(latin) < 2:
            return None
        n = len(latin)
        best: list[tuple[float, list[str]] | None] = [None] * (n + 1)
        best[0] = (0.0, [])
        for end in range(1, n + 1):
            for start in range(max(0, end - 6 * MAX_SPAN_CHARS), end):
                previous = best[start]
                if previous is None:
                    continue
                piece = latin[start:end]
                options = []
                if piece in self._by_full:
                    word = self._by_full[piece]
                    options.append((_FULL if len(word) > 1 else _CHAR, word))
                if piece in self._by_initials and len(piece) >= 2:
                    options.append((_INITIALS, self._by_initials[piece]))
                for cost, word in options:
                    candidate = (previous[0] + cost, previous[1] + [word])
                    current = best[end]
                    if current is None or candidate[0] < current[0]:
                        best[end] = candidate
        found = best[n]
        return "".join(found[1]) if found is not None else None

    def correct(self, spans: list[tuple[str, int, int]], text: str) -> tuple[str, list[list[str]]]:
        """`text` with misspelt spans replaced; `spans` are its jieba tokens with offsets.

        A run of up to MAX_SPAN_TOKENS tokens is replaced when it is not a word of the knowledge
        base but is one homophone away from one, and a token of it is unknown or two are lone
        characters (a typo makes an unknown word or breaks a word into characters: "花/贝" is a
        typo of 花呗, "有/什么" is not one of 为什么)."""
        out: list[str] = []
        corrections: list[list[str]] = []
        position, i = 0, 0
        while i < len(spans):
            token, start, _ = spans[i]
            replaced = False
            if _LATIN.fullmatch(token):
                word = self.spell(token)
                if word:
                    out.append(text[position:start] + word)
                    corrections.append([token, word])
                    position, replaced = spans[i][2], True
                    i += 1
            elif is_han(token):
                for j in range(min(len(spans), i + MAX_SPAN_TOKENS), i, -1):
                    run = spans[i:j]
                    if not all(is_han(t) for t, _, _ in run):
                        continue
                    unknown = sum(t not in self.counts for t, _, _ in run)
                    single = sum(len(t) == 1 for t, _, _ in run)
                    if not unknown and single < 2:
                        continue
                    span = text[start:run[-1][2]]
                    word = self.homophone(span)
                    if word and self.likelier([t for t, _, _ in run], word):
                        out.append(text[position:start] + word)
                        corrections.append([span, word])
                        position, replaced = run[-1][2], True
                        i = j
                        break
            if not replaced:
                i += 1
        out.append(text[position:])
        return "".join(out), corrections
