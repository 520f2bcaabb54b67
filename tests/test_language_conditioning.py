"""The instruction conditions the network early: a frozen sentence encoder, FiLM in the vision, one token."""

from __future__ import annotations

import pytest
import torch
from test_vla_model import CAMERAS, small_config

from vla.data.dataset import VLADataset, collate
from vla.model.config import LanguageConfig, ModelConfig, VisionConfig
from vla.model.language import InstructionEncoder
from vla.model.vla import VLA

LANGUAGE = LanguageConfig(encoder="minilm")


@pytest.fixture
def dataset(make_dataset):
    return VLADataset(make_dataset(episodes=2, lengths=[6, 5]), cameras=CAMERAS, chunk_size=4)


@pytest.fixture
def batch(dataset):
    return collate([dataset[i] for i in range(4)])


def test_the_features_keep_the_colour_and_the_word_order():
    """The features FiLM reads are fixed, so they cannot collapse to the task's identity the way a learned
    pooling did; they must still tell colours apart and which colour comes first."""
    encoder = InstructionEncoder(LANGUAGE, 32)

    def features(*texts: str) -> torch.Tensor:
        return encoder(list(texts), torch.device("cpu"))[0]

    red, green, paraphrase = features("press the red button", "press the green button", "hit the red button")
    assert torch.dist(red, green) > torch.dist(red, paraphrase)
    ordered, swapped = features(
        "push the red cube to the blue target", "push the blue cube to the red target"
    )
    order = encoder.text.dim  # the first moment past the mean: early words vs late ones
    mean_gap = torch.dist(ordered[:order], swapped[:order])
    assert torch.dist(ordered[order:], swapped[order:]) > mean_gap  # the mean barely sees the swap
    # Encoded once, then cached; the frozen encoder's weights are not the policy's parameters.
    assert len(encoder.features) == 5
    assert [name for name, _ in encoder.named_parameters()] == [
        "token.0.weight",
        "token.0.bias",
        "token.1.weight",
        "token.1.bias",
    ]


def test_whitening_removes_what_the_training_instructions_share():
    """Raw, "press the red button" and "press the green button" point almost the same way (cosine 0.8):
    a small linear map cannot tell them apart. Whitened over the training instructions, the shared
    template is gone and the colour sets the direction."""
    encoder = InstructionEncoder(LANGUAGE, 32)
    colours = ("red", "green", "blue", "yellow")
    texts = [f"{verb} the {c} button" for verb in ("press", "push", "hit") for c in colours]

    def cosine() -> float:
        red, green = encoder(["press the red button", "press the green button"], torch.device("cpu"))[0]
        return float(torch.cosine_similarity(red, green, dim=0))

    assert cosine() > 0.6
    encoder.fit(texts)
    assert cosine() < 0.3
    assert encoder(texts, torch.device("cpu"))[0].mean(0).abs().max() < 1e-5


def test_film_makes_the_image_tokens_depend_on_the_instruction(dataset, batch):
    torch.manual_seed(0)
    vla = VLA(small_config(language=LANGUAGE, goal_loss=1.0), dataset.stats)
    for layer in vla.vision.backbones[0].film.layers:  # zero-initialised: give them a value to test with
        torch.nn.init.normal_(layer.weight, std=0.1)
    _, _, parts = vla._prefix(batch)
    other = {**batch, "instruction": ["press the blue button"] * len(batch["instruction"])}
    _, _, other_parts = vla._prefix(other)
    assert not torch.allclose(parts["images"], other_parts["images"])
    assert not torch.allclose(parts["instruction"], other_parts["instruction"])
    out = vla.loss(batch)
    out["loss"].backward()
    assert vla.language.token[0].weight.grad is not None, "the action and goal losses must train the token"
    assert vla.vision.backbones[0].film.layers[0].weight.grad is not None


def test_a_language_model_round_trips_through_a_checkpoint(dataset, batch, tmp_path):
    torch.manual_seed(0)
    vla = VLA(small_config(language=LANGUAGE), dataset.stats)
    vla.fit_instructions([f"press the {c} button" for c in ("red", "green", "blue")] + batch["instruction"])
    vla.save(tmp_path / "ckpt")
    loaded = VLA.load(tmp_path / "ckpt")
    assert loaded.config.language == LANGUAGE
    torch.testing.assert_close(loaded.language.feature_scale, vla.language.feature_scale)
    assert (loaded.predict(batch) == vla.predict(batch)).all()


def test_language_config_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"language\.encoder"):
        LanguageConfig(encoder="bert")
    with pytest.raises(ValueError, match=r"language\.film"):
        ModelConfig(vision=VisionConfig(kind="vit", patch=8), image_size=[32, 32], language=LANGUAGE)
    with pytest.raises(ValueError, match=r"no config\.json"):
        InstructionEncoder(LanguageConfig(encoder="minilm", path="/nonexistent"), 32)


def test_instruction_keypoints_follow_the_words(dataset, batch):
    """Keypoints whose filter is made from the instruction: another instruction moves them; training
    reaches the query map; without the language encoder it is a configuration error."""
    from vla.model.config import ConnectorConfig

    keypoints = ConnectorConfig(kind="keypoints", num_queries=2, keypoints=4, instruction_keypoints=2)
    grid = VisionConfig(kind="resnet18", width=64, stages=2)  # a 4x4 feature grid at 32x32 pixels
    torch.manual_seed(0)
    config = small_config(language=LANGUAGE, connector=keypoints, vision=grid, goal_loss=1.0)
    vla = VLA(config, dataset.stats)
    _, _, parts = vla._prefix(batch)
    other = {**batch, "instruction": ["press the blue button"] * len(batch["instruction"])}
    _, _, other_parts = vla._prefix(other)
    assert not torch.allclose(parts["images"], other_parts["images"])
    vla.loss(batch)["loss"].backward()
    assert vla.connector.queries.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"needs model\.language"):
        VLA(small_config(connector=keypoints, vision=grid), dataset.stats)
    with pytest.raises(ValueError, match="for kind 'keypoints'"):
        ConnectorConfig(kind="mlp", instruction_keypoints=2)


def test_instruction_words_tell_which_colour_is_where(dataset, batch):
    """With instruction words each instruction keypoint reads the words through its own attention: two
    instructions with the same words in another order make other filters, a padded batch gives each
    instruction what it gives alone, and training reaches the word queries."""
    from vla.model.config import ConnectorConfig

    words = ConnectorConfig(
        kind="keypoints", num_queries=2, keypoints=4, instruction_keypoints=2, instruction_words=True
    )
    grid = VisionConfig(kind="resnet18", width=64, stages=2)
    torch.manual_seed(0)
    vla = VLA(small_config(language=LANGUAGE, connector=words, vision=grid, goal_loss=1.0), dataset.stats)
    connector = vla.connector
    texts = ["put the red cube on the blue target", "put the blue cube on the red target", "red"]
    states, mask = vla.language.words(texts, torch.device("cpu"))
    assert mask.sum(1).tolist()[2] < mask.shape[1]  # the short one is padded
    filters = connector._word_filters(states, mask)  # (3, K, Cs)
    assert not torch.allclose(filters[0], filters[1])
    alone = connector._word_filters(*vla.language.words(texts[2:], torch.device("cpu")))
    torch.testing.assert_close(filters[2:], alone)
    vla.loss(batch)["loss"].backward()
    assert connector.word_queries.grad.abs().sum() > 0 and connector.word_filters.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"instruction_words needs connector\.instruction_keypoints"):
        ConnectorConfig(kind="keypoints", instruction_words=True)
