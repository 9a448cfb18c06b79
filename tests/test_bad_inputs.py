"""The bad-input corpus: each row is an input, a command, the exit status and the words of the message.

Every case must end with one ``error:`` line (exit 2) and no traceback, and nothing of the
user's may be changed: each row may check the files it made afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from trainground.cli import app

runner = CliRunner()
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def good_frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    return pd.DataFrame({"f1": rng.normal(size=n) + y, "f2": rng.normal(size=n) - y, "y": [f"c{v}" for v in y]})


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One finished run of one epoch on a small table (copied by the cases that damage it)."""
    root = tmp_path_factory.mktemp("trained")
    good_frame().to_csv(root / "good.csv", index=False)
    result = runner.invoke(app, ["fit", str(root / "good.csv"), "--target", "y", "--out", str(root / "run"),
                                 "--epochs", "1"])
    assert result.exit_code == 0, result.output
    return root / "run"


@dataclass
class Case:
    """``setup(tmp, run)`` makes the files and returns the command line; ``after(tmp)`` checks what stayed."""

    name: str
    setup: Callable[[Path, Path], list[str]]
    words: tuple[str, ...]
    code: int = 2
    after: Callable[[Path], None] | None = None
    skip_root: bool = False
    not_words: tuple[str, ...] = ()  # e.g. an option the command does not have


def _csv(tmp: Path, frame: pd.DataFrame | None = None, name: str = "data.csv") -> str:
    (frame if frame is not None else good_frame()).to_csv(tmp / name, index=False)
    return str(tmp / name)


def _text(tmp: Path, name: str, text: str | bytes) -> str:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def _config(tmp: Path, text: str) -> list[str]:
    return ["fit", _csv(tmp), "--target", "y", "--out", str(tmp / "out"), "--epochs", "1",
            "--config", _text(tmp, "cfg.yaml", text)]


def _copy_run(tmp: Path, run: Path) -> Path:
    shutil.copytree(run, tmp / "run")
    return tmp / "run"


def _kept(*names: str, content: str | None = None) -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        for name in names:
            assert (tmp / name).exists(), f"{name} was deleted"
            if content is not None:
                assert (tmp / name).read_text() == content
    return check


def _absent(name: str) -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        assert not (tmp / name).exists(), f"{name} was left behind by a refused start"
    return check


def _user_folder_with_config(tmp: Path, run: Path) -> list[str]:
    (tmp / "mine").mkdir()
    _text(tmp, "mine/config.yaml", "my: own\n")
    _text(tmp, "mine/notes.txt", "precious")
    return ["fit", _csv(tmp), "--target", "y", "--out", str(tmp / "mine"), "--overwrite", "--epochs", "1"]


def _run_with_user_notes(tmp: Path, run: Path) -> list[str]:
    copy = _copy_run(tmp, run)
    _text(tmp, "run/notes.txt", "precious")
    return ["fit", _csv(tmp), "--target", "y", "--out", str(copy), "--overwrite", "--epochs", "1"]


def _input_inside(command: str) -> Callable[[Path, Path], list[str]]:
    def setup(tmp: Path, run: Path) -> list[str]:
        copy = _copy_run(tmp, run)
        data = _csv(tmp, name="run/data.csv")
        return [command, data, "--target", "y", "--out", str(copy), "--overwrite", "--epochs", "1"]
    return setup


def _config_inside(tmp: Path, run: Path) -> list[str]:
    copy = _copy_run(tmp, run)
    cfg = _text(tmp, "run/my.yaml", "fit: {epochs: 1}\n")
    return ["fit", _csv(tmp), "--target", "y", "--out", str(copy), "--overwrite", "--config", cfg]


def _test_inside(tmp: Path, run: Path) -> list[str]:
    copy = _copy_run(tmp, run)
    test = _csv(tmp, name="run/test.csv")
    return ["repair", _csv(tmp), "--target", "y", "--out", str(copy), "--overwrite", "--test", test]


def _out_in_images(tmp: Path, run: Path) -> list[str]:
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp / "images" / label).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (8, 8), color=i * 40).save(tmp / "images" / label / f"{i}.png")
    return ["fit", str(tmp / "images"), "--out", str(tmp / "images" / "run"), "--epochs", "1"]


def _damage_checkpoints(tmp: Path, run: Path, data: bytes) -> list[str]:
    copy = _copy_run(tmp, run)
    for path in (copy / "checkpoints").glob("step-*.pt"):
        path.write_bytes(data)
    return ["fit", str(run.parent / "good.csv"), "--out", str(copy), "--resume", "--epochs", "2"]


def _flip_model_bytes(tmp: Path, run: Path) -> list[str]:
    copy = _copy_run(tmp, run)
    raw = bytearray((copy / "model.safetensors").read_bytes())
    for i in range(64):  # inside the tensor data, at the end of the file
        raw[-1 - 7 * i] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(raw))
    return ["predict", str(copy), _csv(tmp)]


def _rewrite_model(tmp: Path, run: Path, change: Callable[[dict, dict], None]) -> list[str]:
    """A model file rewritten by someone else: ``change(tensors, metadata)``, checksum removed."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    copy = _copy_run(tmp, run)
    with safe_open(str(copy / "model.safetensors"), framework="pt") as fh:
        meta = dict(fh.metadata())
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    meta.pop("sha256", None)
    change(tensors, meta)
    save_file(tensors, str(copy / "model.safetensors"), metadata=meta)
    return ["predict", str(copy), _csv(tmp)]


def _more_classes(tensors: dict, meta: dict) -> None:
    classes = json.loads(meta["classes"])
    meta["classes"] = json.dumps([*classes, "extra"] if isinstance(classes, list) else
                                 {**classes, "classes": [*classes["classes"], "extra"]})


def _swap_shape(tensors: dict, meta: dict) -> None:
    name = next(k for k, v in tensors.items() if v.ndim == 2)
    tensors[name] = tensors[name].t().contiguous()


def _bad_header_json(tmp: Path, run: Path) -> list[str]:
    copy = _copy_run(tmp, run)
    raw = (copy / "model.safetensors").read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    header = raw[8:8 + size].replace(b'"__metadata__":{', b'"__metadata__":{"x":"\\"unclosed",', 1)
    (copy / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + raw[8 + size:])
    return ["predict", str(copy), _csv(tmp)]


def _damaged(name: str, command: str, text: bytes = b"{not json") -> Callable[[Path, Path], list[str]]:
    def setup(tmp: Path, run: Path) -> list[str]:
        copy = _copy_run(tmp, run)
        (copy / name).write_bytes(text)
        return ["findings", str(copy)] + (["--recompute"] if command == "recompute" else [])
    return setup


def _symlink_out(tmp: Path, run: Path) -> list[str]:
    copy = _copy_run(tmp, run)
    (tmp / "link").symlink_to(copy, target_is_directory=True)
    return ["fit", _csv(tmp), "--target", "y", "--out", str(tmp / "link"), "--overwrite", "--epochs", "1"]


def _unreadable(tmp: Path, run: Path) -> list[str]:
    path = _csv(tmp)
    os.chmod(path, 0)
    return ["fit", path, "--target", "y", "--out", str(tmp / "out")]


def _read_only_parent(tmp: Path, run: Path) -> list[str]:
    (tmp / "ro").mkdir()
    os.chmod(tmp / "ro", 0o500)
    return ["fit", _csv(tmp), "--target", "y", "--out", str(tmp / "ro" / "out"), "--epochs", "1"]


def _frame(**columns) -> pd.DataFrame:
    frame = good_frame()
    for name, values in columns.items():
        frame[name] = values
    return frame


def _fit(frame_or_text, name: str = "data.csv", target: str = "y", extra: tuple[str, ...] = ()
         ) -> Callable[[Path, Path], list[str]]:
    def setup(tmp: Path, run: Path) -> list[str]:
        if isinstance(frame_or_text, pd.DataFrame):
            path = _csv(tmp, frame_or_text, name)
        else:
            path = _text(tmp, name, frame_or_text)
        return ["fit", path, "--target", target, "--out", str(tmp / "out"), "--epochs", "1", *extra]
    return setup


_continuous = good_frame(300).assign(y=np.random.default_rng(1).normal(size=300))
_dup_header = "f1,f1,y\n" + "".join(f"{i},{i % 2},{'ab'[i % 2]}\n" for i in range(20))
_dup_target = "f1,y,y\n" + "".join(f"{i},{'ab'[i % 2]},{'ab'[i % 2]}\n" for i in range(20))

CASES = [
    # data loss (issue 13, items 1-3)
    Case("overwrite a user's folder holding config.yaml", _user_folder_with_config,
         ("not a trainground run", "refusing"), after=_kept("mine/notes.txt", "mine/config.yaml")),
    Case("overwrite a run holding a user's notes", _run_with_user_notes, ("did not write", "notes.txt"),
         after=_kept("run/notes.txt", content="precious")),
    Case("diagnose input inside --out", _input_inside("diagnose"), ("inside the output folder",),
         after=_kept("run/data.csv", "run/model.safetensors")),
    Case("fit input inside --out", _input_inside("fit"), ("inside the output folder",), after=_kept("run/data.csv")),
    Case("fit --config inside --out", _config_inside, ("my.yaml", "inside the output folder"),
         after=_kept("run/my.yaml")),
    Case("repair --test inside --out", _test_inside, ("test.csv",), after=_kept("run/test.csv")),
    Case("--out inside an image folder", _out_in_images, ("inside the input folder",), after=_absent("images/run")),
    Case("report --out over a user's CSV",
         lambda tmp, run: ["report", str(run), "--out", _csv(tmp)], ("not a file of a trainground run", "--overwrite"),
         after=lambda tmp: pd.read_csv(tmp / "data.csv")),
    Case("predict --out over a user's file",
         lambda tmp, run: ["predict", str(run), _csv(tmp), "--out", _text(tmp, "mine.csv", "keep")],
         ("mine.csv", "--overwrite"), after=_kept("mine.csv", content="keep")),
    # corruption (items 4-6, 11)
    Case("resume from random-bytes checkpoints", lambda tmp, run: _damage_checkpoints(tmp, run, os.urandom(4096)),
         ("no intact checkpoint", "checksum")),
    Case("model file with flipped bytes", _flip_model_bytes, ("model.safetensors", "checksum mismatch")),
    Case("model file: more classes than outputs", lambda tmp, run: _rewrite_model(tmp, run, _more_classes),
         ("outputs", "classes")),
    Case("model file: a tensor of another shape", lambda tmp, run: _rewrite_model(tmp, run, _swap_shape),
         ("damaged or was changed",)),
    Case("model file: metadata not JSON",
         lambda tmp, run: _rewrite_model(tmp, run, lambda t, m: m.update(classes="{oops")), ("not valid JSON",)),
    Case("model file: header not JSON", _bad_header_json, ("model.safetensors",)),
    Case("model file: random bytes",
         lambda tmp, run: (_copy_run(tmp, run) / "model.safetensors").write_bytes(os.urandom(512))
         and ["predict", str(tmp / "run"), _csv(tmp)], ("model.safetensors",)),
    # inputs (items 7-10)
    Case("value overflowing float32", _fit(_frame(f1=[1e39] + [1.0] * 59)), ("'f1'", "float32")),
    Case("1e308 in a feature", _fit(_frame(f2=[1.0] * 59 + [1e308])), ("'f2'", "float32")),
    Case("duplicate feature column", _fit(_dup_header), ("'f1'", "duplicate column"), after=_absent("out")),
    Case("duplicated target column", _fit(_dup_target), ("'y'", "duplicate column")),
    # a continuous target is a regression unless declared a class; as classes it is refused
    Case("continuous target declared a class", _fit(_continuous, extra=("--classify", "y")),
         ("'y'", "a class for nearly every row", "--regression y")),
    Case("regression target with a missing value", _fit(_continuous.assign(y=[np.nan] + [1.5] * 299),
                                                        extra=("--regression", "y")), ("'y'", "missing", "line 2")),
    Case("regression target with text", _fit(_continuous.assign(y=["cheap"] + [1.5] * 299), extra=("--regression", "y")),
         ("'y'", "non-numeric", "line 2", "'cheap'")),
    Case("lr: -1", lambda tmp, run: _config(tmp, "fit: {lr: -1}\n"), ("cfg.yaml", "fit.lr", "> 0"),
         after=_absent("out")),
    Case("val_fraction: 1.5", lambda tmp, run: _config(tmp, "fit: {val_fraction: 1.5}\n"), ("fit.val_fraction",)),
    Case("threads: -4", lambda tmp, run: _config(tmp, "fit: {threads: -4}\n"), ("fit.threads", ">= 1")),
    Case("hidden: [0]", lambda tmp, run: _config(tmp, "model: {hidden: [0]}\n"), ("model.hidden[0]",)),
    Case("batch_size: 0", lambda tmp, run: _config(tmp, "fit: {batch_size: 0}\n"), ("cfg.yaml", "fit.batch_size")),
    Case("dropout: 1", lambda tmp, run: _config(tmp, "model: {dropout: 1}\n"), ("model.dropout",)),
    Case("guard percentile 0", lambda tmp, run: _config(tmp, "guard: {percentile: 0}\n"), ("guard.percentile",)),
    Case("label_smoothing: 2", lambda tmp, run: _config(tmp, "loss: {label_smoothing: 2}\n"),
         ("loss.label_smoothing",)),
    Case("lr: .nan", lambda tmp, run: _config(tmp, "fit: {lr: .nan}\n"), ("fit.lr", "number")),
    Case("unknown section key", lambda tmp, run: _config(tmp, "fit: {epoch: 3}\n"), ("epoch", "did you mean")),
    Case("string for an int", lambda tmp, run: _config(tmp, "fit: {epochs: many}\n"), ("fit.epochs",)),
    Case("invalid YAML", lambda tmp, run: _config(tmp, "fit: [unclosed\n"), ("cfg.yaml", "invalid YAML")),
    Case("YAML list", lambda tmp, run: _config(tmp, "- a\n- b\n"), ("cfg.yaml", "mapping")),
    Case("missing data file", lambda tmp, run: ["fit", str(tmp / "nope.csv"), "--target", "y"], ("nope.csv",)),
    Case("empty CSV", _fit(""), ("empty",)),
    Case("header only", _fit("f1,y\n"), ("no data rows",)),
    Case("binary CSV", _fit(b"\xff\xfe\x00\x81garbage\x00" * 20), ("UTF-8",)),
    Case("ragged CSV", _fit("f1,y\n1,a\n2,b,3,4\n"), ("malformed",)),
    Case("no target column", _fit(good_frame(), target="label"), ("no target column", "'label'")),
    Case("single class", _fit(_frame(y=["a"] * 60)), ("single class",)),
    Case("text in a numeric column", _fit(_frame(f1=["x"] + [1.0] * 59)), ("'f1'",)),
    Case("garbage Parquet", _fit(b"PAR1 not really", name="data.parquet"), ("Parquet",)),
    Case("unsupported suffix", _fit("a,b\n", name="data.xlsx"), ("unsupported file type",)),
    # filesystem (item 12)
    Case("--out is a file", lambda tmp, run: ["fit", _csv(tmp), "--target", "y", "--out", _text(tmp, "f", "x")],
         ("not a folder",), after=_kept("f", content="x")),
    Case("--out under a file",
         lambda tmp, run: ["fit", _csv(tmp), "--target", "y", "--out", _text(tmp, "f", "x") + "/sub"],
         ("f/sub",)),
    Case("--out symlink with --overwrite", _symlink_out, ("symbolic link",), after=_kept("run/model.safetensors")),
    Case("predict --out DIR", lambda tmp, run: ["predict", str(run), _csv(tmp), "--out", str(tmp)], ("is a folder",)),
    Case("report --out DIR", lambda tmp, run: ["report", str(run), "--out", str(tmp)], ("is a folder",)),
    Case("demo --root FILE", lambda tmp, run: ["demo", "--root", _text(tmp, "f", "x")], ("f",),
         after=_kept("f", content="x")),
    Case("findings on damaged findings.json", _damaged("findings.json", "show"), ("findings.json", "damaged")),
    Case("findings --recompute on damaged metrics.jsonl", _damaged("metrics.jsonl", "recompute", b"{oops\n"),
         ("metrics.jsonl", "damaged")),
    Case("findings --recompute on damaged config.yaml", _damaged("config.yaml", "recompute", b"a: [\n"),
         ("config.yaml", "damaged")),
    Case("predict on a folder that is no run", lambda tmp, run: ["predict", str(tmp), _csv(tmp)],
         ("not a trainground run",)),
    Case("report on a missing folder", lambda tmp, run: ["report", str(tmp / "nope")], ("nope",)),
    Case("unreadable CSV", _unreadable, ("data.csv", "ermission"), skip_root=True),
    Case("read-only parent", _read_only_parent, ("ro",), skip_root=True),
    Case("predict on a value overflowing float32",
         lambda tmp, run: ["predict", str(run), _csv(tmp, _frame(f1=[1e39] + [1.0] * 59))], ("'f1'", "float32")),
    # item 14: no command suggests an option it does not have
    Case("diagnose into an existing run", lambda tmp, run: ["diagnose", _csv(tmp), "--target", "y", "--out",
                                                            str(_copy_run(tmp, run))],
         ("already exists", "--overwrite"), not_words=("--resume",)),
    Case("repair into an existing run", lambda tmp, run: ["repair", _csv(tmp), "--target", "y", "--out",
                                                          str(_copy_run(tmp, run))],
         ("already exists",), not_words=("--resume",)),
    Case("resume without --out", lambda tmp, run: ["fit", _csv(tmp), "--resume"], ("--resume needs --out",)),
]


def test_corpus_is_large_and_names_unique():
    assert len(CASES) >= 50 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, trained: Path):
    if case.skip_root and IS_ROOT:
        pytest.skip("root reads and writes through file permissions")
    args = case.setup(tmp_path, trained)
    try:
        result = runner.invoke(app, args)
    finally:
        for path in (tmp_path / "ro", tmp_path / "data.csv"):
            if path.exists():
                os.chmod(path, 0o700)
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == case.code, output
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for word in case.words:
        assert word in result.stderr, f"{word!r} not in {result.stderr!r}"
    for word in case.not_words:
        assert word not in result.stderr, result.stderr
    if case.after is not None:
        case.after(tmp_path)


def test_an_unexpected_exception_is_one_line_and_a_log_file(monkeypatch, tmp_path):
    import trainground.recipes.demo as demo

    def broken(**kwargs):
        raise RuntimeError("something we did not foresee")

    monkeypatch.setattr(demo, "run_demo", broken)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # take TMPDIR into account
    result = runner.invoke(app, ["demo", "--root", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "internal error" in lines[0] and "something we did not foresee" in lines[0]
    (log,) = tmp_path.glob("trainground-crash-*.log")
    assert str(log) in lines[0] and "Traceback" in log.read_text() and "RuntimeError" in log.read_text()


def test_an_os_error_anywhere_is_one_line_exit_2(monkeypatch, tmp_path):
    import trainground.recipes.demo as demo

    def full_disk(**kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(demo, "run_demo", full_disk)
    result = runner.invoke(app, ["demo", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'x'}: No space left on device"
