"""A run's data: prepared token files, made on the fly from a corpus and a tokenizer spec.

``TrainConfig.data`` names a folder ``scratchllm prepare`` wrote; otherwise the run tokenizes
``TrainConfig.corpus`` with ``TrainConfig.tokenizer`` into its own ``data/`` folder once (rank
0 only; the other processes wait for it), and a resumed run reads that folder back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from scratchllm.config import DEFAULT_BPE_VOCAB, TrainConfig
from scratchllm.corpora import Corpus, load_corpus
from scratchllm.data.prepare import META_FILE, PreparedData, load_prepared, prepare
from scratchllm.errors import ConfigError, ScratchLLMError
from scratchllm.tokenizer import Tokenizer, get_tokenizer


def resolve_tokenizer(
    spec: str, *, corpus: Corpus | None, log: Callable[[str], None] | None = None
) -> Tokenizer:
    """A tokenizer from a spec: ``gpt2``, ``gpt2:PATH``, a saved folder, or ``bpe:N`` /
    ``simple``, which train one on ``corpus``."""
    from scratchllm.tokenizer import ENDOFTEXT, UNK, BPETokenizer, SimpleTokenizer

    kind, _, argument = spec.partition(":")
    if kind == "gpt2" and argument:
        return get_tokenizer("gpt2", path=argument)
    if kind not in ("bpe", "simple") or Path(spec).exists():
        return get_tokenizer(spec)
    if corpus is None:
        raise ScratchLLMError(
            f"--tokenizer {spec} trains a tokenizer on a corpus, which this command does not "
            f"take; train one with `scratchllm train-tokenizer` and pass its folder"
        )
    if kind == "simple":
        texts = (document.text for document in corpus.documents())
        return SimpleTokenizer.train(texts, special_tokens=(ENDOFTEXT, UNK))
    vocab_size = DEFAULT_BPE_VOCAB
    if argument:
        try:
            vocab_size = int(argument)
        except ValueError:
            raise ScratchLLMError(f"--tokenizer {spec}: {argument!r} is not a number") from None
    if log is not None:
        log(f"training a BPE tokenizer (vocab {vocab_size:,}) on {corpus.name}")
    return BPETokenizer.train(
        corpus, vocab_size, special_tokens=(ENDOFTEXT,), pattern="gpt2", show_progress=True
    )


def run_data(
    config: TrainConfig,
    data_dir: Path,
    *,
    tokenizer: Tokenizer | None = None,
    is_main: bool = True,
    wait: Callable[[], None] = lambda: None,
    log: Callable[[str], None] | None = None,
) -> PreparedData:
    """The run's prepared data: ``config.data``, else ``data_dir`` (prepared there if new).

    ``tokenizer`` (from an ``--init-from`` checkpoint) replaces ``config.tokenizer``; the data
    must then be tokenized by it. ``wait`` is the barrier the other processes wait at while
    rank 0 prepares.
    """
    if config.data:
        prepared = load_prepared(config.data)
    else:
        if is_main and not (data_dir / META_FILE).is_file():
            corpus = load_corpus(config.corpus)
            if tokenizer is None:
                tokenizer = resolve_tokenizer(config.tokenizer, corpus=corpus, log=log)
            report = prepare(
                corpus,
                tokenizer,
                data_dir,
                val_fraction=config.val_fraction,
                split=config.split,  # type: ignore[arg-type]  # checked by TrainConfig
                show_progress=log is not None,
            )
            if log is not None:
                log(report.summary())
        wait()
        prepared = load_prepared(data_dir)
    if tokenizer is not None and prepared.tokenizer.fingerprint != tokenizer.fingerprint:
        raise ConfigError(
            f"the data in {prepared.report.directory} was tokenized with another tokenizer "
            f"({prepared.report.tokenizer}) than the --init-from checkpoint's; prepare it with "
            "that checkpoint's tokenizer folder"
        )
    return prepared
