"""Does a non-linear learner decide better than the shipped logistic regression? From the rows that
bench/decision_ablation.py cached (diac dev and test, one model), each learner is fitted on dev, its
answer threshold chosen on dev's out-of-fold probabilities (near-miss <= 5%, no-match <= 2%, as
`es-faq calibrate`), and measured on test. No search runs.

    python bench/decision_learners.py bench/results/reranker-zh3/ablation reranker-zh3 [--features all|base]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from es_faq.evaluation import calibrate as cal
from es_faq.search.decide import BASE_FEATURES, FEATURES

REPORTED = ("coverage", "wrong_faq_rate", "near_miss_false_answer_rate", "no_match_false_answer_rate",
            "answer_precision")


def rows(folder: Path, model: str, split: str) -> list[dict]:
    [path] = sorted(folder.glob(f"rows-{model}-*-diac-{split}.jsonl"))
    return [json.loads(line) for line in path.open(encoding="utf-8")]


def scored(part: list[dict], names: tuple[str, ...], model) -> list[dict]:
    """The rows with `probability` from `model` (one call for all; None where a row has no features)."""
    with_features = [i for i, r in enumerate(part) if r["features"] is not None]
    probabilities = model.predict_proba(np.array([[part[i]["features"][n] for n in names]
                                                  for i in with_features]))[:, 1] if with_features else []
    out = [{**r, "probability": None} for r in part]
    for i, p in zip(with_features, probabilities, strict=True):
        out[i]["probability"] = float(p)
    return out


def out_of_fold(part: list[dict], names: tuple[str, ...], learner, folds: int = 5) -> list[dict]:
    """Each row scored by the learner fitted on the other folds (rows are in the bench's order; folds
    interleave)."""
    from sklearn.base import clone

    out: list[dict] = [{} for _ in part]
    for k in range(folds):
        held = list(range(k, len(part), folds))
        model = clone(learner).fit(*cal.matrix([r for i, r in enumerate(part) if i % folds != k], names))
        for i, row in zip(held, scored([part[i] for i in held], names, model), strict=True):
            out[i] = row
    return out


def main() -> None:
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("model")
    parser.add_argument("--features", choices=("all", "base"), default="all")
    args = parser.parse_args()
    names = FEATURES if args.features == "all" else BASE_FEATURES
    dev, test = rows(args.folder, args.model, "dev"), rows(args.folder, args.model, "test")
    x, y = cal.matrix(dev, names)
    learners = {
        "logistic regression (shipped kind)": LogisticRegression(C=1.0, max_iter=1000),
        "gradient-boosted trees, depth 2, 100 trees": HistGradientBoostingClassifier(
            max_depth=2, max_iter=100, learning_rate=0.1, random_state=13),
        "gradient-boosted trees, depth 3, 200 trees": HistGradientBoostingClassifier(
            max_depth=3, max_iter=200, learning_rate=0.05, random_state=13),
        # The kind `es-faq calibrate --learner trees` ships (skl2onnx converts it; it does not convert the
        # histogram kind of scikit-learn 1.9).
        "gradient-boosted trees (exact), depth 2, 100 trees": GradientBoostingClassifier(
            max_depth=2, n_estimators=100, learning_rate=0.1, random_state=13),
        "gradient-boosted trees (exact), depth 3, 200 trees": GradientBoostingClassifier(
            max_depth=3, n_estimators=200, learning_rate=0.05, random_state=13),
    }
    for name, learner in learners.items():
        # The threshold is chosen on out-of-fold probabilities (5 folds of dev): a learner that fits its own
        # dev rows closely would otherwise choose a threshold that holds only there.
        on_dev = out_of_fold(dev, names, learner)
        chosen = cal.choose(on_dev, 0.05, 0.02)
        learner.fit(x, y)
        test_outcomes = cal.outcomes(scored(test, names, learner), chosen["answer_threshold"],
                                     chosen["suggest_threshold"])
        print(json.dumps({"model": args.model, "learner": name, "features": args.features, **chosen,
                          "dev_coverage": cal.outcomes(on_dev, chosen["answer_threshold"], 0.0)["coverage"],
                          "test": {k: test_outcomes[k] for k in REPORTED}}, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
