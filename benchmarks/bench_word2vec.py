"""Word2Vec: ours (PyTorch, from scratch) vs gensim's optimized C, on speed and on agreement.

Both train skip-gram with negative sampling with the same settings (dim 100, window 5, 5
negatives, min_count 5, sample 1e-3, alpha 0.025 -> 0.0001, 5 epochs) on the same sentences
(``scratchllm.word2vec.sentences``: lowercased ``\\w+`` words, documents cut at 10,000 words),
on the same number of threads (``workers`` threads for both; ours run torch with one intra-op
thread each).

- **speed**: words of text x epochs / wall time of the whole call, from the list of sentences
  to trained vectors (vocabulary building included, for both). Each side runs twice (seeds 1
  and 2), interleaved, and the faster run counts. Target: ours >= 0.3x gensim.
- **agreement**: for the 200 most frequent words, the share of their 10 nearest neighbours
  (cosine, over the words both vocabularies share) that two models have in common, averaged.
  ``ours vs gensim`` compares our seed-1 run with gensim's seed-1 run; the ceiling is gensim
  seed 1 vs gensim seed 2, the agreement of gensim with itself. Target: ours-vs-gensim >= 0.8x
  gensim-vs-gensim.

    python benchmarks/bench_word2vec.py --threads 2          # python-docs and python-stdlib
    python benchmarks/bench_word2vec.py --quick              # python-docs and a 2 MB stdlib slice
"""

from __future__ import annotations

import argparse

from _common import (
    corpus_documents,
    load_average,
    machine_line,
    megabytes,
    pin_threads,
    print_table,
    timed,
)

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--quick", action="store_true", help="python-docs and a 2 MB stdlib slice")
parser.add_argument("--threads", type=int, default=2, help="threads for both sides (default 2)")
parser.add_argument("--epochs", type=int, default=5, help="epochs for both sides (default 5)")
parser.add_argument("--top", type=int, default=200, help="most frequent words compared")
parser.add_argument("--neighbours", type=int, default=10, help="neighbours per word")
ARGS = parser.parse_args()
THREADS = pin_threads(ARGS.threads)

import gensim  # noqa: E402
import torch  # noqa: E402
from gensim.models import Word2Vec as GensimWord2Vec  # noqa: E402

from scratchllm.word2vec import Word2VecConfig, WordVectors, sentences, train_word2vec  # noqa: E402

TARGET_SPEED = 0.3
TARGET_AGREEMENT = 0.8
SEEDS = (1, 2)


def settings(seed: int) -> Word2VecConfig:
    return Word2VecConfig(epochs=ARGS.epochs, seed=seed)  # the other fields: gensim's defaults


def train_gensim(corpus: list[list[str]], seed: int) -> WordVectors:
    config = settings(seed)
    model = GensimWord2Vec(
        sentences=corpus,
        vector_size=config.dim,
        window=config.window,
        negative=config.negative,
        min_count=config.min_count,
        sample=config.sample,
        alpha=config.alpha,
        min_alpha=config.min_alpha,
        epochs=config.epochs,
        sg=1,
        hs=0,
        workers=THREADS,
        seed=seed,
    )
    words = list(model.wv.index_to_key)
    return WordVectors(words, torch.from_numpy(model.wv.vectors.copy()))


def train_ours(corpus: list[list[str]], seed: int) -> WordVectors:
    return train_word2vec(corpus, settings(seed), workers=THREADS).vectors


def neighbour_sets(vectors: WordVectors, words: list[str], shared: list[str], k: int) -> list:
    """The k nearest words (among ``shared``) of each word in ``words``, as sets."""
    rows = torch.tensor([vectors.index(word) for word in shared])
    unit = vectors.unit_vectors()[rows]  # (n_shared, D)
    position = {word: index for index, word in enumerate(shared)}
    queries = unit[[position[word] for word in words]]  # (n_words, D)
    scores = queries @ unit.T
    scores[torch.arange(len(words)), [position[word] for word in words]] = -torch.inf
    top = scores.topk(k, dim=1).indices
    return [{shared[index] for index in row} for row in top.tolist()]


def agreement(first: WordVectors, second: WordVectors, words: list[str], shared: list[str]):
    k = ARGS.neighbours
    pairs = zip(
        neighbour_sets(first, words, shared, k),
        neighbour_sets(second, words, shared, k),
        strict=True,
    )
    return sum(len(a & b) for a, b in pairs) / (k * len(words))


def compare(name: str, documents: list[str]) -> tuple[list[str], list[str]]:
    corpus = list(sentences(documents))
    words = sum(len(sentence) for sentence in corpus) * ARGS.epochs
    runs: dict[str, list[tuple[float, WordVectors]]] = {"gensim": [], "ours": []}
    for seed in SEEDS:  # interleaved, so both sides see the same machine load
        runs["gensim"].append(timed(lambda seed=seed: train_gensim(corpus, seed)))
        runs["ours"].append(timed(lambda seed=seed: train_ours(corpus, seed)))
    gensim_s = min(seconds for seconds, _ in runs["gensim"])
    ours_s = min(seconds for seconds, _ in runs["ours"])
    (gensim_1, gensim_2), (ours_1, ours_2) = (
        [vectors for _, vectors in runs[side]] for side in ("gensim", "ours")
    )
    shared = [word for word in ours_1.words if word in gensim_1 and word in gensim_2]
    top = shared[: ARGS.top]  # ours are ordered by falling count
    ceiling = agreement(gensim_1, gensim_2, top, shared)
    ours_vs_gensim = agreement(ours_1, gensim_1, top, shared)
    ours_vs_ours = agreement(ours_1, ours_2, top, shared)
    speed_row = [
        name,
        f"{megabytes(documents):.2f}",
        f"{words // ARGS.epochs:,}",
        f"{len(shared):,}",
        f"{gensim_s:.1f}",
        f"{ours_s:.1f}",
        f"{words / gensim_s:,.0f}",
        f"{words / ours_s:,.0f}",
        f"{gensim_s / ours_s:.2f}x",
    ]
    quality_row = [
        name,
        f"{ceiling:.3f}",
        f"{ours_vs_gensim:.3f}",
        f"{ours_vs_ours:.3f}",
        f"{ours_vs_gensim / ceiling:.2f}x",
    ]
    return speed_row, quality_row


def main() -> None:
    load_before = load_average()
    corpora = [
        ("python-docs", corpus_documents("python-docs")),
        (
            "python-stdlib (2 MB slice)" if ARGS.quick else "python-stdlib",
            corpus_documents("python-stdlib", max_bytes=2_000_000 if ARGS.quick else None),
        ),
    ]
    rows = [compare(name, documents) for name, documents in corpora]
    print(
        f"# Word2Vec skip-gram: ours (PyTorch {torch.__version__}) vs gensim {gensim.__version__}"
    )
    print(machine_line(THREADS, load_before))
    print(
        f"settings: {settings(1)}; speed = words x epochs / wall time (vocabulary included), "
        f"faster of 2 runs; agreement = mean top-{ARGS.neighbours} neighbour overlap of the "
        f"{ARGS.top} most frequent words; targets: speed >= {TARGET_SPEED}x gensim, agreement "
        f">= {TARGET_AGREEMENT}x gensim-vs-gensim\n"
    )
    print_table(
        [
            "corpus",
            "MB",
            "words",
            "vocab",
            "gensim s",
            "ours s",
            "gensim words/s",
            "ours words/s",
            "ours/gensim speed",
        ],
        [speed for speed, _ in rows],
    )
    print()
    print_table(
        [
            "corpus",
            "gensim vs gensim (ceiling)",
            "ours vs gensim",
            "ours vs ours",
            "ours-vs-gensim / ceiling",
        ],
        [quality for _, quality in rows],
    )


if __name__ == "__main__":
    main()
