"""Measure `es-faq doctor`'s collision check: every candidate FAQ pair with its best score.

Runs the doctor's candidate search and cross-encoder over the FAQs behind ALIAS (all, or a seeded
sample) with no threshold, and writes every candidate pair to OUT/candidates.json. Then:
- with --planted PLANTED.json (bench/doctor_plant.py): chooses doctor_cosine_weight and the threshold
  that maximise F1 on the train+dev FAQs' pairs and reports recall and precision at them on the test FAQs' pairs;
  with --judgements FILE as well, chooses and reports again counting the unplanted pairs FILE judges the same
  question as right (diac holds duplicate groups nobody planted: bench/judgements/README.md);
- with --judge N: writes a seeded sample of N reported pairs (at --threshold) to OUT/judge.tsv, with
  an empty `same` column for a person to fill in (1: the same question, 0: not).

    python bench/doctor_bench.py doctor-diac /tmp/h14a/diac --planted /tmp/h14a/diac-planted/planted.json
    python bench/doctor_bench.py doctor-bq bench/results/doctor-bq --threshold 1.5 --judge 60
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import numpy as np

from es_faq.config.load import load_settings
from es_faq.engine.client import make_client
from es_faq.evaluation.bench import JUDGEMENTS
from es_faq.kb import doctor
from es_faq.search.rerank import Reranker

WEIGHTS = (0.0, 5.0, 10.0, 20.0, 30.0, 40.0, 60.0)  # doctor_cosine_weight candidates


def prf(rows: list[dict], planted: set[tuple[str, str]], threshold: float,
        same: frozenset[tuple[str, str]] = frozenset()) -> dict:
    """Precision counts a reported pair right when planted, or judged the same question (`same`); recall is
    of the planted pairs only (diac's unplanted duplicates are known only where someone judged them)."""
    reported = {(r["faq_a"], r["faq_b"]) for r in rows if r["score"] >= threshold}
    hit = len(reported & planted)
    precision = len(reported & (planted | same)) / len(reported) if reported else 1.0
    recall = hit / len(planted) if planted else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"threshold": threshold, "reported": len(reported), "planted": len(planted), "found": hit,
            "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def judged_same(path: Path) -> frozenset[tuple[str, str]]:
    """The FAQ pairs a judgements file (bench/judgements/doctor-diac.jsonl) calls the same question, both ways."""
    same = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        row = json.loads(line)
        if row.get("judgement") not in JUDGEMENTS or not row.get("faq_a") or not row.get("faq_b"):
            raise SystemExit(f"{path}:{number}: each line needs faq_a, faq_b and a judgement, one of "
                             f"{', '.join(JUDGEMENTS)}")
        if row["judgement"] == "same":
            same |= {(row["faq_a"], row["faq_b"]), (row["faq_b"], row["faq_a"])}
    return frozenset(same)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("alias")
    parser.add_argument("out", type=Path)
    parser.add_argument("--planted", type=Path, default=None)
    parser.add_argument("--judge", type=int, default=None)
    parser.add_argument("--judgements", type=Path, default=None,
                        help="with --planted: also count reported pairs this file judges `same` as right "
                             "(bench/judgements/doctor-diac.jsonl), choosing and reporting again")
    parser.add_argument("--threshold", type=float, default=None, help="default: doctor_threshold")
    parser.add_argument("--sample", type=int, default=None, help="probe a seeded sample of N FAQs")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--depth", type=int, default=None, help="default: doctor_depth")
    args = parser.parse_args()
    settings = load_settings()
    client = make_client(settings)
    args.out.mkdir(parents=True, exist_ok=True)
    started, cpu0 = time.time(), os.times()
    index = doctor.live_index(client, args.alias)
    faqs = doctor.scan_faqs(client, index, progress=True)
    depth = args.depth or settings.doctor_depth
    pairs, strays, probed = doctor.question_pairs(client, settings, index, faqs, Reranker(settings), depth=depth,
                                                  sample=args.sample, seed=args.seed, progress=True)
    cpu1 = os.times()
    (args.out / "question-pairs.json").write_text(json.dumps([p.__dict__ for p in pairs], ensure_ascii=False),
                                                  encoding="utf-8")
    rows = [c.__dict__ for c in doctor.collisions(pairs, settings.doctor_cosine_weight, -np.inf)[0]]
    run = {"alias": args.alias, "index": index, "faqs": len(faqs), "probed": probed, "depth": depth,
           "candidate_pairs": len(rows), "strays_any_logit": len(strays), "wall_s": round(time.time() - started, 1),
           "client_cpu_s": round(cpu1.user + cpu1.system - cpu0.user - cpu0.system, 1),
           "loadavg_after": os.getloadavg()}
    (args.out / "candidates.json").write_text(json.dumps({"run": run, "pairs": rows}, ensure_ascii=False, indent=0),
                                              encoding="utf-8")
    print(json.dumps(run))
    threshold = settings.doctor_threshold if args.threshold is None else args.threshold
    if args.planted:
        data = json.loads(args.planted.read_text(encoding="utf-8"))
        split = data["split"]
        planted = {tuple(p) for p in data["pairs"]}

        def part(rows: list[dict], names: set[str]) -> tuple[list[dict], set[tuple[str, str]]]:
            return ([r for r in rows if split.get(r["faq_a"]) in names],
                    {p for p in planted if split.get(p[0]) in names})
        def choose(same: frozenset[tuple[str, str]]) -> dict:
            """The weight and threshold of the best F1 on the train+dev FAQs' pairs, and the figures at them."""
            grid = []
            for weight in WEIGHTS:
                weighted = [c.__dict__ for c in doctor.collisions(pairs, weight, -np.inf)[0]]
                tune_rows, tune_pairs = part(weighted, {"train", "dev"})
                for t in sorted({round(r["score"], 1) for r in tune_rows}):
                    grid.append({**prf(tune_rows, tune_pairs, t, same), "weight": weight})
            best = max(grid, key=lambda m: (m["f1"], m["precision"], -m["weight"]))
            weighted = [c.__dict__ for c in doctor.collisions(pairs, best["weight"], -np.inf)[0]]
            test_rows, test_pairs = part(weighted, {"test"})
            return {"chosen_on_train_dev": best, "test": prf(test_rows, test_pairs, best["threshold"], same),
                    "all": prf(weighted, planted, best["threshold"], same),
                    "best_per_weight_train_dev": [max((g for g in grid if g["weight"] == w), key=lambda m: m["f1"])
                                                  for w in WEIGHTS]}

        result = {"run": run, **choose(frozenset())}
        if args.judgements:
            result["judged"] = choose(judged_same(args.judgements))
        best = result["chosen_on_train_dev"]
        weighted = [c.__dict__ for c in doctor.collisions(pairs, best["weight"], -np.inf)[0]]
        test_rows, test_pairs = part(weighted, {"test"})
        chosen = best["threshold"]
        result["test_false_positives"] = [r for r in test_rows if r["score"] >= chosen
                                          and (r["faq_a"], r["faq_b"]) not in planted]
        reported = {(r["faq_a"], r["faq_b"]) for r in test_rows if r["score"] >= chosen}
        scores = {(r["faq_a"], r["faq_b"]): r["score"] for r in weighted}
        result["test_missed"] = [{"pair": p, "best_score": scores.get(p)} for p in sorted(test_pairs - reported)]
        (args.out / "planted-result.json").write_text(json.dumps(result, ensure_ascii=False, indent=1),
                                                      encoding="utf-8")
        print(json.dumps({k: result[k] for k in ("chosen_on_train_dev", "test", "all", "best_per_weight_train_dev",
                                                 "judged") if k in result}, indent=1))
    if args.judge:
        reported = [r for r in rows if r["score"] >= threshold]
        chosen = random.Random(args.seed).sample(reported, min(args.judge, len(reported)))
        with (args.out / "judge.tsv").open("w", encoding="utf-8") as fh:
            fh.write("same\tscore\tlogit\tcosine\tfaq_a\tquestion_a\tfaq_b\tquestion_b\n")
            for r in chosen:
                fh.write(f"\t{r['score']}\t{r['logit']}\t{r['cosine']}\t{r['faq_a']}\t{r['question_a']}\t{r['faq_b']}\t{r['question_b']}\n")
        print(f"{len(reported)} pairs reported at score >= {threshold}; {len(chosen)} sampled to "
              f"{args.out / 'judge.tsv'}")


if __name__ == "__main__":
    main()
