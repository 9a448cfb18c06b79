"""A transformers Trainer run, watched by trainground: python examples/transformers_loop.py RUN_DIR [EPOCHS]

A tiny BERT built from a config (nothing downloaded) on a made-up sentiment task with a
word-level vocabulary; 15 % of the labels are flipped on purpose.
"""

import sys

import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from trainground.data import WithIndex
from trainground.integrations.transformers import watch_trainer

rng = np.random.default_rng(0)
good, bad = ["good", "great", "fine", "lovely", "superb"], ["bad", "awful", "poor", "dull", "terrible"]
filler = ["the", "film", "was", "plot", "really", "acting", "quite", "and", "very", "story"]
vocab = {w: i for i, w in enumerate(["[PAD]", "[CLS]", *good, *bad, *filler])}


def sentence(label):
    words = list(rng.choice(filler, 6)) + list(rng.choice(good if label else bad, 2))
    rng.shuffle(words)
    ids = [vocab["[CLS]"]] + [vocab[w] for w in words]
    return torch.tensor(ids)


labels = rng.integers(0, 2, 800)
flip = rng.random(800) < 0.15
given = np.where(flip, 1 - labels, labels)
items = [{"input_ids": sentence(t), "attention_mask": torch.ones(9, dtype=torch.long), "labels": int(g)}
         for t, g in zip(labels, given)]
train_set, val_set = WithIndex(items[:700]), WithIndex(items[700:], offset=700)  # + "sample_index"

torch.manual_seed(0)
config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, max_position_embeddings=16, num_labels=2)
model = BertForSequenceClassification(config)
args = TrainingArguments(
    output_dir=sys.argv[1] + "-trainer", num_train_epochs=int(sys.argv[2]) if len(sys.argv) > 2 else 15,
    per_device_train_batch_size=32, learning_rate=1e-3, eval_strategy="epoch", save_strategy="no",
    report_to=[], remove_unused_columns=False, use_cpu=True, disable_tqdm=True, logging_strategy="no",
)
trainer = Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=val_set)
callback = watch_trainer(trainer, sys.argv[1], stop_early=True)  # + 1 line
trainer.train()

issues = callback.result.table[callback.result.table.is_label_issue]
found = np.isin(issues["index"], np.flatnonzero(flip)).sum()
print(f"{len(issues)} label issues flagged, {found} of them among the {flip.sum()} flipped labels")
