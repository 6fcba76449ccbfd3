"""What the decision does to a split, counted from its rows (es_faq/evaluation/calibrate.py): no searches."""

from es_faq.evaluation.calibrate import choose, outcomes


def _row(kind: str, probability: float, right: bool = False, vetoed: bool = False) -> dict:
    return {"kind": kind, "probability": probability, "right": right, "rank": 1 if right else 3,
            "near_miss_hit": kind == "near_miss", "in_suggestions": True, "difference": "antonym" if vetoed else "none",
            "vetoed": vetoed}


ROWS = [_row("paraphrase", 0.9, True), _row("paraphrase", 0.6, True), _row("paraphrase", 0.3, True),
        _row("near_miss", 0.95, vetoed=True), _row("near_miss", 0.7), _row("no_match", 0.2)]


def test_a_vetoed_row_is_suggested_not_answered():
    counted = outcomes(ROWS, 0.5, 0.1)
    assert counted["coverage"] == round(2 / 3, 4)
    assert counted["near_miss_false_answer_rate"] == 0.5  # the one at 0.7; the vetoed one at 0.95 is not answered
    assert counted["suggested"] == round(3 / 6, 4)  # the paraphrase at 0.3, the vetoed near-miss, the no-match at 0.2
    assert counted["near_miss_by_difference"]["antonym"] == {"queries": 1, "answered": 0, "false_answer_rate": 0.0}
    without_veto = outcomes([{**r, "vetoed": False} for r in ROWS], 0.5, 0.1)
    assert without_veto["near_miss_false_answer_rate"] == 1.0


def test_the_veto_lets_the_threshold_go_lower_at_the_same_bounds():
    # Both near-misses must stay unanswered (bound 0): without the veto only a threshold over 0.95 does that.
    assert choose([{**r, "vetoed": False} for r in ROWS], 0.0, 0.0)["answer_threshold"] == 0.96
    assert choose(ROWS, 0.0, 0.0)["answer_threshold"] == 0.71
