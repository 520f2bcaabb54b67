"""The VLA network on CPU: shapes, constrained decoding, checkpoints, and that it can learn at all."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vla.data.dataset import VLADataset, collate
from vla.model.config import ConnectorConfig, LLMConfig, ModelConfig, VisionConfig
from vla.model.vla import VLA

CAMERAS = ["agentview", "wrist"]


def small_config(**overrides) -> ModelConfig:
    options = {
        "vision": VisionConfig(kind="resnet18", width=64),
        "connector": ConnectorConfig(kind="resampler", num_queries=4),
        "llm": LLMConfig(name="tiny", hidden_size=128, num_layers=2, num_heads=4, intermediate_size=256),
        "cameras": CAMERAS,
        "image_size": [32, 32],
        "chunk_size": 4,
    }
    options.update(overrides)
    return ModelConfig(**options)


@pytest.fixture
def dataset(make_dataset):
    return VLADataset(make_dataset(episodes=2, lengths=[6, 5]), cameras=CAMERAS, chunk_size=4)


@pytest.fixture
def batch(dataset):
    return collate([dataset[i] for i in range(8)])


def model_for(dataset, **overrides) -> VLA:
    torch.manual_seed(0)
    return VLA(small_config(**overrides), dataset.stats)


def test_loss_is_finite_and_backpropagates(dataset, batch):
    vla = model_for(dataset)
    out = vla.loss(batch)
    assert torch.isfinite(out["loss"]) and 0 <= out["token_accuracy"] <= 1 and out["l1"] >= 0
    out["loss"].backward()
    grads = [p.grad for p in vla.parameters() if p.requires_grad]
    assert all(g is not None for g in grads[:3])
    assert vla.vision.parameters().__next__().grad is not None, "gradients must reach the vision encoder"


def test_training_attention_through_the_math_kernel_gives_pytorch_s_own_loss(dataset, batch, monkeypatch):
    import contextlib

    from vla.model import vla as vla_module

    vla = model_for(dataset).eval()  # eval: no dropout or shifts, so two passes see the same numbers
    with torch.no_grad():
        math = vla.loss(batch)["loss"]
        monkeypatch.setattr(vla_module, "_training_attention", lambda device: contextlib.nullcontext())
        default = vla.loss(batch)["loss"]
    torch.testing.assert_close(math, default, rtol=1e-5, atol=1e-5)


def test_soft_bin_targets_charge_a_near_miss_less_than_a_far_one(dataset):
    vla = model_for(dataset, bin_sigma=3.0)
    vocab = int(vla.action_ids.max()) + 1
    target = vla.action_ids[torch.tensor([100])]

    def loss_when_predicting(bin_index: int) -> float:
        logits = torch.full((1, vocab), -10.0)
        logits[0, vla.action_ids[bin_index]] = 10.0
        return float(vla._token_loss(logits, target))

    assert loss_when_predicting(100) < loss_when_predicting(101) < loss_when_predicting(150)
    one_hot = model_for(dataset)  # bin_sigma 0: plain cross-entropy, a near miss costs as much as a far one
    logits = torch.randn(3, vocab)
    targets = one_hot.action_ids[torch.tensor([0, 7, 255])]
    expected = torch.nn.functional.cross_entropy(logits, targets)
    assert torch.allclose(one_hot._token_loss(logits, targets), expected)
    with pytest.raises(ValueError, match="bin_sigma"):
        small_config(bin_sigma=-1.0)


def test_the_prompt_template_sets_the_text_the_llm_reads_and_survives_a_checkpoint(dataset, batch, tmp_path):
    default = model_for(dataset)
    bare = model_for(dataset, prompt="{instruction}")
    default_ids, _ = default.processor.prompt(["open the drawer"], "cpu")
    bare_ids, _ = bare.processor.prompt(["open the drawer"], "cpu")
    assert bare_ids.shape[1] < default_ids.shape[1]  # the byte tokenizer: a token per character
    bare.save(tmp_path / "ckpt")
    assert VLA.load(tmp_path / "ckpt").config.prompt == "{instruction}"
    # Prompts are tokenized once per instruction and padded by hand: the same batch as the tokenizer's.
    texts = ["open the drawer.", "go", "", "  put the cube in the bin "]
    for _ in range(2):  # the second call reads the cache
        ids, mask = default.processor.prompt(texts, "cpu")
        formatted = [default.config.prompt.format(instruction=t.strip().rstrip(".")) for t in texts]
        expected = default.processor.text(formatted, return_tensors="pt", padding=True)
        assert torch.equal(ids, expected["input_ids"]) and torch.equal(mask, expected["attention_mask"])
    for bad in ("open it", "{instruction} {robot}", "{instruction"):
        with pytest.raises(ValueError, match="prompt"):
            small_config(prompt=bad)


@pytest.mark.parametrize("decoding", ["autoregressive", "parallel"])
def test_predict_decodes_every_output_into_the_action_range(dataset, batch, decoding):
    vla = model_for(dataset, decoding=decoding)
    actions = vla.predict(batch)
    assert actions.shape == (8, 4, 7) and actions.dtype == np.float32
    q01 = np.asarray(dataset.stats["action"]["q01"])
    q99 = np.asarray(dataset.stats["action"]["q99"])
    assert np.all(actions >= q01 - 1e-4) and np.all(actions <= q99 + 1e-4)


def test_kv_cache_decoding_matches_full_recomputation(dataset, batch):
    vla = model_for(dataset).eval()
    cached = vla.predict(batch)
    # Greedy decoding without the cache: re-run the whole sequence for every token.
    with torch.no_grad():
        embeds, mask, _ = vla._prefix(batch)
        chosen = []
        for _ in range(vla.config.action_tokens):
            tokens = vla.action_ids[torch.stack(chosen, 1)] if chosen else None
            inputs = embeds if tokens is None else torch.cat([embeds, vla._embed(tokens)], 1)
            full = torch.cat(
                [mask, torch.ones(mask.shape[0], inputs.shape[1] - mask.shape[1], dtype=mask.dtype)], 1
            )
            positions = (full.cumsum(-1) - 1).clamp(min=0)
            logits = vla.llm(inputs_embeds=inputs, attention_mask=full, position_ids=positions).logits
            chosen.append(logits[:, -1, vla.action_ids].argmax(-1))
    recomputed = vla.processor.decode(vla.action_ids[torch.stack(chosen, 1)].numpy())
    np.testing.assert_array_equal(cached, recomputed)


def test_parallel_decoding_predicts_what_its_training_pass_scores(dataset, batch):
    """Inference is the training forward pass: the same logits, so the same argmax over the action ids."""
    vla = model_for(dataset, decoding="parallel").eval()
    with torch.no_grad():
        embeds, mask, _ = vla._prefix(batch)
        targets, _ = vla.processor.action_targets(batch["actions"], batch["action_mask"])
        logits = vla._training_logits(embeds, mask, targets)  # the targets' values are never read
    trained = vla.processor.decode(vla.action_ids[logits[..., vla.action_ids].argmax(-1)].numpy())
    np.testing.assert_array_equal(vla.predict(batch), trained)


def test_parallel_mask_placeholders_see_the_prefix_and_each_other_never_padding():
    from vla.model.decoding import parallel_mask

    prefix = torch.tensor([[0, 1, 1], [1, 1, 1]])  # the first sample left-padded by one
    allowed = parallel_mask(prefix, 2, torch.float32)[:, 0] == 0  # (B, 5, 5): query row, key column
    assert allowed.shape == (2, 5, 5)
    assert allowed[:, 3:, 1:].all() and not allowed[0, 3:, 0].any()  # placeholders: prefix and each other
    assert not allowed[:, :3, 3:].any()  # the prefix never sees the placeholders
    assert allowed[1, 2, :3].all() and not allowed[1, 1, 2]  # causal inside the prefix
    assert not allowed[0, 1:, 0].any() and allowed[0, 0, 0]  # a padding key only for its own row


@pytest.mark.parametrize("decoding", ["autoregressive", "parallel"])
def test_save_then_load_gives_identical_actions(dataset, batch, tmp_path, decoding):
    vla = model_for(dataset, decoding=decoding).eval()
    vla.save(tmp_path / "ckpt")
    loaded = VLA.load(tmp_path / "ckpt").eval()
    assert loaded.config.decoding == decoding
    np.testing.assert_array_equal(vla.predict(batch), loaded.predict(batch))
    assert not list(tmp_path.rglob("*.bin")) and not list(tmp_path.rglob("*.pt")), "nothing pickled"


def test_a_checkpoint_asked_for_another_decoding_or_chunk_size_is_refused_naming_both(dataset, tmp_path):
    model_for(dataset, decoding="parallel").save(tmp_path / "ckpt")
    with pytest.raises(
        ValueError, match=r"trained with decoding='parallel'; asked for decoding='autoregressive'"
    ):
        VLA.load(tmp_path / "ckpt", decoding="autoregressive")
    with pytest.raises(ValueError, match=r"trained with chunk_size=4; asked for chunk_size=10"):
        VLA.load(tmp_path / "ckpt", chunk_size=10)
    assert VLA.load(tmp_path / "ckpt", decoding="parallel", chunk_size=4).config.decoding == "parallel"
    with pytest.raises(ValueError, match="decoding must be one of"):
        small_config(decoding="beam")


def test_a_retired_option_at_its_inert_value_loads_and_at_another_is_refused(dataset, batch, tmp_path):
    vla = model_for(dataset).eval()
    vla.save(tmp_path / "ckpt")
    path = tmp_path / "ckpt" / "config.json"
    config = json.loads(path.read_text())
    config["vision"]["pyramid"] = False  # as written by the code of issue 21's try r11
    path.write_text(json.dumps(config))
    np.testing.assert_array_equal(vla.predict(batch), VLA.load(tmp_path / "ckpt").eval().predict(batch))
    config["vision"]["pyramid"] = True
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"vision.pyramid=True, an option this version no longer has"):
        VLA.load(tmp_path / "ckpt")


def test_a_checkpoint_with_a_missing_file_or_wrong_shapes_is_refused(dataset, tmp_path):
    vla = model_for(dataset)
    vla.save(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    config["action_dim"] = 6
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError):
        VLA.load(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "stats.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"stats\.json"):
        VLA.load(tmp_path / "ckpt")


def test_missing_normalization_statistics_are_an_error(dataset):
    stats = {k: dict(v) for k, v in dataset.stats.items()}
    del stats["action"]["q99"]
    with pytest.raises(ValueError, match="q99"):
        VLA(small_config(), stats)


@pytest.mark.parametrize("decoding", ["autoregressive", "parallel"])
def test_tiny_model_overfits_one_batch(dataset, batch, decoding):
    # Bounded in optimizer steps, not seconds, so a busy machine cannot fail it. The synthetic frames differ
    # by a few grey levels and the states by 0.2% of their range: only teacher forcing (the autoregressive
    # path sees the true earlier tokens) tells some samples apart. Spread over the state's range, the inputs
    # do, so both decodings must learn all of them: ask for nearly every token and a loss far below its start.
    stats = dataset.stats["observation.state"]
    q01, q99 = (torch.as_tensor(stats[q], dtype=torch.float32) for q in ("q01", "q99"))
    batch["state"] = q01 + torch.linspace(0, 1, len(batch["state"]))[:, None] * (q99 - q01)
    torch.manual_seed(0)
    vla = model_for(dataset, decoding=decoding)
    optimizer = torch.optim.AdamW([p for p in vla.parameters() if p.requires_grad], lr=2e-3)
    first_loss = accuracy = None
    for _ in range(200):
        out = vla.loss(batch)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        first_loss = first_loss or out["loss"].item()
        accuracy = out["token_accuracy"].item()
    assert accuracy >= 0.95, f"token accuracy {accuracy:.3f} after 200 steps"
    assert out["loss"].item() < 0.05 * first_loss, f"loss {first_loss:.3f} -> {out['loss'].item():.3f}"


def test_goal_loss_trains_the_vision_to_predict_the_final_state(dataset, batch):
    plain = model_for(dataset)
    assert plain.goal_head is None and "goal_l1" not in plain.loss(batch)
    vla = model_for(dataset, goal_loss=1.0)
    out = vla.loss(batch)
    assert out["goal_l1"] > 0
    out["loss"].backward()
    assert vla.vision.parameters().__next__().grad is not None, "the goal loss must reach the vision"
    goal = vla.processor.state(batch["goal_state"])
    assert torch.allclose(out["goal_l1"], (goal_prediction(vla, batch) - goal).abs().mean(), atol=1e-5)
    # It adds to the action loss; a batch without the final state is an error that says what is missing.
    plain.load_state_dict({k: v for k, v in vla.state_dict().items() if not k.startswith("goal_head")})
    action_only = plain.loss(batch)["loss"]
    assert out["loss"] > action_only
    with pytest.raises(ValueError, match="goal_state"):
        vla.loss({k: v for k, v in batch.items() if k != "goal_state"})
    with pytest.raises(ValueError, match="goal_loss"):
        small_config(goal_loss=-1.0)


def goal_prediction(vla: VLA, batch: dict) -> torch.Tensor:
    _, _, parts = vla._prefix(batch)
    return vla.goal_head(parts["images"], parts["instruction"]).detach()


def test_goal_head_reads_the_instruction(dataset, batch):
    """On the language tasks the instruction decides where the episode ends, so the head must see it: another
    instruction over the same images changes its prediction."""
    torch.manual_seed(0)
    vla = model_for(dataset, goal_loss=1.0)
    other = {**batch, "instruction": ["press the blue button"] * len(batch["instruction"])}
    assert not torch.allclose(goal_prediction(vla, batch), goal_prediction(vla, other))
    # Left padding is not part of the instruction: a longer neighbour in the batch leaves a sample's goal as is.
    alone = {k: (v[:1] if k != "images" else {c: x[:1] for c, x in v.items()}) for k, v in batch.items()}
    padded = {
        **batch,
        "instruction": [batch["instruction"][0]] + ["x" * 80] * (len(batch["instruction"]) - 1),
    }
    torch.testing.assert_close(
        goal_prediction(vla, alone)[0], goal_prediction(vla, padded)[0], atol=1e-5, rtol=0
    )


def test_freeze_llm_leaves_only_the_encoders_trainable(dataset):
    vla = model_for(dataset, freeze_llm=True)
    assert not any(p.requires_grad for p in vla.llm.parameters())
    assert all(p.requires_grad for p in vla.connector.parameters())


def test_lora_trains_adapters_only_and_round_trips(dataset, batch, tmp_path):
    vla = model_for(dataset, lora_rank=4)
    trainable = [name for name, p in vla.llm.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    vla.loss(batch)["loss"].backward()
    assert all(p.grad is not None for name, p in vla.llm.named_parameters() if p.requires_grad)
    vla.eval().save(tmp_path / "ckpt")
    np.testing.assert_array_equal(vla.predict(batch), VLA.load(tmp_path / "ckpt").eval().predict(batch))


@pytest.mark.parametrize("decoding", ["autoregressive", "parallel"])
def test_decoding_the_first_actions_equals_the_first_actions_of_the_whole_chunk(dataset, batch, decoding):
    """A model trained on K-action chunks may decode only the first n at inference: exact, since under the
    causal mask no token of the first n actions sees a later one (parallel: its placeholders are all computed,
    and the first n kept)."""
    torch.manual_seed(0)
    whole = model_for(dataset, decoding=decoding).eval()
    first = VLA(small_config(decoding=decoding, infer_actions=1), dataset.stats).eval()
    first.load_state_dict(whole.state_dict())
    chunks, one = whole.predict(batch), first.predict(batch)
    assert chunks.shape == (8, 4, 7) and one.shape == (8, 1, 7)
    np.testing.assert_array_equal(one, chunks[:, :1])
    two = VLA(small_config(decoding=decoding, infer_actions=2), dataset.stats).eval()
    two.load_state_dict(whole.state_dict())
    np.testing.assert_array_equal(two.predict(batch), chunks[:, :2])
    with pytest.raises(ValueError, match="infer_actions"):
        small_config(infer_actions=5)  # more than the chunk's 4


def test_the_goal_head_also_predicts_the_state_at_the_next_gripper_switch(dataset, batch):
    """goal_switch: the head's target is [end state, next-switch state], so the pick is localised too."""
    vla = model_for(dataset, goal_loss=1.0, goal_switch=True)
    out = vla.loss(batch)
    target = torch.cat(
        [vla.processor.state(batch["goal_state"]), vla.processor.state(batch["switch_state"])], 1
    )
    prediction = goal_prediction(vla, batch)
    assert prediction.shape == target.shape
    assert torch.allclose(out["goal_l1"], (prediction - target).abs().mean(), atol=1e-5)
    with pytest.raises(ValueError, match="switch_state"):
        vla.loss({k: v for k, v in batch.items() if k != "switch_state"})
    with pytest.raises(ValueError, match="goal_switch"):
        small_config(goal_switch=True)  # without goal_loss it has no head to extend


def test_the_termination_head_learns_which_frame_ends_its_instruction(dataset, batch):
    """done_loss: a head says whether a frame is the last of its instruction (a skill's end, with skill
    labels); the policy's output then carries its probability."""
    assert batch["instruction_done"].tolist() == [False] * 5 + [True, False, False]  # episode 0 has 6 frames
    with pytest.raises(ValueError, match="no termination head"):
        model_for(dataset).predict(batch, with_done=True)
    stats = dataset.stats["observation.state"]  # the fake frames look alike: spread the states apart
    q01, q99 = (torch.as_tensor(stats[q], dtype=torch.float32) for q in ("q01", "q99"))
    batch["state"] = q01 + torch.linspace(0, 1, len(batch["state"]))[:, None] * (q99 - q01)
    vla = model_for(dataset, done_loss=1.0)
    optimizer = torch.optim.AdamW([p for p in vla.parameters() if p.requires_grad], lr=2e-3)
    for _ in range(60):
        out = vla.loss(batch)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
    actions, done = vla.predict(batch, with_done=True)
    assert actions.shape == vla.predict(batch).shape and done.shape == (8,)
    assert done[5] > 0.5 and (np.delete(done, 5) < 0.5).all(), done
    assert out["done_accuracy"] == 1.0
    with pytest.raises(ValueError, match="instruction_done"):
        vla.loss({k: v for k, v in batch.items() if k != "instruction_done"})
    with pytest.raises(ValueError, match="done_loss"):
        small_config(done_loss=-1.0)
