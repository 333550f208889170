"""Finetuning a pretrained GPT: classification, instructions, LoRA adapters, prompt formats.

- ``labelled.py``                labelled text from CSV, TSV, JSONL or the named ``sms-spam``
- (``config.ClassificationDataOptions``: where a classifier's data comes from, how it is prepared)
- ``classification_split.py``    class balancing and the seeded train/val/test split
- ``classification_data.py``     tokenized, padded tensors, batches and the data summary
- ``classifier.py``              the classifier (GPT body + head), what trains, the objective
- ``inference.py``               texts -> label probabilities with a finetuned classifier
- ``lora.py``                    low-rank adapters on the GPT's linear layers, GPT-2 names kept
- ``prompts.py``                 prompt formats as data (Alpaca, Phi-3), stored in checkpoints
- ``instructions.py``            instruction entries from JSON / JSONL or a named dataset; the split
- ``instruction_batches.py``     tokenized instructions; padding collate, length grouping, packing
"""
