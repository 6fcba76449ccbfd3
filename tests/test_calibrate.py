"""What the decision does to a split, counted from its rows (es_faq/evaluation/calibrate.py): no searches."""

import random

import numpy as np
import pytest

from es_faq.errors import ModelError
from es_faq.evaluation.calibrate import choose, fitted, outcomes, upper_rate, with_probabilities
from es_faq.search.decide import Calibration


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


def test_the_upper_bound_is_clopper_pearsons():
    # No false answer in 100 rows: the one-sided bound solves (1 - p)^100 = 1 - confidence.
    rows = [_row("no_match", 0.1) for _ in range(100)]
    assert upper_rate(rows, "no_match", 0.5, 0.95) == pytest.approx(1 - 0.05 ** (1 / 100), rel=1e-9)
    assert upper_rate(rows, "no_match", 0.5, None) == upper_rate(rows, "no_match", 0.5, 0.0) == 0.0
    # 3 of 100 answered: above the rate, and tighter at a lower confidence.
    rows[:3] = [_row("no_match", 0.9) for _ in range(3)]
    assert upper_rate(rows, "no_match", 0.5, None) == 0.03
    assert 0.03 < upper_rate(rows, "no_match", 0.5, 0.8) < upper_rate(rows, "no_match", 0.5, 0.95) < 0.1
    assert upper_rate(rows, "near_miss", 0.5, 0.8) == 0.0  # no rows of that kind: nothing to bound


def test_a_bound_held_with_confidence_takes_a_higher_threshold_the_fewer_rows_there_are():
    """Near-misses spread evenly over P 0.005-0.995: a bound of 5% on the dev rate alone allows the top 5% through,
    on its upper confidence bound fewer, and fewer still when the same spread comes from fewer rows."""
    def spread(n: int) -> list[dict]:
        return [_row("near_miss", (i + 0.5) / n) for i in range(n)] + [_row("paraphrase", 0.99, True)]

    plain = choose(spread(1000), 0.05, 1.0)["answer_threshold"]
    many = choose(spread(1000), 0.05, 1.0, confidence=0.8)["answer_threshold"]
    few = choose(spread(100), 0.05, 1.0, confidence=0.8)["answer_threshold"]
    assert plain == 0.95
    assert plain < many < few
    # Each is the lowest threshold whose bound holds.
    for rows, chosen in ((spread(1000), many), (spread(100), few)):
        assert upper_rate(rows, "near_miss", chosen, 0.8) <= 0.05 < upper_rate(rows, "near_miss", chosen - 0.01, 0.8)


def _featured(seed: int = 13, n: int = 600) -> list[dict]:
    """Rows a line cannot separate: a number difference is harmless at a middling logit (a paraphrase that
    says "3 days" for "three days") but marks the near-miss when the logit is high (it imitates its FAQ)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        kind = ("paraphrase", "paraphrase", "near_miss", "no_match")[i % 4]
        right = kind == "paraphrase" and rng.random() < 0.8
        if right:
            number = float(rng.random() < 0.5)
            logit = rng.uniform(0, 2) if number else rng.uniform(0, 4)
        elif kind == "near_miss":
            number, logit = 1.0, rng.uniform(2.2, 4)
        else:
            number, logit = float(rng.random() < 0.5), rng.uniform(-4, -0.2)
        rows.append({**_row(kind, 0.0, right), "vetoed": False,
                     "features": {"pair_logit": logit, "diff_number": number}})
    return rows


def test_trees_learn_what_a_line_cannot_and_survive_a_round_trip(tmp_path, monkeypatch):
    """`--learner trees`: the trees (ONNX, run by onnxruntime) answer the rows the rule makes right and
    not the others, with thresholds from out-of-fold probabilities; saved and loaded they give the same
    probabilities; a changed decision.onnx is refused."""
    monkeypatch.setattr("es_faq.search.decide.MANIFEST_DIR", tmp_path)
    rows, names = _featured(), ("pair_logit", "diff_number")
    trees = fitted(rows, names, 0.05, 0.02, learner="trees")
    assert trees.learner == "trees" and trees.trees and trees.coef == ()
    line = fitted(rows, names, 0.05, 0.02)
    fresh = with_probabilities(_featured(seed=7), trees)
    by_trees = outcomes(fresh, trees.answer_threshold, 0.0)
    by_line = outcomes(with_probabilities(_featured(seed=7), line), line.answer_threshold, 0.0)
    assert by_trees["coverage"] > 0.7 and by_trees["near_miss_false_answer_rate"] <= 0.05  # 0.8 is all there is
    assert by_line["coverage"] < by_trees["coverage"] - 0.1

    trees.save("m")
    loaded = Calibration.load("m")
    assert loaded == trees and (tmp_path / "m" / "decision.onnx").exists()
    x = np.array([[r["features"][n] for n in names] for r in rows])
    assert np.allclose(loaded.probabilities(x), trees.probabilities(x))
    assert loaded.probability({"pair_logit": 3.0, "diff_number": 0.0}) > 0.9 > \
        loaded.probability({"pair_logit": 3.0, "diff_number": 1.0})
    assert loaded.probability({"pair_logit": 1.0, "diff_number": 1.0}) > 0.9
    (tmp_path / "m" / "decision.onnx").write_bytes(b"not the trees")
    with pytest.raises(ModelError, match="sha256"):
        Calibration.load("m")
    line.save("m")  # a logistic calibration takes the trees of the earlier one away
    assert Calibration.load("m") == line and not (tmp_path / "m" / "decision.onnx").exists()
