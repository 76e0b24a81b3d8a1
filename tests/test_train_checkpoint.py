"""Checkpoints: round trip, atomic writes, and a clear CheckpointError for every kind of bad file.

Rebuilding a GPT from a checkpoint (`infer.load.load_model`) is tested in test_infer_load.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from safetensors.torch import save_file

from buildgpt.infer.load import load_model
from buildgpt.nn.model import GPT, GPTConfig
from buildgpt.train import checkpoint
from buildgpt.train.checkpoint import CheckpointError, load, model_config_of, save, unwrap

CONFIG = GPTConfig(vocab_size=17, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.0, mlp="gelu")
META = {"tokenizer": {"type": "char", "chars": list("abc\n")}, "note": "ünïcode ok", "history": {"val": [2.5, 2.1]},
        "n": 3, "nothing": None}


pytestmark = pytest.mark.usefixtures("one_thread")


def trained(seed: int = 0, steps: int = 2):
    """A small GPT and its AdamW after a few steps, so the optimizer has state to save."""
    torch.manual_seed(seed)
    model = GPT(CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    x = torch.randint(0, CONFIG.vocab_size, (4, 8))
    for _ in range(steps):
        _, loss = model(x, x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, optimizer


def step_once(model, optimizer):
    x = torch.arange(16).remainder(CONFIG.vocab_size).view(2, 8)
    _, loss = model(x, x)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def test_round_trip(tmp_path):
    model, optimizer = trained()
    rng = torch.stack([torch.get_rng_state(), torch.get_rng_state()])
    path = save(tmp_path / "run" / "last.safetensors", model, step=42, meta=META, optimizer=optimizer, rng_state=rng)
    assert path == tmp_path / "run" / "last.safetensors" and path.is_file()

    ckpt = load(path)
    assert ckpt.model_config == CONFIG.to_dict()
    assert GPTConfig.from_dict(ckpt.model_config) == CONFIG
    assert ckpt.step == 42
    assert ckpt.meta == META
    assert torch.equal(ckpt.rng_state, rng)
    state = model.state_dict()
    assert ckpt.model_state.keys() == state.keys()
    for name, value in state.items():
        assert torch.equal(ckpt.model_state[name], value), name

    # the optimizer state goes into a fresh optimizer, and both continue identically
    restored, _ = load_model(path)
    assert not restored.training
    restored.train()
    new_optimizer = torch.optim.AdamW(restored.parameters(), lr=1e-3, weight_decay=0.1)
    new_optimizer.load_state_dict(ckpt.optimizer_state)
    old_state = optimizer.state_dict()
    for index, param_state in old_state["state"].items():
        for key, value in param_state.items():
            assert torch.equal(new_optimizer.state_dict()["state"][index][key], value), (index, key)
    step_once(model, optimizer)
    step_once(restored, new_optimizer)
    for (name, a), b in zip(model.state_dict().items(), restored.state_dict().values()):
        assert torch.equal(a, b), name


def test_without_optimizer_and_rng(tmp_path):
    model, _ = trained(steps=0)
    ckpt = load(save(tmp_path / "best.safetensors", model, step=0, meta={}))
    assert ckpt.optimizer_state is None and ckpt.rng_state is None and ckpt.meta == {}


def test_save_leaves_no_temporary_files(tmp_path):
    model, optimizer = trained()
    for step in range(3):  # overwriting too
        save(tmp_path / "last.safetensors", model, step=step, meta={}, optimizer=optimizer)
    save(tmp_path / "best.safetensors", model, step=2, meta={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.safetensors", "last.safetensors"]
    assert load(tmp_path / "last.safetensors").step == 2


def test_a_checkpoint_gets_the_permissions_of_any_new_file(tmp_path):
    old_umask = os.umask(0o022)
    try:
        path = save(tmp_path / "best.safetensors", trained(steps=0)[0], step=0, meta={})
    finally:
        os.umask(old_umask)
    assert path.stat().st_mode & 0o777 == 0o644  # readable by the group and others, as the umask allows


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, optimizer = trained()
    path = save(tmp_path / "last.safetensors", model, step=5, meta={"v": 1}, optimizer=optimizer)
    before = path.read_bytes()

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:  # half a file, then the disk fills up
            f.write(b"partial")
        raise OSError("No space left on device (test)")

    monkeypatch.setattr(checkpoint, "save_file", broken)
    step_once(model, optimizer)
    with pytest.raises(OSError, match="No space"):
        save(path, model, step=6, meta={"v": 2}, optimizer=optimizer)
    assert path.read_bytes() == before
    assert load(path).step == 5 and load(path).meta == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]


def test_truncated_file_raises_naming_it(tmp_path):
    model, optimizer = trained()
    path = save(tmp_path / "last.safetensors", model, step=1, meta={}, optimizer=optimizer)
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        load(cut)
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        load_model(cut)
    tiny = tmp_path / "header-cut.safetensors"  # cut inside the header
    tiny.write_bytes(data[:40])
    with pytest.raises(CheckpointError, match="header-cut.safetensors"):
        load(tiny)


@pytest.mark.parametrize("content", [b"", b"abc", b"not a checkpoint at all, just some text\n" * 10,
                                     bytes(range(256)) * 4, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......"])
def test_garbage_file_raises_naming_it(tmp_path, content):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="garbage.safetensors"):
        load(path)


def test_missing_file_raises(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.safetensors"):
        load(tmp_path / "nowhere.safetensors")
    with pytest.raises(CheckpointError, match=r"is a folder; give a checkpoint file in it, such as .*best\.safetensors"):
        load(tmp_path)  # a folder is not a checkpoint either
    with pytest.raises(CheckpointError, match="nowhere"):
        load_model(tmp_path / "nowhere.safetensors")


def test_foreign_safetensors_file_raises(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"weight": torch.zeros(3)}, str(plain))
    with pytest.raises(CheckpointError, match="plain.safetensors.*not a buildgpt checkpoint"):
        load(plain)
    other = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(3)}, str(other), metadata={"format": "pt", "buildgpt": json.dumps({"format": "x"})})
    with pytest.raises(CheckpointError, match="other.safetensors"):
        load(other)


@pytest.mark.parametrize("field,value", [("n_layer", 3), ("vocab_size", 65), ("mlp", "relu"), ("attention", "batched")])
def test_expected_config_mismatch_names_the_field(tmp_path, field, value):
    model, _ = trained(steps=0)
    path = save(tmp_path / "last.safetensors", model, step=0, meta={})
    assert load(path, expected_config=CONFIG.to_dict()).model_config == CONFIG.to_dict()
    with pytest.raises(CheckpointError, match=f"last.safetensors.*{field}"):
        load(path, expected_config=replace(CONFIG, **{field: value}).to_dict())


@pytest.mark.parametrize("header", [
    {"format": checkpoint.FORMAT},  # no model_config, step or meta
    {"format": checkpoint.FORMAT, "model_config": [1, 2], "step": 0, "meta": {}},
    {"format": checkpoint.FORMAT, "model_config": {}, "step": "ten", "meta": {}},
], ids=["missing-fields", "config-not-a-dict", "step-not-a-number"])
def test_damaged_header_raises_checkpoint_error(tmp_path, header):
    """Our format tag with a header that does not make sense is a corrupt checkpoint, not a crash."""
    path = tmp_path / "damaged.safetensors"
    save_file({"model.x": torch.zeros(1)}, str(path), metadata={"buildgpt": json.dumps(header)})
    with pytest.raises(CheckpointError, match="damaged.safetensors"):
        load(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_that_are_not_finite_are_a_corrupt_checkpoint(tmp_path, bad):
    """Bytes overwritten inside the data, or a run saved after it diverged: refused, naming the tensor."""
    model, _ = trained(steps=0)
    with torch.no_grad():
        model.lm_head.weight[3, 5] = bad
    path = save(tmp_path / "broken.safetensors", model, step=0, meta={})
    with pytest.raises(CheckpointError, match="broken.safetensors is corrupt: its tensor lm_head.weight holds NaN"):
        load(path)


# ---------------------------------------------------------------- any model with a config, wrapped or not


def test_unwrap_and_model_config_of_see_through_wrappers():
    model, _ = trained(steps=0)

    class Wrapper(torch.nn.Module):  # the shape of DDP (`module`) and of torch.compile (`_orig_mod`)
        def __init__(self, inner, attribute):
            super().__init__()
            setattr(self, attribute, inner)

    wrapped = Wrapper(Wrapper(model, "_orig_mod"), "module")
    assert unwrap(wrapped) is model and unwrap(model) is model
    assert model_config_of(wrapped) == CONFIG.to_dict()


def test_saving_a_wrapped_model_stores_the_inner_weights(tmp_path):
    model, _ = trained()

    class DDPLike(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    ckpt = load(save(tmp_path / "w.safetensors", DDPLike(model), step=3, meta={}))
    assert ckpt.model_state.keys() == model.state_dict().keys()  # no "module." prefix


def test_a_model_without_a_config_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="config"):
        save(tmp_path / "bigram.safetensors", torch.nn.Linear(2, 2), step=0, meta={})
    assert not (tmp_path / "bigram.safetensors").exists()


def test_checkpoint_module_does_not_import_the_model():
    """Checkpoints hold a config dict and tensors: reading one needs no buildgpt.nn (checked in a fresh process)."""
    code = ("import sys, buildgpt.train.checkpoint; "
            "print(sorted(m for m in sys.modules if m.startswith('buildgpt.nn')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
