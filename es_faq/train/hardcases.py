"""Hard cases for the cross-encoder: near-miss negatives and meaning-keeping positives, by category.

Near-misses in FAQ matching differ from the question they imitate in a few words of known kinds
(the categories of Baidu's DuQM robustness set): an entity, a negation, an antonym, a time, a
number, the two sides of an asymmetric relation, a restricting word. Paraphrases that must still
match differ in particles and politeness, the order of a symmetric "A和B", a synonym, or a typo of
the same sound. Each generator edits one text at the token level (jieba), so a word is swapped
whole ("能力" is never read as "能"); a generated pair puts the edited text against a *paraphrase*
of the original where one is known, so the model cannot win by spotting the one changed token.
Everything is seeded: the same sources and seed give the same pairs.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from ..search.differ import ANTONYM_PAIRS, ASYMMETRIC, TEMPORAL_GROUPS, statement
from .pairs import Pair

if TYPE_CHECKING:
    from ..config.settings import Settings

GENERATED = "hard:"  # the prefix of a generated case's source in training data ("hard:negation")
NEGATIVE = ("entity", "negation", "antonym", "temporal", "number", "asymmetry", "swap", "insertion")
# What a training run generates unless its recipe names others: every category but `swap`, in this order
# (the order seeds the draw, so the shipped model's recipe reproduces). `swap` did not pay: docs/benchmarks.md.
TRAINED_NEGATIVE = ("entity", "negation", "antonym", "temporal", "number", "asymmetry", "insertion")
POSITIVE = ("particle", "symmetric", "synonym", "homophone")
CATEGORIES = NEGATIVE + POSITIVE

# Modal and copular words whose negation flips the question ("能退款吗" / "不能退款吗").
_NEGATABLE = {"可以": "不可以", "能": "不能", "会": "不会", "需要": "不需要", "应该": "不应该", "是": "不是",
              "要": "不要", "有": "没有", "算": "不算", "用": "不用", "属于": "不属于", "构成": "不构成",
              "允许": "不允许", "承担": "不承担", "支付": "不支付", "同意": "不同意", "签": "不签",
              "交": "不交", "还": "不还", "给": "不给", "退": "不退", "影响": "不影响"}
_NEGATED = {v: k for k, v in _NEGATABLE.items()} | {"无法": "可以", "不得": "可以", "未": "已", "没": "有",
                                                    "无需": "需要", "不必": "必须"}
ANTONYMS = {a: b for a, b in ANTONYM_PAIRS} | {b: a for a, b in ANTONYM_PAIRS}
TEMPORAL = {w: [o for o in group if o != w] for group in TEMPORAL_GROUPS for w in group}
# Words that narrow what is asked ("房子过户" / "二手房子过户"): inserted before the first noun.
RESTRICTORS = ("外地", "农村", "未成年", "个体", "境外", "二手", "网上", "退休", "临时", "企业", "信用卡",
               "分期", "逾期", "外籍", "残疾", "离职", "夫妻共同", "部分", "第二次")
SYMMETRIC_JOINS = {"和", "与", "跟", "及"}
SYNONYMS = [("怎么", "如何", "怎样", "咋"), ("什么", "啥"), ("为什么", "为何", "为啥"), ("可以", "能"),
            ("是否", "是不是"), ("哪里", "哪儿"), ("现在", "目前"), ("需要", "要"), ("怎么办", "如何处理"),
            ("多少钱", "多少费用"), ("办理", "办"), ("咨询", "询问"), ("规定", "要求"), ("查询", "查看"),
            ("延期", "推迟"), ("手机", "电话"), ("立即", "马上"), ("告诉", "通知")]
_PREFIXES = ("请问", "你好，", "您好，请问", "我想问一下，", "咨询一下，", "麻烦问下，")
_SUFFIXES = ("呢", "啊", "呀")
_PARTICLES = re.compile(r"^(请问|你好[，,]?|您好[，,]?|我想问一下[，,]?|咨询一下[，,]?)|(呢|啊|呀)(?=[？?]?$)")
_NUMBER = re.compile(r"\d+(\.\d+)?")
_CN_NUMBER = re.compile(r"[一二两三四五六七八九十百千]+(?=[个年月天日次岁倍周元块万号级%])")
_CN_DIGITS = "一二三四五六七八九十"
_FRAME_NOUNS = {"时候", "意思", "东西", "问题", "情况", "办法", "原因", "地方", "方式", "时间"}
ENTITY_TAGS = ("nr", "ns", "nt", "nz", "n")


@dataclass(frozen=True)
class Token:
    word: str
    tag: str


@lru_cache(maxsize=200_000)
def tokens(text: str) -> tuple[Token, ...]:
    import jieba.posseg

    return tuple(Token(w, t) for w, t in jieba.posseg.lcut(text, HMM=False))


def _join(toks: Iterable[Token | str]) -> str:
    return "".join(t if isinstance(t, str) else t.word for t in toks)


def _replace_one(text: str, table: dict[str, list[str] | str], rng: random.Random) -> str | None:
    toks = tokens(text)
    places = [i for i, t in enumerate(toks) if t.word in table]
    if not places:
        return None
    i = rng.choice(places)
    options = table[toks[i].word]
    new = rng.choice(options) if isinstance(options, list) else options
    return _join([*toks[:i], new, *toks[i + 1:]])


class Generator:
    """Edits texts by category. `vocabulary` (entity words by jieba tag) and `homophones` (characters by
    reading) come from the texts the generator is built on: the knowledge base's own words."""

    def __init__(self, texts: Iterable[str], extra_synonyms: Iterable[Iterable[str]] = ()):
        counts: Counter[tuple[str, str]] = Counter()
        chars: Counter[str] = Counter()
        for text in texts:
            for t in tokens(text):
                if t.tag in ENTITY_TAGS and len(t.word) >= 2:
                    counts[(t.word, t.tag)] += 1
            chars.update(ch for ch in text if "\u4e00" <= ch <= "\u9fff")
        self.vocabulary: dict[str, list[str]] = {}
        for (word, tag), n in counts.most_common():
            if n >= 3:
                self.vocabulary.setdefault(tag, []).append(word)
        self.entities = {w for words in self.vocabulary.values() for w in words}
        self.tag_of = {w: tag for tag, words in self.vocabulary.items() for w in words}
        self.homophones = _homophones(c for c, n in chars.items() if n >= 5)
        groups = [*SYNONYMS, *[tuple(g) for g in extra_synonyms]]
        self.synonyms: dict[str, list[str]] = {}
        for group in groups:
            for word in group:
                self.synonyms.setdefault(word, []).extend(o for o in group if o != word)
        self.edits: dict[str, Callable[[str, random.Random], str | None]] = {
            "entity": self.entity, "negation": self.negation, "antonym": self.antonym,
            "temporal": self.temporal, "number": self.number, "asymmetry": self.asymmetry, "swap": self.swap,
            "insertion": self.insertion, "particle": self.particle, "symmetric": self.symmetric,
            "synonym": self.synonym, "homophone": self.homophone}

    # --- negatives: the meaning changes ---------------------------------------------------------
    def entity(self, text: str, rng: random.Random) -> str | None:
        toks = tokens(text)
        places = [i for i, t in enumerate(toks) if t.word in self.entities]
        if not places:
            return None
        i = rng.choice(places)
        pool = self.vocabulary[self.tag_of[toks[i].word]][:2000]  # the knowledge base's common words of that kind
        new = rng.choice(pool)
        if new == toks[i].word or new in text or toks[i].word in new or new in toks[i].word:
            return None
        return _join([*toks[:i], new, *toks[i + 1:]])

    def negation(self, text: str, rng: random.Random) -> str | None:
        # "能不能" asks, it does not negate: edit the statement ("能退款吗"), or "能不能" would become "能能".
        toks = tokens(statement(text))
        negated = [i for i, t in enumerate(toks) if t.word in _NEGATED]
        if negated:  # take the negation away ("不能退款吗" -> "能退款吗")
            i = rng.choice(negated)
            return _join([*toks[:i], _NEGATED[toks[i].word], *toks[i + 1:]])
        places = [i for i, t in enumerate(toks) if t.word in _NEGATABLE and (i == 0 or toks[i - 1].word not in "不没")]
        if not places:
            return None
        i = rng.choice(places)
        return _join([*toks[:i], _NEGATABLE[toks[i].word], *toks[i + 1:]])

    def antonym(self, text: str, rng: random.Random) -> str | None:
        return _replace_one(text, ANTONYMS, rng)  # type: ignore[arg-type]

    def temporal(self, text: str, rng: random.Random) -> str | None:
        return _replace_one(text, TEMPORAL, rng)  # type: ignore[arg-type]

    def number(self, text: str, rng: random.Random) -> str | None:
        # Not a list number ("12、..."): changing it changes nothing.
        spans = [(m.start(), m.end(), m.group()) for m in _NUMBER.finditer(text)
                 if text[m.end():m.end() + 1] not in ("、", ".")]
        spans += [(m.start(), m.end(), m.group()) for m in _CN_NUMBER.finditer(text) if m.group() in _CN_DIGITS]
        if not spans:
            return None
        start, end, value = rng.choice(spans)
        if value in _CN_DIGITS:
            new = rng.choice([d for d in _CN_DIGITS if d != value])
        else:
            number = float(value) if "." in value else int(value)
            new = str(number + rng.choice([1, 2, 3, 5, 10]) if number < 10 else round(number * rng.choice([2, 3])))
        return text[:start] + new + text[end:]

    def asymmetry(self, text: str, rng: random.Random) -> str | None:
        toks = tokens(text)
        places = []
        for i, t in enumerate(toks):
            if t.word in ASYMMETRIC and 0 < i < len(toks) - 1:
                left, right = toks[i - 1], toks[i + 1]
                if left.tag[0] in "nr" and right.tag[0] in "nr" and left.word != right.word:
                    places.append(i)
        if not places:
            return None
        i = rng.choice(places)
        return _join([*toks[:i - 1], toks[i + 1], toks[i], toks[i - 1], *toks[i + 2:]])

    def swap(self, text: str, rng: random.Random) -> str | None:
        """Two nouns on either side of a verb trade places ("银行卡绑定支付宝" / "支付宝绑定银行卡"): word order
        that changes who does what, of which the relation words of `asymmetry` are only a few."""
        toks = tokens(text)

        def noun(i: int) -> bool:
            return 0 <= i < len(toks) and toks[i].tag.startswith("n")

        # A whole noun phrase of one word: neither neighbour is a noun ("蚂蚁/花呗" is one thing), and not a
        # noun that only frames the question ("什么时候").
        nouns = [i for i, t in enumerate(toks) if noun(i) and len(t.word) >= 2 and t.word not in _FRAME_NOUNS
                 and not noun(i - 1) and not noun(i + 1)]
        places = [(i, j) for i in nouns for j in nouns if i < j <= i + 5 and toks[i].word != toks[j].word
                  and any(t.tag.startswith("v") for t in toks[i + 1:j])
                  and not any(t.word in SYMMETRIC_JOINS for t in toks[i + 1:j])]
        if not places:
            return None
        i, j = rng.choice(places)
        return _join([*toks[:i], toks[j], *toks[i + 1:j], toks[i], *toks[j + 1:]])

    def insertion(self, text: str, rng: random.Random) -> str | None:
        toks = tokens(text)
        # The first noun that starts a phrase: inserted inside a compound ("网商/银行") it reads as noise.
        nouns = [i for i, t in enumerate(toks) if t.tag.startswith("n") and len(t.word) >= 2
                 and (i == 0 or not toks[i - 1].tag.startswith(("n", "a", "v")))]
        choices = [w for w in RESTRICTORS if w not in text]
        if not nouns or not choices:
            return None
        i = nouns[0]
        return _join([*toks[:i], rng.choice(choices), *toks[i:]])

    # --- positives: the meaning stays -----------------------------------------------------------
    def particle(self, text: str, rng: random.Random) -> str | None:
        stripped = _PARTICLES.sub("", text)
        if stripped != text and stripped:
            return stripped
        if rng.random() < 0.5:
            return rng.choice(_PREFIXES) + text
        body = text.rstrip("？?")
        mark = text[len(body):]
        if body.endswith("吗") or not body:
            return None
        return body + rng.choice(_SUFFIXES) + mark

    def symmetric(self, text: str, rng: random.Random) -> str | None:
        toks = tokens(text)
        places = [i for i, t in enumerate(toks) if t.word in SYMMETRIC_JOINS and 0 < i < len(toks) - 1
                  and toks[i - 1].tag.startswith("n") and toks[i + 1].tag.startswith("n")
                  and toks[i - 1].word != toks[i + 1].word]
        if not places:
            return None
        i = rng.choice(places)
        return _join([*toks[:i - 1], toks[i + 1], toks[i], toks[i - 1], *toks[i + 2:]])

    def synonym(self, text: str, rng: random.Random) -> str | None:
        return _replace_one(text, self.synonyms, rng)  # type: ignore[arg-type]

    def homophone(self, text: str, rng: random.Random) -> str | None:
        toks = tokens(text)
        places = [(i, j) for i, t in enumerate(toks) if len(t.word) >= 2 for j, ch in enumerate(t.word)
                  if self.homophones.get(ch)]
        if not places:
            return None
        i, j = rng.choice(places)
        word = toks[i].word
        new = word[:j] + rng.choice(self.homophones[word[j]]) + word[j + 1:]
        return _join([*toks[:i], new, *toks[i + 1:]])

    def edit(self, category: str, text: str, rng: random.Random) -> str | None:
        out = self.edits[category](text, rng)
        return out if out and out != text else None


def _homophones(chars: Iterable[str]) -> dict[str, list[str]]:
    """Characters of the same toneless usual reading, among the texts' common characters."""
    from pypinyin import Style, lazy_pinyin

    by_reading: dict[str, list[str]] = {}
    for ch in sorted(chars):
        by_reading.setdefault(lazy_pinyin(ch, style=Style.NORMAL)[0], []).append(ch)
    return {ch: [o for o in group if o != ch] for group in by_reading.values() for ch in group if len(group) > 1}


@dataclass(frozen=True)
class Case:
    """One generated pair and where it came from: `edited` is `text` edited by `category`, set against
    `paraphrase` (a known paraphrase of `text`) with `label` (0: a near-miss, 1: the meaning kept)."""

    text: str
    paraphrase: str
    edited: str
    label: int
    category: str

    @property
    def source(self) -> str:
        """The source a training run records it under: GENERATED and its category."""
        return f"{GENERATED}{self.category}"


def cases(generator: Generator, sources: list[tuple[str, str]], seed: int = 13, positive_share: float = 0.5,
          negative: tuple[str, ...] = NEGATIVE) -> list[Case]:
    """For each (text, paraphrase of it): one near-miss of the text (a category drawn among those that apply),
    and with `positive_share` chance one meaning-keeping edit."""
    rng = random.Random(seed)
    out = []
    for text, paraphrase in sources:
        for kinds, label, chance in ((negative, 0, 1.0), (POSITIVE, 1, positive_share)):
            if rng.random() >= chance:
                continue
            order = list(kinds)
            rng.shuffle(order)
            for category in order:
                edited = generator.edit(category, text, rng)
                if edited and edited != paraphrase:
                    out.append(Case(text, paraphrase, edited, label, category))
                    break
    return out


def generate(generator: Generator, sources: list[tuple[str, str]], source: str, seed: int = 13,
             positive_share: float = 0.5, negative: tuple[str, ...] = NEGATIVE) -> list[Pair]:
    """The cases as pairs for the cross-encoder: (paraphrase, edited text, label), the category in `source`."""
    return [Pair(c.paraphrase, c.edited, c.label, f"{source}:{c.category}")
            for c in cases(generator, sources, seed, positive_share, negative)]


def recipe_cases(settings: Settings, recipe: dict, pairs: list[Pair]) -> list[Case]:
    """A training recipe's cases: near-misses and meaning-keeping edits of `recipe["hard_cases"]` sources drawn
    from the corpus pairs' positives and the recipe's benches' train groups, on a generator built on all their
    texts (`hard_positive_share`, `hard_negative` and `seed` from the recipe)."""
    from .loop import bench_path
    from .pairs import bench_groups

    groups = [[*g.faq.texts, *g.paraphrases] for b in recipe["benches"]
              for g in bench_groups(bench_path(settings, b), "train")]
    generator = Generator([t for g in groups for t in g] + [t for p in pairs for t in (p.text1, p.text2)])
    sources = sources_from(pairs, groups, recipe["hard_cases"], recipe["seed"])
    return cases(generator, sources, recipe["seed"], recipe["hard_positive_share"],
                 tuple(recipe["hard_negative"] or TRAINED_NEGATIVE))


def sources_from(pairs: Iterable[Pair], groups: Iterable[Iterable[str]] = (), limit: int | None = None,
                 seed: int = 13) -> list[tuple[str, str]]:
    """(text, paraphrase) sources: the positive pairs (both directions) and each group's equivalent texts,
    a seeded sample of `limit` of them."""
    out = []
    for p in pairs:
        if p.label == 1:
            out += [(p.text1, p.text2), (p.text2, p.text1)]
    for group in groups:
        texts = list(dict.fromkeys(group))
        out += [(a, b) for a in texts for b in texts if a != b]
    out = sorted(set(out))
    if limit and limit < len(out):
        out = random.Random(seed).sample(out, limit)
    return out
