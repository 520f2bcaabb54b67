"""How the K * D action tokens come out of the LLM (``ModelConfig.decoding``).

``autoregressive``: the sequence is ``[prefix][a_0 .. a_{n-2}]``; teacher forcing trains the output at each
position to predict the next action token, and inference runs n sequential LLM steps with a KV cache.

``parallel``: the n action positions hold learned placeholder embeddings instead of action tokens, so no
prediction is ever fed back. The placeholders attend causally to the prefix and to each other in both
directions (``parallel_mask``); the output at placeholder i is action token i. Training and inference are the
same single forward pass (OpenVLA-OFT's parallel decoding), so a chunk costs one pass instead of n.

Both train with the same cross-entropy on the same tokens, and both take the argmax over the action ids only,
so every output decodes.
"""

from __future__ import annotations

import torch


def positions(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) 0/1 padding mask -> (B, T) position ids: left padding does not shift the tokens after it."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def parallel_mask(prefix_mask: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, P) prefix padding mask (1 = token) -> the additive (B, 1, P+n, P+n) attention mask of the parallel
    sequence: causal over the prefix; the n placeholders see every prefix token and each other; padding is
    never attended. Every position may attend to itself, so a padding row is never fully masked (no NaN)."""
    batch, prefix = prefix_mask.shape
    total = prefix + n
    index = torch.arange(total, device=prefix_mask.device)
    causal = index[None, :] <= index[:, None]  # (T, T): query row, key column
    placeholders = (index[:, None] >= prefix) & (index[None, :] >= prefix)
    keys = torch.cat([prefix_mask.bool(), prefix_mask.new_ones(batch, n).bool()], dim=1)  # (B, T)
    allowed = (causal | placeholders)[None] & keys[:, None, :]  # (B, T, T)
    allowed |= torch.eye(total, dtype=torch.bool, device=prefix_mask.device)[None]
    additive = torch.zeros(allowed.shape, dtype=dtype, device=prefix_mask.device)
    return additive.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]
