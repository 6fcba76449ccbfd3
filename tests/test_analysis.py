"""normalize and segment: the analysis both documents and queries go through."""

from es_faq.search.normalize import normalize


def test_normalize_folds_width_case_and_space():
    assert normalize("ＡＢＣ１２３　花呗\t 还款？") == "abc123 花呗 还款?"


def test_normalize_bounds_length():
    assert normalize("一二三四五", max_chars=3) == "一二三"


def test_segmenter_drops_punctuation_and_keeps_words(analyzer):
    analysis = analyzer.analyze("花呗怎么延期还款？？！")
    assert "延期" in analysis.tokens
    assert "还款" in analysis.tokens
    assert all(t not in {"?", "!", "？"} for t in analysis.tokens)


def test_long_query_is_truncated_and_flagged(analyzer, settings):
    analysis = analyzer.analyze("还款" * 10_000)
    assert analysis.truncated
    assert len(analysis.normalized) == settings.analyze_max_chars
