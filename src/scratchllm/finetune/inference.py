"""Using a finetuned classifier: texts in, each label's probability out.

Texts are encoded as in training: cut to the padded length the classifier was trained with
(``pad_length`` in its checkpoint), and padded with ``<|endoftext|>``. A head that reads the
``"last"`` position is only right on texts padded to that same length (the position it learned
to read); a ``"last-token"`` head reads each text's last real token, so padding does not matter.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from scratchllm.errors import CheckpointError
from scratchllm.finetune.classification_data import pad_and_truncate
from scratchllm.finetune.classifier import Classifier
from scratchllm.weights.checkpoint import Checkpoint


@torch.no_grad()
def classify_texts(
    checkpoint: Checkpoint, texts: Sequence[str], *, batch_size: int = 16
) -> list[dict[str, float]]:
    """Each text's label probabilities (a dict in label order) under ``checkpoint``'s head."""
    if checkpoint.head is None or checkpoint.head_config is None:
        raise CheckpointError(
            f"{checkpoint.path} has no classification head: it is a language model; "
            "use `scratchllm generate`, or finetune it with `scratchllm finetune classify`"
        )
    tokenizer, config = checkpoint.tokenizer, checkpoint.head_config
    context = checkpoint.model.config.context_length
    pad_length = min(int(checkpoint.metadata.get("pad_length") or context), context)
    pad_id = tokenizer.eot_id if tokenizer.eot_id is not None else 0
    classifier = Classifier(checkpoint.model, checkpoint.head, config).eval()
    device = next(classifier.parameters()).device
    results: list[dict[str, float]] = []
    for start in range(0, len(texts), batch_size):
        # as in training (finetune/classification_data.py): special-token text is plain text
        encoded = [tokenizer.encode_ordinary(text) or [pad_id] for text in texts[start :
                   start + batch_size]]  # fmt: skip
        width = pad_length if config.position == "last" else min(pad_length, max(map(len, encoded)))
        ids, lengths = pad_and_truncate(encoded, length=width, pad_id=pad_id)
        probabilities = torch.softmax(classifier(ids.to(device), lengths).float(), dim=-1)
        for row in probabilities.tolist():
            results.append(dict(zip(config.label_names, row, strict=True)))
    return results
