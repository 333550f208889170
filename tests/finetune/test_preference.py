"""The DPO math: log-probabilities of masked sequences, and the loss with its oracles."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from scratchllm.finetune.preference import IGNORE_INDEX, dpo_loss, sequence_logprobs


def walkthrough_compute_logprobs(logits, labels, selection_mask):
    """The walkthrough's compute_logprobs (chapter 7's DPO notebook), written out as the oracle:
    labels and mask are the full sequences; it shifts them itself and averages."""
    labels, logits = labels[:, 1:], logits[:, :-1, :]
    selected = torch.gather(F.log_softmax(logits, -1), -1, labels.unsqueeze(-1)).squeeze(-1)
    mask = selection_mask[:, 1:].float()
    return (selected * mask).sum(-1) / mask.sum(-1)


def test_sequence_logprobs_equal_the_walkthroughs():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 11, (3, 7), generator=generator)
    logits = torch.randn(3, 7, 11, generator=generator)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 0, 0]])
    # ours: targets are the inputs shifted by one, IGNORE_INDEX where the walkthrough masks
    targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, IGNORE_INDEX)
    ours = sequence_logprobs(logits[:, :-1], targets)
    torch.testing.assert_close(ours, walkthrough_compute_logprobs(logits, ids, mask.bool()))
    total = sequence_logprobs(logits[:, :-1], targets, reduction="sum")
    expected = -F.cross_entropy(
        logits[:, :-1].transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none"
    ).sum(-1)
    torch.testing.assert_close(total, expected)


def test_the_loss_is_ln_2_when_the_policy_is_the_reference():
    generator = torch.Generator().manual_seed(1)
    chosen, rejected = torch.randn(5, generator=generator), torch.randn(5, generator=generator)
    for beta in (0.1, 0.5, 3.0):
        step = dpo_loss(chosen, rejected, chosen, rejected, beta=beta)
        assert step.loss.item() == pytest.approx(math.log(2))
        assert step.chosen_reward == step.rejected_reward == step.margin == 0.0


def test_a_case_computed_by_hand():
    # pair 1: chosen gains 0.5 over the reference, rejected loses 0.3: logit 0.8
    # pair 2: chosen loses 0.2, rejected gains 0.4: logit -0.6
    policy_chosen, reference_chosen = torch.tensor([-1.5, -2.2]), torch.tensor([-2.0, -2.0])
    policy_rejected, reference_rejected = torch.tensor([-3.3, -0.6]), torch.tensor([-3.0, -1.0])
    step = dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta=0.5)
    expected = (math.log(1 + math.exp(-0.4)) + math.log(1 + math.exp(0.3))) / 2  # -log sigmoid
    assert step.loss.item() == pytest.approx(expected, abs=1e-6)
    assert step.chosen_reward == pytest.approx((0.5 - 0.2) / 2)
    assert step.rejected_reward == pytest.approx((-0.3 + 0.4) / 2)
    assert step.margin == pytest.approx(0.15 - 0.05)
    assert step.accuracy == 0.5


def test_the_gradient_raises_chosen_and_lowers_rejected():
    policy_chosen = torch.tensor([-2.0], requires_grad=True)
    policy_rejected = torch.tensor([-2.0], requires_grad=True)
    reference = torch.tensor([-2.0])
    dpo_loss(policy_chosen, policy_rejected, reference, reference, beta=0.1).loss.backward()
    assert policy_chosen.grad.item() < 0 < policy_rejected.grad.item()  # descent: up, down
