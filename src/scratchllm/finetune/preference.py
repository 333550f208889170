"""Preference tuning with DPO: the math, as pure functions of log-probabilities.

Direct Preference Optimization (Rafailov et al. 2023, "Direct Preference Optimization: Your
Language Model is Secretly a Reward Model") tunes a policy on pairs of responses to one prompt,
one *chosen* and one *rejected*, against a frozen *reference* model (the starting checkpoint).
With ``log pi(y | x)`` the policy's log-probability of a response and ``log ref(y | x)`` the
reference's, each pair's loss is

    -log sigmoid(beta * [(log pi(chosen) - log ref(chosen))
                         - (log pi(rejected) - log ref(rejected))])

so the policy gains where it raises the chosen response more than the rejected one, relative to
where it started; ``beta`` sets how far it may move. The walkthrough's chapter-7 DPO notebook
computes exactly this, with two conventions we keep as its defaults:

- a response's log-probability is the **mean** over its tokens (``reduction="mean"``), not the
  paper's sum (``"sum"`` is offered);
- the rewards it tracks are ``log pi - log ref`` without ``beta``.

With the policy equal to the reference every pair's logit is 0 and the loss is ``ln 2``: the
first oracle of the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from scratchllm.finetune.instruction_batches import IGNORE_INDEX  # prompt and padding targets


def sequence_logprobs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    reduction: Literal["mean", "sum"] = "mean",
) -> torch.Tensor:
    """Each sequence's log-probability of its targets ``(B,)`` from logits ``(B, T, V)`` and
    targets ``(B, T)`` (the inputs shifted by one; ``IGNORE_INDEX`` where nothing is scored):
    the mean over the scored tokens (the walkthrough's) or their sum (the paper's).

    >>> logits = torch.log(torch.tensor([[[0.5, 0.5], [0.25, 0.75]]]))
    >>> round(sequence_logprobs(logits, torch.tensor([[0, 1]]), reduction="sum").item(), 4)
    -0.9808
    >>> round(sequence_logprobs(logits, torch.tensor([[0, -100]])).item(), 4)  # log 0.5
    -0.6931
    """
    scored = targets != IGNORE_INDEX
    safe_targets = targets.masked_fill(~scored, 0)  # any valid id; masked out below
    token_logprobs = torch.gather(
        F.log_softmax(logits.float(), dim=-1), -1, safe_targets.unsqueeze(-1)
    ).squeeze(-1)  # (B, T)
    total = (token_logprobs * scored).sum(-1)
    if reduction == "sum":
        return total
    return total / scored.sum(-1).clamp(min=1)


@dataclass(frozen=True)
class DPOStep:
    """The DPO loss of a batch and what to watch while it trains (means over the batch)."""

    loss: torch.Tensor  # scalar, differentiable
    chosen_reward: float  # mean of log pi(chosen) - log ref(chosen)
    rejected_reward: float  # mean of log pi(rejected) - log ref(rejected)
    accuracy: float  # share of pairs whose chosen reward beats the rejected one

    @property
    def margin(self) -> float:
        """The mean reward margin, chosen minus rejected."""
        return self.chosen_reward - self.rejected_reward


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    *,
    beta: float = 0.1,
) -> DPOStep:
    """The DPO loss over a batch of pairs from four ``(B,)`` log-probabilities (see the module
    docstring); rewards and accuracy are detached, for logging.

    >>> same = torch.tensor([-1.0, -2.0])
    >>> round(dpo_loss(same, same - 1, same, same - 1).loss.item(), 4)  # policy = reference
    0.6931
    """
    chosen_rewards = policy_chosen - reference_chosen
    rejected_rewards = policy_rejected - reference_rejected
    logits = chosen_rewards - rejected_rewards  # the policy's log-ratio gain over the reference
    loss = -F.logsigmoid(beta * logits).mean()
    chosen, rejected = chosen_rewards.detach(), rejected_rewards.detach()
    return DPOStep(
        loss=loss,
        chosen_reward=float(chosen.mean()),
        rejected_reward=float(rejected.mean()),
        accuracy=float((chosen > rejected).float().mean()),
    )
