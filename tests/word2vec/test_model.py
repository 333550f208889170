"""Word2Vec training: words that share contexts end up closer than words that do not."""

from __future__ import annotations

import itertools

import pytest
import torch

from scratchllm.errors import ConfigError, DataLengthError
from scratchllm.word2vec import Word2VecConfig, train_word2vec
from scratchllm.word2vec.model import Word2Vec, linear_learning_rate

# small and fast: 10 target words, ~10k words of text; sample=0 keeps every occurrence
TINY = Word2VecConfig(dim=16, window=2, negative=4, min_count=1, sample=0.0, epochs=4, seed=3)


def mean_similarity(vectors, pairs) -> float:
    return sum(vectors.similarity(a, b) for a, b in pairs) / len(pairs)


def group_margin(vectors, corpus) -> float:
    """Mean cosine within the two groups minus the mean cosine across them."""
    animals, tools = corpus.animals, corpus.tools
    within = [*itertools.combinations(animals, 2), *itertools.combinations(tools, 2)]
    across = list(itertools.product(animals, tools))
    return mean_similarity(vectors, within) - mean_similarity(vectors, across)


@pytest.mark.parametrize("architecture", ["skipgram", "cbow"])
def test_words_sharing_contexts_end_up_closer(synthetic, architecture):
    config = TINY.replace(architecture=architecture)
    result = train_word2vec(synthetic.sentences, config)
    vectors = result.vectors
    # measured over seeds 1-5: skip-gram 0.64-0.70, CBOW 0.43-0.51; untrained tables 0.01-0.18
    assert group_margin(vectors, synthetic) > 0.3
    targets = synthetic.animals + synthetic.tools
    for animal in synthetic.animals:  # every animal's nearest target word is another animal
        others = [(vectors.similarity(animal, word), word) for word in targets if word != animal]
        assert max(others)[1] in synthetic.animals
    assert result.epoch_losses[-1] < result.epoch_losses[0]


def test_untrained_tables_show_no_such_structure(synthetic):
    """The control for the margin above: the same check on initial vectors."""
    from scratchllm.word2vec import Vocabulary, WordVectors

    vocabulary = Vocabulary.build(synthetic.sentences, min_count=1)
    model = Word2Vec(len(vocabulary), 16, generator=torch.Generator().manual_seed(3))
    vectors = WordVectors(vocabulary.words, model.input_vectors.weight)
    assert abs(group_margin(vectors, synthetic)) < 0.1  # 0.011 for this seed
    assert model.output_vectors.weight.abs().sum() == 0  # word2vec starts the outputs at zero


def test_one_worker_is_reproducible_and_seeds_matter(synthetic):
    first = train_word2vec(synthetic.sentences[:300], TINY).vectors.vectors
    again = train_word2vec(synthetic.sentences[:300], TINY).vectors.vectors
    other = train_word2vec(synthetic.sentences[:300], TINY.replace(seed=4))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other.vectors.vectors)


def test_two_workers_train_as_well(synthetic):
    result = train_word2vec(synthetic.sentences, TINY, workers=2)
    assert group_margin(result.vectors, synthetic) > 0.3
    assert result.words == sum(map(len, synthetic.sentences)) * TINY.epochs
    assert result.words_per_second > 0


def test_the_vocabulary_order_and_metadata_travel_with_the_vectors(synthetic):
    vectors = train_word2vec(synthetic.sentences[:200], TINY).vectors
    assert vectors.words[0] == "the"  # the most frequent word comes first
    assert vectors.counts == sorted(vectors.counts, reverse=True)
    assert vectors.metadata["word2vec"]["dim"] == 16


def test_too_small_a_corpus_is_a_clear_error():
    with pytest.raises(DataLengthError, match="min_count=5"):
        train_word2vec([["just", "a", "few", "words"]], Word2VecConfig())


def test_linear_learning_rate_decays_from_alpha_to_min_alpha():
    rates = [linear_learning_rate(p, alpha=0.025, min_alpha=0.0001) for p in (0, 0.5, 1, 2)]
    assert rates == pytest.approx([0.025, 0.01255, 0.0001, 0.0001])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dim", 0, "dim must be a positive integer"),
        ("window", 1.5, "window must be a positive integer"),
        ("negative", True, "negative must be a positive integer"),
        ("sample", -0.1, "sample must be a non-negative number"),
        ("alpha", 0.0, "alpha must be positive"),
        ("min_alpha", 0.5, "must not exceed alpha"),
        ("architecture", "glove", "architecture must be one of"),
    ],
)
def test_config_rejects_bad_values(field, value, message):
    with pytest.raises(ConfigError, match=message):
        Word2VecConfig(**{field: value})


def test_workers_must_be_positive(synthetic):
    with pytest.raises(ConfigError, match="workers"):
        train_word2vec(synthetic.sentences, TINY, workers=0)


def batch_for_step(seed: int = 0):
    """A random batch: 4 centers, 2 context slots each (one padding slot), 3 noise words."""
    generator = torch.Generator().manual_seed(seed)
    model = Word2Vec(12, 5, generator=generator)
    model.output_vectors.weight.normal_(0, 0.3, generator=generator)  # nonzero, unsaturated
    contexts = torch.tensor([[1, 2], [3, 3], [2, 5], [7, 1]])
    slots = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    targets = torch.tensor([[0, 4, 4, 9], [6, 6, 1, 2], [8, 0, 3, 11], [10, 2, 5, 6]])
    noise_weights = (targets != targets[:, :1]).float()
    noise_weights[:, 0] = 1.0  # [1, 6] is skipped: the noise word is the center
    return model, contexts, slots, targets, noise_weights


def autograd_loss(inputs, outputs, contexts, slots, targets, noise_weights, *, cbow=False):
    """The negative-sampling loss written plainly, for torch to differentiate."""
    total = torch.zeros(())
    for row in range(len(targets)):
        real = [contexts[row, slot] for slot in range(contexts.shape[1]) if slots[row, slot]]
        vectors = [inputs[word] for word in real]
        if cbow:
            vectors = [torch.stack(vectors).mean(0)]
        for vector in vectors:
            for column, target in enumerate(targets[row]):
                sign = 1.0 if column == 0 else -1.0
                loss = -torch.nn.functional.logsigmoid(sign * (vector @ outputs[target]))
                total = total + noise_weights[row, column] * loss
    return total


@pytest.mark.parametrize("architecture", ["skipgram", "cbow"])
def test_one_step_is_gradient_descent_on_the_loss(architecture):
    """torch's autograd as the oracle for the hand-written updates."""
    model, contexts, slots, targets, noise_weights = batch_for_step()
    inputs = model.input_vectors.weight.clone().requires_grad_(True)
    outputs = model.output_vectors.weight.clone().requires_grad_(True)
    cbow = architecture == "cbow"
    expected_loss = autograd_loss(
        inputs, outputs, contexts, slots, targets, noise_weights, cbow=cbow
    )
    expected_loss.backward()
    lr = 0.1
    step = model.cbow_step if cbow else model.skipgram_step
    loss = step(contexts, slots, targets, noise_weights, lr)
    assert loss.item() == pytest.approx(expected_loss.item(), rel=1e-5)
    torch.testing.assert_close(model.output_vectors.weight, outputs.detach() - lr * outputs.grad)
    input_gradient = inputs.grad
    if cbow:  # word2vec gives every context word the whole update of the mean, not 1/count of it
        counts = torch.zeros(12)
        for row in range(len(contexts)):
            for word in {int(w) for w, s in zip(contexts[row], slots[row], strict=True) if s}:
                counts[word] = slots[row].sum()  # a word seen twice here: same-size windows
        input_gradient = input_gradient * counts.clamp(min=1).unsqueeze(1)
    torch.testing.assert_close(model.input_vectors.weight, inputs.detach() - lr * input_gradient)
