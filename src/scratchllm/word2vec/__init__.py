"""Word2Vec: word embeddings trained from scratch, word vectors and their 2-D maps.

- ``words.py``       what a word is (``\\w+``, lowercased) and corpus -> sentences
- ``vocab.py``       vocabulary with min_count, subsampling, the unigram^0.75 noise distribution
- ``windows.py``     dynamic context windows, vectorised over a chunk of text
- ``model.py``       the two embedding tables and the skip-gram/CBOW updates (``Word2VecConfig``
                     lives in the torch-free ``scratchllm.config``, importable from here too)
- ``training.py``    ``train_word2vec``: jobs of text, worker threads, learning-rate decay, progress
- ``vectors.py``     ``WordVectors``: most_similar, similarity, analogy; our files and word2vec text
- ``projection.py``  PCA (and optional t-SNE) down to 2-D
- ``selection.py``   which words, or which tokens of a trained GPT, go on a map
"""

from scratchllm.word2vec.model import Word2Vec, Word2VecConfig
from scratchllm.word2vec.training import TrainingResult, train_word2vec
from scratchllm.word2vec.vectors import WordVectors
from scratchllm.word2vec.vocab import Vocabulary, keep_probabilities, noise_distribution
from scratchllm.word2vec.words import sentences, split_words

__all__ = [
    "TrainingResult",
    "Vocabulary",
    "Word2Vec",
    "Word2VecConfig",
    "WordVectors",
    "keep_probabilities",
    "noise_distribution",
    "sentences",
    "split_words",
    "train_word2vec",
]
