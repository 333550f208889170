"""Finetuning a pretrained GPT: LoRA adapters and prompt formats (more objectives to come).

- ``lora.py``     low-rank adapters on the GPT's linear layers, GPT-2 names kept; merge
- ``prompts.py``  prompt formats as data (Alpaca, Phi-3), stored by name in checkpoints
"""
