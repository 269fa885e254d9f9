"""The realistic length mix both engines are measured on (docs/performance.md).

Speed depends on token counts, not on what the words say, so the mix copies the length
distribution of the 1,994 real Indonesian items issue 11 was measured on (tokens with the
"query: " prefix: median 29, mean 65, p90 176, p99 406) and fills it with our own corpus
posts (committed, licence ours): each item draws a target length from that distribution
(piecewise-linear quantile function through the published points) and joins corpus posts,
picked by a seeded generator, until it reaches the target, cut at the last whole word.

    benches/reference/run.sh --mix OUT.jsonl [--posts 1000] [--seed 11]
"""

import argparse
import bisect
import json
import pathlib
import random

from tokenizers import Tokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "models/data/corpus"
TOKENIZER = ROOT / "models/base/multilingual-e5-small/tokenizer.json"
PREFIX = "query: "
# (cumulative share, tokens incl. prefix and specials): issue 11's figures, plus the ends.
QUANTILES = [(0.0, 8), (0.5, 29), (0.9, 176), (0.99, 406), (1.0, 512)]


def target(u):
    shares = [q for q, _ in QUANTILES]
    i = max(1, bisect.bisect_left(shares, u))
    (q0, t0), (q1, t1) = QUANTILES[i - 1], QUANTILES[i]
    return round(t0 + (t1 - t0) * (u - q0) / (q1 - q0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--posts", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tok = Tokenizer.from_file(str(TOKENIZER))
    posts = []
    for path in sorted(CORPUS.glob("*.jsonl")):
        posts += [json.loads(l)["text"] for l in open(path, encoding="utf-8") if l.strip()]
    count = lambda text: len(tok.encode(PREFIX + text, add_special_tokens=True).ids)
    lengths = []
    with open(args.out, "w", encoding="utf-8") as out:
        for _ in range(args.posts):
            want = target(rng.random())
            words = []
            while True:
                words += rng.choice(posts).split()
                if count(" ".join(words)) >= want:
                    break
            while len(words) > 1 and count(" ".join(words[:-1])) >= want:
                words.pop()
            text = " ".join(words)
            lengths.append(count(text))
            out.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    lengths.sort()
    n = len(lengths)
    print(json.dumps({
        "posts": n,
        "tokens_median": lengths[n // 2],
        "tokens_mean": round(sum(lengths) / n, 1),
        "tokens_p90": lengths[int(0.9 * n)],
        "tokens_p99": lengths[int(0.99 * n)],
    }))


if __name__ == "__main__":
    main()
