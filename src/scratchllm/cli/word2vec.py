"""Word embeddings: ``word2vec train / similar / similarity / analogy`` and ``embed-plot``."""

from __future__ import annotations

import argparse
from pathlib import Path

from scratchllm.cli import options
from scratchllm.cli.config_flags import add_config_flags, given_fields
from scratchllm.config import MAP_POINTS, PROJECTION_METHODS, Word2VecConfig
from scratchllm.errors import ScratchLLMError

_VECTORS_HELP = (
    "word vectors: a folder `scratchllm word2vec train` wrote, or a word2vec text file "
    "(header line, then `word v1 v2 ...` per line)"
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    _add_word2vec_parser(commands)
    _add_embed_plot_parser(commands)


def _add_word2vec_parser(commands: argparse._SubParsersAction) -> None:
    word2vec = commands.add_parser(
        "word2vec",
        help="train word vectors with Word2Vec and query them",
        description="Word2Vec from scratch: skip-gram (or CBOW) with negative sampling. "
        "`train` learns one vector per word of a corpus; `similar`, `similarity` and "
        "`analogy` query saved vectors.",
    )
    actions = word2vec.add_subparsers(dest="word2vec_command", metavar="ACTION", required=True)
    train = actions.add_parser(
        "train",
        help="train word vectors on a corpus and save them",
        description="Split a corpus into words (runs of letters, digits and underscores, "
        "lowercased: identifiers such as os.path.join give os, path, join), keep words seen "
        "--min-count times, and train vectors in which words used in similar contexts end up "
        "close. Saves vectors.safetensors + vocab.json (ours) and vectors.txt (word2vec text "
        "format, readable by gensim and other tools).",
    )
    options.add_corpus_options(train)
    add_config_flags(train.add_argument_group("Word2VecConfig fields"), Word2VecConfig)
    train.add_argument(
        "--cbow",
        action="store_const",
        const="cbow",
        dest="architecture",
        default=argparse.SUPPRESS,
        help="short for --architecture cbow",
    )
    train.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="worker threads; 0 = the free CPU cores (default 0)",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    options.add_output_option(train, what="folder to save into")
    train.set_defaults(run=run_word2vec_train)

    similar = actions.add_parser(
        "similar",
        help="the nearest words to each given word",
        description="Print the words whose vectors are most cosine-similar to each WORD.",
    )
    similar.add_argument("words", nargs="+", metavar="WORD")
    similar.add_argument("--vectors", type=Path, required=True, help=_VECTORS_HELP)
    similar.add_argument("-k", type=int, default=10, help="neighbours per word (default 10)")
    similar.set_defaults(run=run_word2vec_similar)

    similarity = actions.add_parser(
        "similarity",
        help="the cosine similarity of two words",
        description="Print the cosine similarity of the vectors of A and B, from -1 to 1.",
    )
    similarity.add_argument("first", metavar="A")
    similarity.add_argument("second", metavar="B")
    similarity.add_argument("--vectors", type=Path, required=True, help=_VECTORS_HELP)
    similarity.set_defaults(run=run_word2vec_similarity)

    analogy = actions.add_parser(
        "analogy",
        help="solve A - B + C (king - man + woman ~ queen)",
        description="Print the words nearest to vector(A) - vector(B) + vector(C) (unit "
        "vectors; A, B and C themselves left out), e.g. `analogy king man woman`.",
    )
    analogy.add_argument("a", metavar="A")
    analogy.add_argument("b", metavar="B")
    analogy.add_argument("c", metavar="C")
    analogy.add_argument("--vectors", type=Path, required=True, help=_VECTORS_HELP)
    analogy.add_argument("-k", type=int, default=5, help="answers to show (default 5)")
    analogy.set_defaults(run=run_word2vec_analogy)


def _add_embed_plot_parser(commands: argparse._SubParsersAction) -> None:
    plot = commands.add_parser(
        "embed-plot",
        help="draw word or token embeddings as a labelled 2-D map",
        description="Project embeddings to 2-D (PCA of the unit-length vectors, or t-SNE) "
        "and draw them with their labels to an image: our Word2Vec vectors (--vectors) or the "
        "token-embedding table of a trained scratchllm checkpoint (--checkpoint). Words used "
        "alike land close together.",
        epilog="Example: scratchllm embed-plot --vectors vectors/ --words list,tuple,dict,set "
        "--words for,while,if,else -o map.png",
    )
    source = plot.add_mutually_exclusive_group(required=True)
    source.add_argument("--vectors", type=Path, help=_VECTORS_HELP)
    options.add_checkpoint_option(source, without="")
    plot.add_argument(
        "--words",
        action="append",
        metavar="W1,W2,...",
        help="words to draw, comma-separated; repeat the flag for groups of different colours "
        f"(default: the {MAP_POINTS} most frequent words, or tokens)",
    )
    plot.add_argument(
        "--top",
        type=int,
        default=MAP_POINTS,
        help=f"how many without --words (default {MAP_POINTS})",
    )
    options.add_corpus_options(
        plot,
        without="none; with --checkpoint, the corpus in which its most frequent tokens are "
        "drawn, else its first word tokens",
    )
    plot.add_argument(
        "--method",
        choices=PROJECTION_METHODS,
        default="pca",
        help="pca (default) or tsne (needs scikit-learn)",
    )
    options.add_seed_option(plot, default=0, seeds="t-SNE")
    plot.add_argument("--title", help="plot title (default: what was drawn, from where)")
    options.add_output_option(plot, what=options.IMAGE_OUTPUT_HELP, default=Path("embeddings.png"))
    plot.set_defaults(run=run_embed_plot)


def run_word2vec_train(args: argparse.Namespace) -> None:
    from scratchllm.runtime import auto_threads
    from scratchllm.word2vec import sentences, train_word2vec
    from scratchllm.word2vec.vectors import VOCAB_FILE

    config = Word2VecConfig(**given_fields(args, Word2VecConfig))
    options.check_output_folder(args.output, marker=VOCAB_FILE, kind="word-vectors folder")
    corpus = options.load_corpus(args)
    texts = (document.text for document in corpus.documents())
    result = train_word2vec(
        sentences(texts, lowercase=config.lowercase),
        config,
        workers=args.threads or auto_threads(),
        show_progress=not args.no_progress,
        log=print,
    )
    vectors = result.vectors
    vectors.metadata["corpus"] = corpus.name
    with options.writing_output(args.output):
        vectors.save(args.output)
    losses = ", ".join(f"{loss:.3f}" for loss in result.epoch_losses)
    print(
        f"trained {len(vectors):,} vectors of dim {vectors.dim} on {corpus.name}: "
        f"{result.words:,} words in {result.seconds:.1f} s ({result.words_per_second:,.0f} "
        f"words/s); loss per epoch: {losses}"
    )
    print(f"saved to {args.output} (vectors.safetensors + vocab.json, and vectors.txt)")
    print(f"try: scratchllm embed-plot --vectors {args.output}")


def run_word2vec_similar(args: argparse.Namespace) -> None:
    from scratchllm.word2vec import WordVectors

    vectors = WordVectors.load(args.vectors)
    for word in args.words:
        neighbours = vectors.most_similar(word, k=args.k)
        print(f"{word}: " + ", ".join(f"{other} {score:.3f}" for other, score in neighbours))


def run_word2vec_similarity(args: argparse.Namespace) -> None:
    from scratchllm.word2vec import WordVectors

    vectors = WordVectors.load(args.vectors)
    print(f"{vectors.similarity(args.first, args.second):.4f}")


def run_word2vec_analogy(args: argparse.Namespace) -> None:
    from scratchllm.word2vec import WordVectors

    vectors = WordVectors.load(args.vectors)
    answers = vectors.analogy(args.a, args.b, args.c, k=args.k)
    print(
        f"{args.a} - {args.b} + {args.c} ~ "
        + ", ".join(f"{word} {score:.3f}" for word, score in answers)
    )


def run_embed_plot(args: argparse.Namespace) -> None:
    from scratchllm.viz import embedding_map, image_format
    from scratchllm.word2vec.selection import parse_word_groups, token_points, word_points

    options.check_output_file(args.output, example="embeddings.png")
    image_format(args.output)  # an unsupported suffix fails now, not after the projection
    groups = parse_word_groups(args.words or [])
    if args.vectors is not None:
        if args.corpus is not None:
            raise ScratchLLMError(
                "--corpus ranks a checkpoint's tokens; with --vectors leave it out"
            )
        from scratchllm.word2vec import WordVectors

        points = word_points(WordVectors.load(args.vectors), groups=groups, top=args.top)
        source = str(args.vectors)
    else:
        from scratchllm.weights.checkpoint import load_checkpoint

        checkpoint = options.checkpoint_path(args.checkpoint)
        model, tokenizer = load_checkpoint(checkpoint)
        texts = None
        if args.corpus is not None:
            texts = (document.text for document in options.load_corpus(args).documents())
        points = token_points(model.wte.weight, tokenizer, groups=groups, texts=texts, top=args.top)
        source = f"token embeddings of {checkpoint}"
    count = len(points.labels)
    if groups:
        what = "chosen words"
    elif args.vectors is not None:
        what = f"the {count} most frequent words"
    elif args.corpus is not None:
        what = f"the {count} most frequent tokens in {args.corpus}"
    else:
        what = f"the first {count} word tokens"
    method = {"pca": "PCA", "tsne": "t-SNE"}[args.method]
    title = args.title or f"{what}, {source} ({method})"
    with options.writing_output(args.output):
        path = embedding_map(
            points.labels,
            points.vectors,
            args.output,
            groups=points.groups,
            method=args.method,
            seed=args.seed,
            title=title,
        )
    print(f"wrote {path} ({len(points.labels)} points)")
