"""Finetuning a pretrained GPT: classification, instructions, LoRA adapters, prompt formats.

- ``labelled.py``                labelled text from CSV, TSV, JSONL or the named ``sms-spam``
- (``config.ClassificationDataOptions``: where a classifier's data comes from, how it is prepared)
- ``classification_split.py``    class balancing and the seeded train/val/test split
- ``classification_data.py``     tokenized, padded tensors, batches and the data summary
- ``classifier.py``              the classifier (GPT body + head), what trains, the objective
- ``inference.py``               texts -> label probabilities with a finetuned classifier
- ``lora.py``                    low-rank adapters on the GPT's linear layers, GPT-2 names kept
- ``prompts.py``                 prompt formats as data (Alpaca, Phi-3), stored in checkpoints;
                                 whole conversations as prompts (``render_chat``, chat and server)
- ``instruct.py``                instruction finetuning as an objective of the run machinery
- ``dpo.py``                     preference tuning (DPO) as an objective, with a frozen reference
- ``preference.py``              the DPO math: sequence log-probabilities, loss, rewards
- ``responses.py``               an instruction model's responses (the answer after the prompt)
- ``text_scores.py``             exact match and ROUGE-L of responses against references (no judge)
- ``instructions.py``            instruction entries from JSON / JSONL or a named dataset; the split
- ``instruction_batches.py``     tokenized instructions; padding collate, length grouping, packing
"""
