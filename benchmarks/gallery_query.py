"""Face-gallery query time: `Gallery.match` against a plain baseline, for 1k and 10k enrolled embeddings.

    python benchmarks/gallery_query.py [--json out.json]

Galleries of N embeddings (5 per person, sizes 64 and 512) in a temporary SQLite file; one query at a
time, as the app asks. The baseline is what one would write without the gallery's precomputation:
normalise the stored rows for every query, then the best row per person by a Python loop over people.
Warmed up; medians of repeated runs in this process. BLAS runs single-threaded (set before NumPy is
imported): on a busy 2-core board a multi-threaded BLAS matrix-vector product swings from 1 ms to 20 ms
with the other threads' load, and the app's pipeline threads are that load.
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path

import numpy as np  # noqa: E402

from edgert.apps.surveillance.faces.gallery import Gallery  # noqa: E402

PER_PERSON = 5


def _median_ms(fn, queries, repeats: int) -> float:
    for q in queries[:10]:
        fn(q)
    times = []
    for _ in range(repeats):
        for q in queries:
            t = time.perf_counter()
            fn(q)
            times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def _baseline(names, vectors):
    people = sorted(set(names))
    rows = {p: [i for i, n in enumerate(names) if n == p] for p in people}

    def match(q):
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        sim = unit @ (q / np.linalg.norm(q))
        best = {p: float(sim[idx].max()) for p, idx in rows.items()}
        return max(best, key=best.get)
    return match


def run(n: int, dim: int, repeats: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    names = [f"person {i // PER_PERSON}" for i in range(n)]
    queries = rng.normal(size=(50, dim)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp, Gallery.open(Path(tmp) / "g.sqlite3", "bench:1", dim) as g:
        t = time.perf_counter()
        for p in range(n // PER_PERSON):
            g.add(f"person {p}", vectors[p * PER_PERSON:(p + 1) * PER_PERSON])
        enrol_s = time.perf_counter() - t
        gallery_ms = _median_ms(g.match, queries, repeats)
        base = _baseline(names, vectors)
        base_ms = _median_ms(base, queries, max(1, repeats // 4))
        assert all(g.match(q).best == base(q) for q in queries[:10])
    return {"embeddings": n, "dim": dim, "people": n // PER_PERSON, "gallery_ms": round(gallery_ms, 4),
            "baseline_ms": round(base_ms, 4), "speedup": round(base_ms / gallery_ms, 1),
            "enrol_s_total": round(enrol_s, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--repeats", type=int, default=8)
    args = ap.parse_args()
    rows = [run(n, dim, args.repeats) for n in (1000, 10000) for dim in (64, 512)]
    for r in rows:
        print(f"{r['embeddings']:>6} x {r['dim']:<4} gallery {r['gallery_ms']:8.3f} ms  baseline "
              f"{r['baseline_ms']:8.3f} ms  x{r['speedup']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
