#!/usr/bin/env python3
"""Char-n-gram TF-IDF + logistic regression on the built training set: the
baseline every model must beat, and a measure of how much each source can
be told apart by form alone.

    python3 models/data/baseline.py [--data models/data/build] [--out FILE.json]

Reports (JSON on stdout and in --out):
- pooled: trained on the train split, ROC-AUC on the test split, overall and
  per source;
- threshold: chosen on dev so that at most 2% of genuine news / official items
  (label not, genre news or official) score at or above it; FPR on those items,
  precision and recall on test at that threshold;
- leave_one_source_out: for every source, trained on the train split of all
  other sources, ROC-AUC on all of that source's rows. A source with one label
  only is scored against the test-split rows of the other label from the
  remaining sources (which training never saw).
With --source-balance B, rows are weighted to even out source sizes exactly as
`patroli stack --source-balance B` weighs them (0, the default, weighs every
row alike).
With --scores FILE (JSONL with `id` and `score`, e.g. `patroli score` output
on test.jsonl) and --threshold T, reports the same pooled / per-source /
genuine-news figures for another model's test-split scores instead.
Uses models/.venv (created by models/data/build.py's pinned install).
"""

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build import ROOT, cap, ensure_venv  # noqa: E402

PROTECTED = {"news", "official"}
MAX_FPR = 0.02


def load(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def source_weights(rows, balance):
    """As `patroli stack --source-balance`: (mean rows per source / the row's
    source's rows) ** balance, scaled to a mean of 1."""
    n = defaultdict(int)
    for r in rows:
        n[r["source"]] += 1
    mean = len(rows) / len(n)
    w = [(mean / n[r["source"]]) ** balance for r in rows]
    return [x * len(w) / sum(w) for x in w]


def fit_predict(train, test_sets, balance=0.0):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, max_features=300_000, lowercase=True)
    x = vec.fit_transform([r["text"] for r in train])
    y = [r["label"] == "hoax" for r in train]
    clf = LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced", solver="liblinear")
    clf.fit(x, y, sample_weight=source_weights(train, balance))
    return [clf.predict_proba(vec.transform([r["text"] for r in rows]))[:, 1] for rows in test_sets]


def auc(scores, rows):
    from sklearn.metrics import roc_auc_score

    y = [r["label"] == "hoax" for r in rows]
    if len(set(y)) < 2:
        return None
    return round(float(roc_auc_score(y, scores)), 4)


def threshold_for(scores, rows):
    """Lowest threshold with FPR <= 2% on the protected (genuine news/official) items."""
    prot = sorted((s for s, r in zip(scores, rows) if r["label"] == "not" and r["genre"] in PROTECTED), reverse=True)
    allowed = int(MAX_FPR * len(prot))
    # Scores strictly above the (allowed+1)-th highest protected score.
    return float(prot[allowed]) + 1e-6 if prot else 0.5


def at_threshold(scores, rows, t):
    tp = sum(1 for s, r in zip(scores, rows) if s >= t and r["label"] == "hoax")
    fp = sum(1 for s, r in zip(scores, rows) if s >= t and r["label"] == "not")
    pos = sum(1 for r in rows if r["label"] == "hoax")
    prot = [s for s, r in zip(scores, rows) if r["label"] == "not" and r["genre"] in PROTECTED]
    return {
        "threshold": round(t, 4),
        "precision": round(tp / max(1, tp + fp), 4),
        "recall": round(tp / max(1, pos), 4),
        "protected_n": len(prot),
        "protected_fpr": round(sum(1 for s in prot if s >= t) / max(1, len(prot)), 4),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT / "models/data/build"))
    ap.add_argument("--out")
    ap.add_argument("--test", default="test.jsonl", help="test file inside --data (e.g. test_capped.jsonl)")
    ap.add_argument("--no-loso", action="store_true", help="pooled figures only")
    ap.add_argument("--max-per-source", type=int, help="train rows per source and label, as patroli train")
    ap.add_argument("--max-dev-per-source", type=int, help="dev rows per source and label, as patroli train")
    ap.add_argument("--scores")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--source-balance", type=float, default=0.0, help="weigh sources more evenly, as patroli stack")
    args = ap.parse_args()
    ensure_venv()
    d = Path(args.data)
    if args.scores:
        return report_scores(load(d / args.test), load(args.scores), args.threshold)
    train, dev, test = (load(d / f) for f in ("train.jsonl", "dev.jsonl", args.test))
    train, dev = cap(train, args.max_per_source), cap(dev, args.max_dev_per_source)
    dev_s, test_s = fit_predict(train, [dev, test], args.source_balance)
    t = threshold_for(dev_s, dev)
    by_src = defaultdict(list)
    for s, r in zip(test_s, test):
        by_src[r["source"]].append((s, r))
    report = {
        "model": "char_wb 2-5 TF-IDF + logistic regression (C=4, balanced)",
        "source_balance": args.source_balance,
        "data_manifest_sha256": json.loads((d / "manifest.json").read_text())["output_sha256"],
        "pooled": {
            "test_n": len(test),
            "test_roc_auc": auc(test_s, test),
            "dev_roc_auc": auc(dev_s, dev),
            "per_source_test_roc_auc": {k: auc([s for s, _ in v], [r for _, r in v]) for k, v in sorted(by_src.items())},
        },
        "dev_threshold": at_threshold(dev_s, dev, t),
        "test_at_dev_threshold": at_threshold(test_s, test, t),
        "leave_one_source_out": {},
    }
    sources = [] if args.no_loso else sorted({r["source"] for r in train + dev + test})
    everything = train + dev + test
    for src in sources:
        held = [r for r in everything if r["source"] == src]
        labels = {r["label"] for r in held}
        if len(labels) < 2:
            other = "not" if "hoax" in labels else "hoax"
            held = held + [r for r in test if r["source"] != src and r["label"] == other]
        (scores,) = fit_predict([r for r in train if r["source"] != src], [held], args.source_balance)
        report["leave_one_source_out"][src] = {"n": len(held), "roc_auc": auc(scores, held), "one_sided": len(labels) < 2}
        print(src, report["leave_one_source_out"][src], file=sys.stderr, flush=True)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


def report_scores(test, scored, threshold):
    by_id = {r["id"]: r["score"] for r in scored}
    rows = [r for r in test if r["id"] in by_id]
    scores = [by_id[r["id"]] for r in rows]
    by_src = defaultdict(list)
    for s, r in zip(scores, rows):
        by_src[r["source"]].append((s, r))
    print(json.dumps({
        "test_n": len(rows),
        "test_roc_auc": auc(scores, rows),
        "per_source_test_roc_auc": {k: auc([s for s, _ in v], [r for _, r in v]) for k, v in sorted(by_src.items())},
        "per_source_fpr_not": {k: round(sum(1 for s, r in v if r["label"] == "not" and s >= threshold) / max(1, sum(1 for _, r in v if r["label"] == "not")), 4) for k, v in sorted(by_src.items()) if any(r["label"] == "not" for _, r in v)},
        "at_threshold": at_threshold(scores, rows, threshold),
    }, indent=1))


if __name__ == "__main__":
    main()
