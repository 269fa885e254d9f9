#!/usr/bin/env python3
# size: one pipeline over the pinned sources, one reader per source format sharing the cleaning and split.
"""Rebuilds the real-data training set (first used by patroli-id-v2) from the pinned public sources.

    python3 models/data/build.py [--mirror DIR] [--out models/data/build]

Reads every file listed in models/data/sources.json from the `fetch` mirror
(DIR/<owner>+<name>/repo, a bare git dir; default /work/.mirror or
$PATROLI_MIRROR) at its pinned commit, checks its sha256, maps its labels to
hoax/not, strips label-revealing markers and source boilerplate, neutralises
casing/punctuation (a fixed share of every cased source is lowercased and
stripped the way two sources were by their authors), removes exact and near
duplicates across sources, and splits train/dev/test by near-duplicate
cluster. Writes OUT/{train,dev,test}.jsonl, OUT/all.jsonl, OUT/test_capped.jsonl
(at most 120 test rows per source and label) and
OUT/manifest.json (row counts per source/label/split, input hashes, the hash
of the output). Deterministic: same inputs, same bytes.

Needs pandas + openpyxl (for two .xlsx files): when they are missing the
script creates models/.venv from PyPI (pinned versions) and re-runs itself.
"""

import argparse
import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / "models" / ".venv"
PINNED = ["pandas==2.2.3", "openpyxl==3.1.5", "numpy==2.1.3", "scikit-learn==1.5.2"]


def ensure_venv():
    try:
        import pandas  # noqa: F401
        import openpyxl  # noqa: F401
        return
    except ImportError:
        pass
    py = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        sys.exit("pandas/openpyxl missing inside models/.venv")
    if not py.exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    subprocess.check_call([str(py), "-m", "pip", "install", "-q", *PINNED])
    os.execv(str(py), [str(py), *sys.argv])


# ---------------------------------------------------------------- reading


class Mirror:
    def __init__(self, root):
        self.root = Path(root)

    def read(self, repo, commit, path, sha):
        git = self.root / repo.replace("/", "+") / "repo"
        if not git.exists():
            sys.exit(f"{repo}: no mirror at {git} (bring it in with the fetch tool)")
        data = subprocess.run(
            ["git", "--git-dir", str(git), "show", f"{commit}:{path}"],
            capture_output=True,
            check=False,
        )
        if data.returncode != 0:
            sys.exit(f"{repo}@{commit}:{path}: {data.stderr.decode().strip()}")
        got = hashlib.sha256(data.stdout).hexdigest()
        if got != sha:
            sys.exit(f"{repo}@{commit}:{path}: sha256 {got} != pinned {sha}")
        return data.stdout


def csv_rows(blob, **kw):
    return list(csv.DictReader(io.StringIO(blob.decode("utf-8-sig", errors="replace")), **kw))


# ---------------------------------------------------------------- cleaning

VERDICT = (
    r"salah|hoaks|hoax|hoaxs|disinformasi|misinformasi|klarifikasi|penipuan|keliru|"
    r"menyesatkan|cek fakta|cekfakta|fakta|benar|satire|parodi|konten [a-z ]+|awas hoaks|"
    r"berita|info|update"
)
LEAD_TAG = re.compile(r"^\s*[\[\(【]\s*(?:" + VERDICT + r")[^\]\)】]*[\]\)】]\s*[:\-–—|,]?\s*", re.I)
LEAD_WORD = re.compile(
    r"^\s*(?:awas\s+)?(?:hoaks|hoax|salah|keliru|klarifikasi|disinformasi|misinformasi|"
    r"cek fakta|penipuan|menyesatkan)\s*[:\-–—|,]\s*",
    re.I,
)
LEAD_MEDIA = re.compile(r"^\s*(?:live|breaking news|update)\s*[:|]\s*", re.I)
KLARIFIKASI = re.compile(r"\b(?:meng)?kl?a?r?i?fi?kasi(?:kan)?\b", re.I)
URL = re.compile(r"https?://\S+|www\.\S+|\bbit\.ly/\S+|pic\.twitter\.com/\S+")
RT = re.compile(r"^\s*RT\s+@\w+\s*:?\s*|@\w+")
SPACE = re.compile(r"\s+")
QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "\u00a0": " "})


def clean(text):
    t = unicodedata.normalize("NFC", str(text)).translate(QUOTES)
    t = URL.sub(" ", t)
    t = RT.sub(" ", t)
    for _ in range(3):
        t2 = LEAD_MEDIA.sub("", LEAD_WORD.sub("", LEAD_TAG.sub("", t)))
        if t2 == t:
            break
        t = t2
    t = SPACE.sub(" ", t).strip(" \"'-–—:|")
    return t


def plain(text):
    """The form two sources' authors left their text in: lowercase, letters,
    digits and single spaces only."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = re.sub(r"[^\w\s]|_", " ", t)
    return SPACE.sub(" ", t).strip()


def fnv64(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


# ---------------------------------------------------------------- parsers


def item(text, label, genre, **extra):
    return {"text": text, "label": label, "genre": genre, **extra}


def p_faiq(blobs, src):
    out = []
    for blob in blobs:
        for r in csv_rows(blob):
            lab = {"1": "hoax", "0": "not"}.get(r["True_Label"].strip())
            if lab:
                out.append(item(r["Text"], lab, src["genre"][lab]))
    return out


def p_covid_xlsx(blobs, src):
    import pandas as pd

    out = []
    for blob, f in zip(blobs, src["files"]):
        df = pd.read_excel(io.BytesIO(blob))
        lab = f["label"]
        for t in df["Judul"].dropna():
            out.append(item(str(t), lab, src["genre"][lab]))
    return out


def p_jibran(blobs, src):
    out = []
    # Semicolon-separated with unquoted commas and semicolons inside bodies:
    # the label and headline are the first two fields, the verdict sits in the body.
    for line in blobs[0].decode("utf-8", errors="replace").splitlines()[1:]:
        parts = line.split(";")
        if len(parts) < 3 or parts[0].strip() not in ("0", "1"):
            continue
        body = ";".join(parts[2:]).upper()
        m = re.search(r"\(KATEGORI\)\s*:\s*([A-Z ]+)", body)
        cat = m.group(1).strip() if m else ""
        lab = "hoax" if parts[0].strip() == "0" else "not"
        if cat:
            is_klar = cat.startswith("KLARIFIKASI")
            if is_klar != (lab == "not"):
                continue
        out.append(item(parts[1], lab, src["genre"][lab]))
    return out


def p_tweets(blobs, src):
    out = []
    for r in csv_rows(blobs[0]):
        v = r["Fakta / Hoax"].strip().lower()
        lab = "hoax" if v.startswith("hoa") else "not" if v.startswith("fakta") else None
        if lab:
            out.append(item(r["Tweet Text"], lab, "post"))
    return out


def p_komdigi(blobs, src):
    out = []
    for r in csv_rows(blobs[0]):
        t = re.sub(r"^\s*(?:hoaks|hoax)\s+", "", r["clean_title"] or "")
        out.append(item(t, "hoax", "fact_check_title"))
    return out


def p_hoax1k(blobs, src):
    out = []
    for r in csv_rows(blobs[0]):
        if r["status"].strip().lower() != "salah":
            continue
        out.append(item(r["title"], "hoax", "fact_check_title", year=r["tanggal"][:4]))
        out.append(item(r["content"], "hoax", "post", year=r["tanggal"][:4]))
    return out


def p_reynald(blobs, src):
    out = []
    for r in csv_rows(blobs[0]):
        if r["label"].strip() != "0" or r["flag"].strip().upper() not in ("SALAH", "PENIPUAN"):
            continue
        year = r["date"][-4:]
        out.append(item(r["title"], "hoax", "fact_check_title", year=year))
        out.append(item(r["text"], "hoax", "post", year=year))
    return out


def p_luthfi(blobs, src):
    out = []
    for r in csv_rows(blobs[0]):
        if r["classification"].strip().upper() not in ("SALAH", "PENIPUAN"):
            continue
        slug = r["url"].rstrip("/").rsplit("/", 1)[-1]
        slug = re.sub(r"^\d+-", "", slug)
        slug = re.sub(r"^(?:salah|penipuan|hoaks|hoax)-", "", slug)
        out.append(item(slug.replace("-", " "), "hoax", "fact_check_title", year=r["date"][-4:]))
    return out


def p_narasipal(blobs, src, per_outlet=600):
    out = []
    for blob, f in zip(blobs, src["files"]):
        outlet = Path(f["path"]).stem.split("_")[0]
        rows = [r for r in csv_rows(blob) if (r.get("article_title") or "").strip()]
        # A fixed-seed sample: rows ordered by a hash of their title.
        rows.sort(key=lambda r: fnv64(outlet + r["article_title"]))
        for r in rows[:per_outlet]:
            out.append(item(r["article_title"], "not", "news", outlet=outlet))
    return out


CORPUS_GENRE = {"election_news": "news", "official_info": "official"}


def p_corpus(files):
    out = []
    for f in files:
        for line in f.read_text().splitlines():
            if not line.strip():
                continue
            e = json.loads(line)
            out.append(
                item(
                    e["text"],
                    "hoax" if e["disinformation"] == 1 else "not",
                    CORPUS_GENRE.get(e["category"], "post"),
                    category=e["category"],
                    narrative=e["narrative"],
                    corpus_id=e["id"],
                )
            )
    return out


PARSERS = {
    "faiq": p_faiq,
    "covid_xlsx": p_covid_xlsx,
    "jibran": p_jibran,
    "tweets": p_tweets,
    "komdigi": p_komdigi,
    "hoax1k": p_hoax1k,
    "reynald": p_reynald,
    "luthfi": p_luthfi,
    "narasipal": p_narasipal,
}

# Sources whose authors lowercased and stripped punctuation: the others get
# the same form for this share of their rows, on both labels, so casing and
# punctuation say nothing about the label.
PREPROCESSED = {"tbh_cnn_faiq", "komdigi_reports", "tbh_2025_luthfi"}
PLAIN_SHARE = 30  # percent

def cap(rows, n):
    """At most n rows per (source, label), picked as `patroli train
    --max-per-source` picks them (FNV-1a 64 of the lowercased id)."""
    if not n:
        return rows
    groups = defaultdict(list)
    for r in rows:
        groups[(r["source"], r["label"])].append(r)
    out = []
    for k in sorted(groups):
        out += sorted(groups[k], key=lambda r: (fnv64(r["id"].strip().lower()), r["id"]))[:n]
    return out


# Test rows per (source, label) in test_capped.jsonl: a test set small enough
# to score on a shared 2-core machine, with every source represented.
TEST_CAP = 120

# ---------------------------------------------------------------- dedup


def shingles(t, k=4):
    t = f" {t} "
    return {t[i : i + k] for i in range(max(1, len(t) - k + 1))}


def near_duplicate_clusters(keys, threshold=0.7, bands=10, rows=3):
    """Union-find over MinHash-LSH candidates verified by char-4-gram Jaccard."""
    import numpy as np

    n = len(keys)
    sh = [shingles(k) for k in keys]
    rng = np.random.default_rng(20261128)
    p = (1 << 61) - 1
    a = rng.integers(1, p, bands * rows, dtype=np.uint64)
    b = rng.integers(0, p, bands * rows, dtype=np.uint64)
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    buckets = defaultdict(list)
    for i, s in enumerate(sh):
        hs = np.array([int(hashlib.blake2b(g.encode(), digest_size=7).hexdigest(), 16) for g in s], dtype=np.uint64)
        # (a*h + b) mod 2^64 as a family of permutations; min over shingles.
        sig = (np.outer(a, hs) + b[:, None]).min(axis=1)
        for band in range(bands):
            buckets[(band, sig[band * rows : (band + 1) * rows].tobytes())].append(i)
    for members in buckets.values():
        if len(members) < 2 or len(members) > 200:
            continue
        first = members[0]
        for j in members[1:]:
            ri, rj = find(first), find(j)
            if ri == rj:
                continue
            inter = len(sh[first] & sh[j])
            jac = inter / max(1, len(sh[first] | sh[j]))
            if jac >= threshold:
                parent[rj] = ri
    return [find(i) for i in range(n)]


def split_of(key):
    """70/15/15 by FNV-1a 64 of the key, identical to patroli_training::split_of."""
    h = fnv64(key.strip().lower()) % 100
    return "train" if h < 70 else "dev" if h < 85 else "test"


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirror", default=os.environ.get("PATROLI_MIRROR", "/work/.mirror"))
    ap.add_argument("--manifest", default=str(ROOT / "models/data/sources.json"))
    ap.add_argument("--corpus", default=str(ROOT / "models/data/corpus"))
    ap.add_argument("--out", default=str(ROOT / "models/data/build"))
    args = ap.parse_args()
    ensure_venv()

    manifest = json.loads(Path(args.manifest).read_text())
    mirror = Mirror(args.mirror)
    raw = []
    inputs = []
    for src in manifest["sources"]:
        if src["parser"] == "corpus":
            files = sorted(Path(args.corpus).glob("*.jsonl"))
            for f in files:
                inputs.append({"source": src["id"], "path": str(f.relative_to(ROOT)), "sha256": hashlib.sha256(f.read_bytes()).hexdigest()})
            rows = p_corpus(files)
        else:
            blobs = [mirror.read(src["repository"], src["commit"], f["path"], f["sha256"]) for f in src["files"]]
            for f in src["files"]:
                inputs.append({"source": src["id"], "repository": src["repository"], "commit": src["commit"], "path": f["path"], "sha256": f["sha256"]})
            rows = PARSERS[src["parser"]](blobs, src)
        for r in rows:
            r["source"] = src["id"]
        raw.append((src["id"], rows))

    counts = defaultdict(Counter)
    records = []
    for sid, rows in raw:
        for r in rows:
            counts[sid]["read_" + r["label"]] += 1
            t = clean(r["text"])
            if sid == "tbh_klarifikasi_jibran":
                t = SPACE.sub(" ", KLARIFIKASI.sub(" ", t)).strip()
            if len(plain(t).split()) < 3:
                counts[sid]["dropped_short"] += 1
                continue
            r["text"] = t
            r["key"] = plain(t)
            records.append(r)

    # Exact duplicates (on the plain form): identical texts with both labels
    # are contradictions and go; otherwise the first source in manifest order keeps it.
    by_key = defaultdict(list)
    for r in records:
        by_key[r["key"]].append(r)
    kept = []
    for key, group in by_key.items():
        labels = {r["label"] for r in group}
        if len(labels) > 1:
            for r in group:
                counts[r["source"]]["dropped_conflict"] += 1
            continue
        kept.append(group[0])
        for r in group[1:]:
            counts[r["source"]]["dropped_exact_dup"] += 1
    kept.sort(key=lambda r: (r["source"], r["key"]))

    clusters = near_duplicate_clusters([r["key"] for r in kept])
    members = defaultdict(list)
    for r, c in zip(kept, clusters):
        members[c].append(r)
    final = []
    for c, group in members.items():
        # One split per cluster: the corpus narrative's split when the
        # corpus is in it (so v1's test split stays put), else the cluster's.
        corpus = [r for r in group if r["source"] == "patroli_corpus"]
        split = split_of(corpus[0]["narrative"]) if corpus else split_of(min(r["key"] for r in group))
        seen_label = set()
        for r in sorted(group, key=lambda r: (r["source"] != "patroli_corpus", r["source"], r["key"])):
            # Near duplicates of the same label collapse to one; the corpus
            # keeps its narrative variants (they are its design).
            if r["label"] in seen_label and r["source"] != "patroli_corpus":
                counts[r["source"]]["dropped_near_dup"] += 1
                continue
            seen_label.add(r["label"])
            r["split"] = split
            r["cluster"] = min(x["key"] for x in group)[:60]
            final.append(r)

    out_rows = []
    for r in sorted(final, key=lambda r: (r["source"], r["key"])):
        text = r["text"]
        style = "as_found"
        if r["source"] not in PREPROCESSED | {"patroli_corpus"} and fnv64("plain:" + r["key"]) % 100 < PLAIN_SHARE:
            text, style = r["key"], "plain"
        rid = r.get("corpus_id") or f"{r['source']}-{fnv64(r['key']):016x}"
        o = {
            "id": rid,
            "text": text,
            "label": r["label"],
            "source": r["source"],
            "genre": r["genre"],
            "split": r["split"],
            "narrative": r.get("narrative") or "c-" + f"{fnv64(r['cluster']):016x}",
        }
        if "category" in r:
            o["category"] = r["category"]
        if style == "plain":
            o["form"] = "plain"
        out_rows.append(o)
        counts[r["source"]][f"{r['split']}_{r['label']}"] += 1

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    blobs = {}
    for name in ("train", "dev", "test"):
        blobs[name] = "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in out_rows if o["split"] == name)
        (out / f"{name}.jsonl").write_text(blobs[name])
    capped = cap([o for o in out_rows if o["split"] == "test"], TEST_CAP)
    (out / "test_capped.jsonl").write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in capped))
    all_text = blobs["train"] + blobs["dev"] + blobs["test"]
    (out / "all.jsonl").write_text(all_text)
    report = {
        "inputs": inputs,
        "output_sha256": hashlib.sha256(all_text.encode()).hexdigest(),
        "rows": len(out_rows),
        "per_source": {k: dict(sorted(v.items())) for k, v in counts.items()},
        "per_split": dict(Counter(f"{o['split']}_{o['label']}" for o in out_rows)),
    }
    (out / "manifest.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    print(json.dumps({"rows": report["rows"], "output_sha256": report["output_sha256"], "per_split": report["per_split"]}, indent=1))
    for sid, c in report["per_source"].items():
        print(f"{sid:24s} {dict(c)}")


if __name__ == "__main__":
    main()
