"""A GPT back from a checkpoint: the same function, in eval mode, and a CheckpointError for a file that does not fit."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from buildgpt.infer.load import load_model
from buildgpt.nn.model import GPT, GPTConfig
from buildgpt.train import checkpoint
from buildgpt.train.checkpoint import CheckpointError, save

CONFIG = GPTConfig(vocab_size=17, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.1, mlp="gelu",
                   position="rope")

pytestmark = pytest.mark.usefixtures("one_thread")


def model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(CONFIG)


def test_load_model_rebuilds_the_same_function(tmp_path):
    original = model().eval()
    save(tmp_path / "m.safetensors", original, step=1, meta={"note": "x"})
    restored, ckpt = load_model(tmp_path / "m.safetensors")
    assert isinstance(restored, GPT) and restored.config == CONFIG
    assert not restored.training
    x = torch.randint(0, CONFIG.vocab_size, (2, 8))
    with torch.no_grad():
        assert torch.equal(restored(x)[0], original(x)[0])
    assert ckpt.step == 1 and ckpt.meta == {"note": "x"}


def test_weights_that_do_not_fit_the_config_raise(tmp_path):
    path = save(tmp_path / "odd.safetensors", model(), step=0, meta={})
    # rewrite the file with one weight missing, keeping the header
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys() if k != "model.lm_head.weight"}
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(CheckpointError, match="odd.safetensors"):
        load_model(path)


@pytest.mark.parametrize("model_config", [{**CONFIG.to_dict(), "rope_theta": 1e4}, {**CONFIG.to_dict(), "mlp": "tanh"}],
                         ids=["unknown-config-field", "invalid-config-value"])
def test_a_config_no_gpt_accepts_is_a_damaged_header(tmp_path, model_config):
    """`load` reads any config dict; rebuilding the GPT is where a bad one is found, named as the file's fault."""
    path = tmp_path / "damaged.safetensors"
    header = {"format": checkpoint.FORMAT, "model_config": model_config, "step": 0, "meta": {}}
    save_file({"model.x": torch.zeros(1)}, str(path), metadata={"buildgpt": json.dumps(header)})
    assert checkpoint.load(path).model_config == model_config
    with pytest.raises(CheckpointError, match="damaged.safetensors.*damaged header"):
        load_model(path)


def test_missing_file_raises(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere"):
        load_model(tmp_path / "nowhere.safetensors")
    with pytest.raises(CheckpointError, match="is a folder; give a checkpoint file in it, such as .*best.safetensors"):
        load_model(tmp_path)


def test_a_device_torch_does_not_know_or_this_machine_lacks_is_refused_with_a_hint(tmp_path):
    from buildgpt.infer.load import usable_device

    assert usable_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu': use cpu, cuda"):
        load_model(tmp_path / "not-read-first.safetensors", device="gpu")
    with pytest.raises(ValueError, match="unknown device 'meta'"):  # torch knows it, but nothing runs there
        usable_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            usable_device("cuda:0")
