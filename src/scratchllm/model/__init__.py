"""The model: input embeddings (and, in later stages, attention and the GPT)."""

from scratchllm.model.embeddings import InputEmbeddings

__all__ = ["InputEmbeddings"]
