"""Weights in and out: the Hugging Face GPT-2 name map (and, later, our checkpoints)."""

from scratchllm.weights.hf_gpt2 import from_hf_state_dict, to_hf_state_dict

__all__ = ["from_hf_state_dict", "to_hf_state_dict"]
