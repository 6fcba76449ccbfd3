"""Time whole cross-encoder training steps (forward, backward, AdamW) in fp32 and under bf16 autocast.

    python bench/train_step.py [--steps 12] [--batch-size 32] [--max-tokens 80]

Pairs are a seeded sample of bq train pairs; the first 2 steps of each variant are warm-up."""

from __future__ import annotations

import argparse
import json
import time

import torch
from transformers import BertForSequenceClassification

from es_faq.config.load import load_settings
from es_faq.models.onnx import load_tokenizer
from es_faq.train.base import load_base
from es_faq.train.loop import encode
from es_faq.train.pairs import corpus_file, read_pairs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, nargs="+", default=[80])
    args = parser.parse_args()
    settings = load_settings()
    pairs = read_pairs(corpus_file(settings.pairs_dir, "bq", "train"), "bq", args.batch_size * (args.steps + 2), 13)
    rows = []
    for max_tokens in args.max_tokens:
        for bf16 in (False, True):
            for frozen in (True, False):
                torch.manual_seed(13)
                model, tokenizer_file = load_base(settings, BertForSequenceClassification, num_labels=1)
                tokenizer = load_tokenizer(tokenizer_file, max_tokens)
                tokenizer.enable_padding(pad_to_multiple_of=8)
                model.bert.embeddings.word_embeddings.weight.requires_grad_(not frozen)
                model.train()
                optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-5)
                loss_fn = torch.nn.BCEWithLogitsLoss()
                times = []
                for step in range(args.steps + 2):
                    batch = pairs[step * args.batch_size:(step + 1) * args.batch_size]
                    features = encode(tokenizer, [(p.text1, p.text2) for p in batch], torch.device("cpu"))
                    labels = torch.tensor([float(p.label) for p in batch])
                    started = time.perf_counter()
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        logits = model(**features).logits[:, 0]
                    loss = loss_fn(logits.float(), labels)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    optimizer.zero_grad()
                    if step >= 2:
                        times.append(time.perf_counter() - started)
                ms = 1000 * sum(times) / len(times)
                row = {"max_tokens": max_tokens, "bf16": bf16, "embeddings_frozen": frozen,
                       "ms_per_step": round(ms, 1), "pairs_per_s": round(args.batch_size * 1000 / ms, 1)}
                print(json.dumps(row), flush=True)
                rows.append(row)


if __name__ == "__main__":
    main()
