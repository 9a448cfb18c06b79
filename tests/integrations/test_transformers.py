"""The transformers callback on a tiny BERT built from a config (nothing downloaded)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

transformers = pytest.importorskip("transformers")

from trainground.data import WithIndex  # noqa: E402
from trainground.errors import ConfigError  # noqa: E402
from trainground.integrations.transformers import IndexCollator, watch_trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _items(n, seed=0):
    # Word-level "sentences": class 1 contains token 3, class 0 token 4; the rest is filler.
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    items = []
    for y in labels:
        ids = rng.integers(5, 20, 8)
        ids[rng.integers(0, 8)] = 3 if y else 4
        items.append({"input_ids": torch.tensor([1, *ids]), "attention_mask": torch.ones(9, dtype=torch.long),
                      "labels": int(y)})
    return items


def _trainer(tmp_path, *, epochs=2, remove_unused_columns=False, save="no"):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=16, num_labels=2)
    model = transformers.BertForSequenceClassification(config)
    items = _items(160)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "trainer"), num_train_epochs=epochs, per_device_train_batch_size=16,
        learning_rate=1e-3, eval_strategy="epoch", save_strategy=save, report_to=[],
        remove_unused_columns=remove_unused_columns, use_cpu=True, disable_tqdm=True, logging_strategy="no",
    )
    return transformers.Trainer(model=model, args=args, train_dataset=WithIndex(items[:120]),
                                eval_dataset=WithIndex(items[120:], offset=120))


def test_trainer_run_records_every_sample_and_writes_the_run(tmp_path):
    trainer = _trainer(tmp_path)
    seen, forwarded = [], []
    trainer.model.register_forward_pre_hook(lambda m, a, kw: seen.append(set(kw)), with_kwargs=True, prepend=True)
    original = trainer.model.forward

    def forward(*args, **kwargs):
        forwarded.append(set(kwargs))
        return original(*args, **kwargs)

    trainer.model.forward = forward
    callback = watch_trainer(trainer, tmp_path / "run")
    trainer.train()
    assert isinstance(trainer.data_collator, IndexCollator)
    for name in ("sample_issues.csv", "findings.json", "report.html", "samples.parquet"):
        assert (tmp_path / "run" / name).exists(), name
    table = pd.read_csv(tmp_path / "run" / "sample_issues.csv")
    assert sorted(table["index"]) == list(range(160))
    records = pd.read_parquet(tmp_path / "run" / "samples.parquet")
    assert records[records.split == 0].groupby("epoch")["index"].nunique().tolist() == [120, 120]
    assert records[records.split == 1].groupby("epoch")["index"].nunique().tolist() == [40, 40]
    assert callback.session is not None and len(callback.session.state.history) == 2
    assert "val_loss" in callback.session.state.history[0]
    # A hook before ours sees sample_index; the model's forward never does.
    assert any("sample_index" in kw for kw in seen)
    assert forwarded and not any("sample_index" in kw for kw in forwarded)


def test_resume_from_checkpoint_continues_the_records(tmp_path):
    trainer = _trainer(tmp_path, save="epoch")
    watch_trainer(trainer, tmp_path / "run", full_guard=True)
    trainer.train()
    checkpoints = sorted((tmp_path / "trainer").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert (checkpoints[-1] / "trainground_state.pt").is_file()
    resumed = _trainer(tmp_path, epochs=3, save="epoch")
    callback = watch_trainer(resumed, tmp_path / "run", full_guard=True)
    resumed.train(resume_from_checkpoint=str(checkpoints[-1]))
    records = pd.read_parquet(tmp_path / "run" / "samples.parquet")
    assert records[records.split == 0].groupby("epoch")["index"].nunique().tolist() == [120, 120, 120]
    assert callback.session is not None and len(callback.session.state.history) == 3
    assert sorted(pd.read_csv(tmp_path / "run" / "sample_issues.csv")["index"]) == list(range(160))


def test_watch_trainer_refuses_remove_unused_columns(tmp_path):
    with pytest.raises(ConfigError, match="remove_unused_columns"):
        watch_trainer(_trainer(tmp_path, remove_unused_columns=True))


def test_index_collator_needs_sample_index():
    with pytest.raises(ConfigError, match="WithIndex"):
        IndexCollator()([{"input_ids": torch.ones(3, dtype=torch.long), "labels": 0}])
    batch = IndexCollator()([{"input_ids": torch.ones(3, dtype=torch.long), "labels": 0, "sample_index": 7}])
    assert batch["sample_index"].tolist() == [7] and "labels" in batch


@pytest.mark.slow
def test_transformers_example_runs_and_is_the_readme_text(tmp_path):
    example = (ROOT / "examples" / "transformers_loop.py").read_text()
    assert example.strip() in (ROOT / "README.md").read_text()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "transformers_loop.py"), str(tmp_path / "run"),
                          "3"], capture_output=True, text=True, env=env, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "label issues flagged" in out.stdout
    assert (tmp_path / "run" / "report.html").exists()
