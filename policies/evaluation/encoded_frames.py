"""A policy that sees its camera images the way training saw them: through the video codec.

Training frames are decoded from the dataset's videos (H.264 at CRF 23 by default: about one grey level of
error on our renders); simulated evaluation frames are exact. ``vla-eval frame_codec=libx264`` wraps the
policy so that each image goes through an encode and decode first, which measures whether the difference
matters (docs/benchmarks.md). The state and the instruction pass untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

from sim.contract import OBS_IMAGES
from vla.data.video import round_trip


class EncodedFrames:
    """``EncodedFrames(policy, codec)``: ``policy`` with its observations' images round-tripped."""

    def __init__(self, policy, codec: str):
        self.policy = policy
        self.codec = codec

    def __getattr__(self, name: str):
        # cameras, image_size, check_compatible, checkpoint, config, ...: whatever the wrapped policy has
        return getattr(self.policy, name)

    def reset(self) -> None:
        self.policy.reset()

    def infer(self, obs: dict) -> dict:
        return self.policy.infer(self._encoded(obs))

    def infer_batch(self, observations: Sequence[dict]) -> list[dict]:
        return self.policy.infer_batch([self._encoded(obs) for obs in observations])

    def _encoded(self, obs: dict) -> dict:
        images = {camera: round_trip(image, self.codec) for camera, image in obs[OBS_IMAGES].items()}
        return {**obs, OBS_IMAGES: images}
