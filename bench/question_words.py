"""A question-word difference as a decision feature, replayed on cached rows (issue 19's difference features).

    python bench/question_words.py ROWS_DIR    # ROWS_DIR/rows-*-diac-{dev,test}.jsonl from bench/decision_ablation.py

Tags each query and each question of its leading FAQ with the first question word it has (why, when, how much,
where, who, how, whether, what; a short ordered list of patterns), sets `qword` = 1 where the query has one and
no question of the leader shares it, refits the shipped features with and without it on diac dev as
`es-faq calibrate` does (bounds 5% near-miss, 2% no-match; confidence 0.9 and the plain rates), and prints the
outcomes on dev and test. The rows are in `load_queries` order, so each row is joined to its query by position.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

from es_faq.config.load import load_settings
from es_faq.evaluation import calibrate as cal
from es_faq.evaluation.bench import load_queries
from es_faq.search.decide import DEFAULT_FEATURES

# First match wins: "怎么会" asks why before "怎么" asks how; "什么时候" asks when before "什么" asks what.
QUESTION_WORDS = [("why", r"为什么|为何|为啥|怎么会|咋会|什么原因|何故"),
                  ("when", r"什么时候|何时|多久|多长时间|几天|几号|哪天|期限|时效"),
                  ("how much", r"多少|几个|几次|多大|多高|比例|标准是"),
                  ("where", r"哪里|在哪|哪儿|什么地方|哪个法院|哪些地方"), ("who", r"谁|哪些人|什么人"),
                  ("how", r"怎么|如何|怎样|咋|怎么办|方法|步骤|流程|程序"),
                  ("whether", r"能否|能不能|可不可以|可以吗|是否|会不会|有没有|是不是|吗|么"),
                  ("what", r"什么|啥|哪些|何")]
REPORTED = ("coverage", "wrong_faq_rate", "near_miss_false_answer_rate", "no_match_false_answer_rate")


def question_word(text: str) -> str | None:
    return next((name for name, pattern in QUESTION_WORDS if re.search(pattern, text)), None)


def mismatch(query: str, questions: list[str]) -> float:
    asked = question_word(query)
    if asked is None:
        return 0.0
    theirs = [question_word(q) for q in questions]
    return 0.0 if asked in theirs or all(t is None for t in theirs) else 1.0


def main() -> None:
    directory = Path(sys.argv[1])
    bench = load_settings().bench_dir / "diac"
    faqs = {}
    for line in (bench / "faqs.jsonl").open(encoding="utf-8"):
        faq = json.loads(line)
        faqs[faq["id"]] = [faq["question"], *(faq.get("similar_questions") or [])]
    splits = {}
    for split in ("dev", "test"):
        (path,) = directory.glob(f"rows-*-diac-{split}.jsonl")
        rows = [json.loads(line) for line in path.open(encoding="utf-8")]
        queries = load_queries(bench, split)
        assert len(rows) == len(queries), f"{path}: {len(rows)} rows for {len(queries)} queries"
        for row, query in zip(rows, queries, strict=True):
            if row["features"] is not None:
                row["features"]["qword"] = mismatch(query["query"], faqs.get(row["top"], []))
        splits[split] = rows
    tagged = Counter((r["kind"], r["features"]["qword"]) for r in splits["test"] if r["features"])
    print(json.dumps({"test rows by kind and qword": {f"{k} {int(v)}": n for (k, v), n in sorted(tagged.items())}}))
    for names in (tuple(DEFAULT_FEATURES), (*DEFAULT_FEATURES, "qword")):
        for confidence in (0.9, None):
            fit = cal.fitted(splits["dev"], names, 0.05, 0.02, confidence=confidence)
            for split, rows in splits.items():
                out = cal.outcomes(cal.with_probabilities(rows, fit), fit.answer_threshold, fit.suggest_threshold)
                print(json.dumps({"features": names, "confidence": confidence, "split": split,
                                  "answer": fit.answer_threshold, "coef": [round(c, 3) for c in fit.coef],
                                  **{k: out[k] for k in REPORTED}}))


if __name__ == "__main__":
    main()
