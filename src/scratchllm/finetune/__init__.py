"""Finetuning a pretrained GPT: labelled data for classification, LoRA adapters, prompt formats.

- ``labelled.py``                labelled text from CSV, TSV, JSONL or the named ``sms-spam``
- ``classification_options.py``  where a classifier's data comes from and how it is prepared
- ``classification_split.py``    class balancing and the seeded train/val/test split
- ``classification_data.py``     tokenized, padded tensors, batches and the data summary
- ``lora.py``                    low-rank adapters on the GPT's linear layers, GPT-2 names kept
- ``prompts.py``                 prompt formats as data (Alpaca, Phi-3), stored in checkpoints
"""
