"""Reading knowledge-base JSONL: validation, cleaning, and line-numbered errors."""

import pytest

from es_faq.kb.faq import BadRecord, Faq, parse_faq, read_jsonl


def test_parse_cleans_similar_questions():
    faq = parse_faq({"id": "a", "question": " 怎么 还款 ",
                     "similar_questions": ["如何还款", "", "如何还款", "怎么 还款"]})
    assert faq.question == "怎么 还款"
    assert faq.similar_questions == ["如何还款"]
    assert faq.texts == ["怎么 还款", "如何还款"]
    assert faq.enabled is True


@pytest.mark.parametrize("record, reason", [
    ({"question": "x"}, "missing id"),
    ({"id": "a", "question": "  "}, "empty question"),
    ({"id": "a", "question": 3}, "question must be a string"),
    ({"id": "a", "question": "x", "similar_questions": "y"}, "similar_questions must be a list"),
    ({"id": "a", "question": "x", "enabled": "yes"}, "enabled must be true or false"),
    ([1, 2], "not a JSON object"),
])
def test_parse_rejects(record, reason):
    with pytest.raises(ValueError, match=reason):
        parse_faq(record)


def test_read_jsonl_reports_bad_lines_by_number(tmp_jsonl):
    path = tmp_jsonl([
        '{"id": "a", "question": "第一条"}',
        '{"id": "b", "question": ',
        b'{"id": "c", "question": "\xff\xfe"}',
        '',
        '{"id": "a", "question": "重复"}',
        '{"id": "d", "question": "第四条", "similar_questions": ["第四"]}',
    ])
    records = list(read_jsonl(path))
    good = [r for r in records if isinstance(r, Faq)]
    bad = [r for r in records if isinstance(r, BadRecord)]
    assert [f.id for f in good] == ["a", "d"]
    assert [(b.line, b.reason.split(" (")[0]) for b in bad] == [
        (2, "invalid JSON"), (3, "not valid UTF-8"), (5, "duplicate id")]
    assert str(bad[2]) == "line 5 (id a): duplicate id"
