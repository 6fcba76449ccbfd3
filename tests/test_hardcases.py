"""The hard-case generator (es_faq/train/hardcases.py): each category edits what it says, the same seed
gives the same pairs, and a generated near-miss is told apart by the decision's difference code."""

import random

import pytest

from es_faq.search.differ import compare
from es_faq.train.hardcases import CATEGORIES, NEGATIVE, POSITIVE, Generator, generate, sources_from
from es_faq.train.pairs import Pair

TEXTS = ["公司欠员工工资怎么办", "借款3天了还没到账", "可以提前还款吗", "今天还款会扣利息吗", "夫妻和子女的财产怎么分",
         "信用卡逾期会影响征信吗", "花呗怎么还款", "我想咨询一下离婚的手续", "房子过户需要交哪些税"] * 3


@pytest.fixture(scope="module")
def generator():
    return Generator(TEXTS)


@pytest.mark.parametrize(("category", "text", "expected"), [
    ("number", "借款3天了还没到账", "借款{}天了还没到账"),
    ("negation", "可以提前还款吗", "不可以提前还款吗"),
    ("antonym", "可以提前还款吗", None),
    ("temporal", "今天还款会扣利息吗", None),
    ("asymmetry", "公司欠员工工资怎么办", "员工工资欠公司怎么办"),  # whole tokens trade places
    ("symmetric", "夫妻和子女的财产怎么分", "子女和夫妻的财产怎么分"),
    ("swap", "借款需要什么证明", "证明需要什么借款"),  # two nouns across a verb
])
def test_each_category_edits_what_it_names(generator, category, text, expected):
    edited = generator.edit(category, text, random.Random(1))
    assert edited and edited != text
    if expected and "{}" in expected:
        assert edited.startswith("借款") and edited.endswith("天了还没到账") and edited != text
    elif expected:
        assert edited == expected


def test_negation_reads_a_not_a_as_the_question_it_asks():
    # jieba cuts "能不能" into 能 / 不能: taking "不能" away must not leave "能能退款吗".
    edited = Generator(["小橙花能不能退款"] * 3).edit("negation", "小橙花能不能退款", random.Random(1))
    assert edited == "小橙花不能退款"


@pytest.mark.parametrize("text", ["夫妻和子女的财产怎么分",  # joined by 和: symmetric, not a swap
                                  "蚂蚁花呗怎么还款",  # one noun phrase of two nouns
                                  "什么时候可以开通贷款功能"])  # 时候 only frames the question
def test_swap_leaves_alone_what_it_would_not_change_the_meaning_of(text):
    assert Generator([text] * 3).edit("swap", text, random.Random(1)) is None


def test_negative_edits_carry_the_difference_the_decision_reads(generator):
    """What the generator changes, the decision's difference code names (one vocabulary for both)."""
    rng = random.Random(3)
    expect = {"number": "number", "negation": "negation", "antonym": "antonym", "temporal": "temporal",
              "asymmetry": "order"}
    for category, kind in expect.items():
        for text in TEXTS[:9]:
            edited = generator.edit(category, text, rng)
            if edited:
                assert kind in [d.kind for d in compare(text, edited)], (category, text, edited)


def test_generation_is_seeded_and_labels_follow_the_category(generator):
    pairs = [Pair(a, b, 1, "t") for a, b in zip(TEXTS[:9], TEXTS[1:10], strict=True)]
    sources = sources_from(pairs, [["花呗怎么还款", "花呗如何还款"]], limit=None, seed=5)
    first = generate(generator, sources, "t", seed=5)
    assert first == generate(generator, sources, "t", seed=5)
    assert first != generate(generator, sources, "t", seed=6)
    for p in first:
        category = p.source.split(":")[1]
        assert category in CATEGORIES
        assert p.label == (1 if category in POSITIVE else 0) and (category in NEGATIVE) == (p.label == 0)
        assert p.text1 != p.text2


def test_a_case_keeps_the_text_it_edited(generator):
    """A case names its source text and the paraphrase it is set against; the pair the cross-encoder trains on is
    (paraphrase, edited), and the edited text stays close to the text it came from."""
    from difflib import SequenceMatcher

    from es_faq.train.hardcases import cases

    pairs = [Pair(a, b, 1, "t") for a, b in zip(TEXTS[:9], TEXTS[1:10], strict=True)]
    sources = sources_from(pairs, [["花呗怎么还款", "花呗如何还款"]], limit=None, seed=5)
    drawn = cases(generator, sources, seed=5)
    assert drawn and [Pair(c.paraphrase, c.edited, c.label, f"t:{c.category}") for c in drawn] == generate(
        generator, sources, "t", seed=5)
    for c in drawn:
        assert (c.text, c.paraphrase) in sources and c.edited not in (c.text, c.paraphrase)
        assert SequenceMatcher(None, c.text, c.edited).ratio() >= 0.5, c


def test_training_leaves_swap_out_unless_a_recipe_names_it(generator):
    """The shipped recipe's draw is unchanged by the swap category: training generates TRAINED_NEGATIVE."""
    from es_faq.train.cross_encoder import recipe_of
    from es_faq.train.hardcases import TRAINED_NEGATIVE

    assert recipe_of()["hard_negative"] is None and "swap" not in TRAINED_NEGATIVE
    assert [c for c in NEGATIVE if c != "swap"] == list(TRAINED_NEGATIVE)
    sources = [("借款需要什么证明", "借款要什么证明"), ("电话未接通能取消借款吗", "电话没接通可以取消借款吗")] * 20
    trained = generate(generator, sources, "t", seed=2, negative=TRAINED_NEGATIVE)
    assert trained and not [p for p in trained if p.source.endswith(":swap")]
    assert [p for p in generate(generator, sources, "t", seed=2) if p.source.endswith(":swap")]
