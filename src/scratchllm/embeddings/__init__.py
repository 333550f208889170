"""Word embeddings: Word2Vec trained from scratch, word vectors and their 2-D maps.

- ``words.py``       what a word is (``\\w+``, lowercased) and corpus -> sentences
- ``vocab.py``       vocabulary with min_count, subsampling, the unigram^0.75 noise distribution
- ``windows.py``     dynamic context windows, vectorised over a chunk of text
- ``word2vec.py``    ``Word2VecConfig``; the two embedding tables and the skip-gram/CBOW updates
- ``training.py``    ``train_word2vec``: jobs of text, worker threads, learning-rate decay, progress
- ``vectors.py``     ``WordVectors``: most_similar, similarity, analogy; our files and word2vec text
- ``projection.py``  PCA (and optional t-SNE) down to 2-D
- ``selection.py``   which words, or which tokens of a trained GPT, go on a map
"""

from scratchllm.embeddings.training import TrainingResult, train_word2vec
from scratchllm.embeddings.vectors import WordVectors
from scratchllm.embeddings.vocab import Vocabulary, keep_probabilities, noise_distribution
from scratchllm.embeddings.word2vec import Word2Vec, Word2VecConfig
from scratchllm.embeddings.words import sentences, split_words

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
