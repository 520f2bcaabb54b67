"""The "tiny" backbone's tokenizer: byte-level, built in code, so tests and the CPU demo never download.

Ids::

    0..255   one token per byte (GPT-2's ByteLevel alphabet: every UTF-8 string encodes, nothing is unknown)
    256      <bos>
    257      <eos>
    258      <pad>

No merges, so a string of n UTF-8 bytes is n tokens. Like SmolLM2's tokenizer, it adds no special tokens
on its own: whoever builds a prompt places <bos>/<eos> explicitly.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

BOS, EOS, PAD = "<bos>", "<eos>", "<pad>"
NUM_BYTE_TOKENS = 256
SPECIAL_TOKENS = (BOS, EOS, PAD)
BOS_ID, EOS_ID, PAD_ID = (NUM_BYTE_TOKENS + i for i in range(len(SPECIAL_TOKENS)))
BYTE_VOCAB_SIZE = NUM_BYTE_TOKENS + len(SPECIAL_TOKENS)  # 259 ids used by text


def build_byte_tokenizer() -> PreTrainedTokenizerFast:
    """A fresh byte-level tokenizer; identical ids on every call (the vocabulary is fixed, not trained)."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()  # the 256 printable stand-ins for bytes 0..255
    byte_chars = [_byte_char(b) for b in range(NUM_BYTE_TOKENS)]
    if sorted(byte_chars) != sorted(alphabet):
        raise RuntimeError("tokenizers' ByteLevel alphabet is not the GPT-2 byte map this module expects")
    vocab = {char: index for index, char in enumerate(byte_chars)}
    for offset, token in enumerate(SPECIAL_TOKENS):
        vocab[token] = NUM_BYTE_TOKENS + offset
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    # use_regex=False: bytes need no word splitting when there are no merges.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, padding_side="left"
    )


def _byte_char(byte: int) -> str:
    """GPT-2's byte -> printable character map (the one ByteLevel uses), so byte b gets id b."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    if byte in printable:
        return chr(byte)
    return chr(256 + sum(1 for b in range(byte) if b not in printable))
