"""The PyTorch side of patroli's speed comparison (docs/performance.md).

Scores the texts `patroli bench --texts-out FILE` wrote with Hugging Face's BertModel on the
same weights (models/base/multilingual-e5-small), the same "query: " prefix, the same
truncation (head and tail kept 3:1, as services/inference/src/text.rs does) and the same batching
rule (length-sorted, at most 32 posts and 2,048 padded tokens per batch, dynamic padding), and
prints one JSON line per thread count with the fields `patroli bench --json` prints.

    benches/reference/run.sh TEXTS.jsonl [--threads 1,2] [--max-len 64]
"""

import argparse
import json
import math
import pathlib
import resource
import time

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import BertConfig, BertModel

ROOT = pathlib.Path(__file__).resolve().parents[2]
BASE = ROOT / "models/base/multilingual-e5-small"
PREFIX = "query: "
MAX_POSTS, MAX_TOKENS = 32, 2048  # patroli_inference::TokenBudget::DEFAULT
BOS, EOS, PAD = 0, 2, 1


def encode(tok, text, max_len):
    """patroli's TextEncoder::encode: <s> + head and tail (3:1) of the pieces + </s>."""
    ids = tok.encode(PREFIX + text.strip(), add_special_tokens=False).ids
    budget = max_len - 2
    if len(ids) > budget:
        tail = budget // 4
        ids = ids[: budget - tail] + ids[len(ids) - tail :]
    return [BOS] + ids + [EOS]


def batches(lengths):
    """patroli's token_budget_batches: shortest first; a batch closes when the next (longest
    so far) post would take it past 32 posts or 2,048 padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    out, cur = [], []
    for i in order:
        if cur and (len(cur) + 1 > MAX_POSTS or (len(cur) + 1) * lengths[i] > MAX_TOKENS):
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    return out


def percentile(sorted_values, q):
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), math.ceil(q * len(sorted_values))))
    return sorted_values[rank - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("texts", help="JSONL of {\"text\": ...}, as patroli bench --texts-out writes")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--max-len", type=int, default=64)
    args = ap.parse_args()
    texts = [json.loads(l)["text"] for l in open(args.texts, encoding="utf-8") if l.strip()]

    config = BertConfig.from_pretrained(BASE)
    model = BertModel(config, add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(load_file(BASE / "model.safetensors"), strict=False)
    # token_type_embeddings and position_ids buffers may be absent in the converted weights.
    assert not [k for k in missing if "token_type" not in k and "position_ids" not in k], missing
    model.eval()
    tok = Tokenizer.from_file(str(BASE / "tokenizer.json"))

    for threads in sorted(int(t) for t in args.threads.split(","))[::-1]:
        torch.set_num_threads(threads)
        encoded = [encode(tok, t, args.max_len) for t in texts]
        plan = batches([len(e) for e in encoded])

        def run_batch(batch):
            longest = max(len(encoded[i]) for i in batch)
            ids = torch.full((len(batch), longest), PAD, dtype=torch.long)
            mask = torch.zeros((len(batch), longest), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                mask[row, : len(encoded[i])] = 1
            with torch.inference_mode():
                hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
                m = mask.unsqueeze(-1).to(hidden.dtype)
                return (hidden * m).sum(1) / m.sum(1)

        run_batch(plan[-1])  # warm-up
        started = time.perf_counter()
        per_batch = []
        for batch in plan:
            t = time.perf_counter()
            run_batch(batch)
            per_batch.append((time.perf_counter() - t) * 1000.0)
        seconds = time.perf_counter() - started
        per_batch.sort()
        print(json.dumps({
            "engine": f"pytorch {torch.__version__}",
            "threads": threads,
            "posts": len(texts),
            "mean_tokens": round(sum(len(e) for e in encoded) / len(encoded), 1),
            "batches": len(plan),
            "posts_per_sec": round(len(texts) / seconds, 1),
            "batch_p50_ms": round(percentile(per_batch, 0.50), 1),
            "batch_p99_ms": round(percentile(per_batch, 0.99), 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }), flush=True)


if __name__ == "__main__":
    main()
