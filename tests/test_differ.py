"""What differs between a query and an FAQ question (es_faq/search/differ.py), by the kinds near-misses are made of."""

import pytest

from es_faq.search.differ import FEATURES, compare, explain, features, statement


@pytest.mark.parametrize(("query", "text", "kind", "said"), [
    ("借款3天了还没到账", "借款5天了还没到账", "number", "differs in a number: 3 vs 5"),
    ("不能退款吗", "可以退款吗", "negation", "differs in a negation: 不能 vs -"),
    ("小橙花可以提前还款吗", "小橙花怎么延期还款", "antonym", "differs in an antonym: 提前 vs 延期"),
    ("今天还款", "明天还款", "temporal", "differs in a time: 今天 vs 明天"),
    ("公司欠员工工资怎么办", "员工欠公司工资怎么办", "order",
     "differs in who does what to whom: 公司欠员工 vs 员工欠公司"),
    ("债务人不还钱，可以直接占有飞行物吗？", "债务人不还钱，可以直接占有抵押物吗？", "words",
     "differs in words only one side has: 飞行物 vs 抵押物"),
])
def test_each_kind_of_difference_is_found_and_named(query, text, kind, said):
    assert [d.kind for d in compare(query, text)][0] == kind
    assert explain(query, text)[0] == said
    values = features(query, text)
    assert set(values) == set(FEATURES)
    if kind != "words":
        assert values[f"diff_{kind}"] == 1.0


def test_paraphrases_that_keep_the_meaning_differ_in_no_kind():
    # A symmetric "A和B" swap, particles and politeness: no kind of difference, no words of weight.
    for query, text in [("夫妻和子女", "子女和夫妻"), ("请问花呗怎么还款呢", "花呗怎么还款"),
                        ("花呗怎么还款", "花呗怎么还款")]:
        assert compare(query, text) == []
        assert features(query, text) == dict.fromkeys(FEATURES, 0.0)


@pytest.mark.parametrize(("query", "text", "said"), [
    ("小橙借最少能借多少钱", "小橙借最多能借多少钱？", "differs in an antonym: 最少 vs 最多"),  # jieba: 最少 / 最 多
    ("小橙借最短可以借多久", "小橙借最长可以借多久？", "differs in an antonym: 最短 vs 最长"),
    ("怎么关闭自动还款", "怎么设置自动还款？", "differs in an antonym: 关闭 vs 设置"),
])
def test_an_antonym_the_segmenter_hides_is_read_on_characters(query, text, said):
    assert explain(query, text) == [said]


def test_characters_shared_elsewhere_are_no_antonym():
    # "多" and "少" both stand in "多少": only a stretch where the texts differ can hold an antonym.
    assert not [d for d in compare("花呗最多能借多少", "花呗最高能借多少") if d.kind == "antonym"]
    assert compare("可以借多少", "能借多少") == []


def test_a_number_written_in_characters_is_the_same_number():
    assert not [d for d in compare("分3期还款", "分三期还款") if d.kind == "number"]
    assert [d.kind for d in compare("分3期还款", "分六期还款")][0] == "number"


def test_words_glued_by_the_segmenter_are_not_counted_as_missing():
    # jieba cuts "员工工资" whole in one text and "员工 ... 工资" in the other: no word is missing.
    assert features("公司欠员工工资怎么办", "员工欠公司工资怎么办")["query_only_idf"] == 0.0


@pytest.mark.parametrize(("query", "text"), [
    ("小橙花能不能晚点还", "小橙花怎么延期还款"),  # jieba: 能 / 不能
    ("小橙花晚还几天会不会上征信", "逾期会影响征信吗"),  # 会 / 不会
    ("积分是不是每年都会清零", "积分会清零吗"),
    ("有没有人工提额", "可以人工提额吗"),
    ("可不可以提前还", "可以提前还吗"),
])
def test_a_yes_no_question_asked_as_a_not_a_is_no_negation(query, text):
    assert "negation" not in [d.kind for d in compare(query, text)]
    assert features(query, text)["diff_negation"] == 0.0


def test_a_negation_beside_a_not_a_is_still_a_negation():
    assert statement("小橙花能不能晚点还") == "小橙花能晚点还"
    assert [d.kind for d in compare("还没发货能不能取消订单", "已发货能取消订单吗")][0] == "negation"
    assert explain("能不能不还款", "能还款吗")[0] == "differs in a negation: 不 vs -"
