"""Recording deployment episodes as a LeRobotDataset v3.0 (``vla-deploy record=DIR``).

Frame t of an episode is the observation the tick acted on and the action that was executed, after the
safety layer (a hold: zero motion with the gripper kept). Each episode row carries, beside LeRobot's
columns, ``vla/<key>`` extras: sim_task, seed, success, ticks held, actions dropped, interventions, mode.
Which interventions changed which frame is kept in a sidecar file that LeRobot's loader never reads,
``meta/vla_interventions/episode-<index>.json``::

    {"episode_index": 3, "length": T, "interventions": [[reason, ...] for each frame], "counts": {reason: n}}

It is written after the episode is committed (the dataset's commit point is info.json), so a crash in between
leaves an episode without a sidecar, never a sidecar without its episode.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from policies.runtime.safety import Command
from sim.contract import ACTION_NAMES, STATE_NAMES
from vla.data.atomic import write_json_atomic
from vla.data.layout import INFO_PATH
from vla.data.video import encode_video
from vla.data.writer import DatasetWriter, Episode

SIDECAR = "meta/vla_interventions/episode-{index:06d}.json"
STAGING = ".vla_staging"


class DeploymentRecorder:
    """Collects one episode's frames (``frame`` is the control loop's per-tick hook) and commits them."""

    def __init__(
        self, root: str | Path, *, fps: float, cameras, image_size, robot_type: str, codec="libx264"
    ):
        root = Path(root)
        setup = {
            "fps": fps,
            "cameras": tuple(cameras),
            "image_size": tuple(image_size),
            "state_names": STATE_NAMES,
            "action_names": ACTION_NAMES,
            "codec": codec,
        }
        if not cameras:
            raise ValueError("recording needs at least one camera (cameras=[...])")
        if (root / INFO_PATH).exists():
            self.writer = DatasetWriter.open(root, **setup)
        else:
            self.writer = DatasetWriter.create(root, robot_type=robot_type, **setup)
        self.fps, self.codec, self.cameras = fps, codec, tuple(cameras)
        self._staging = root / STAGING
        self._begin()

    def _begin(self) -> None:
        self._images: dict[str, list[np.ndarray]] = {camera: [] for camera in self.cameras}
        self._state: list[np.ndarray] = []
        self._actions: list[np.ndarray] = []
        self._reasons: list[list[str]] = []

    def frame(self, obs: dict, command: Command) -> None:
        for camera in self.cameras:
            if camera not in obs["images"]:
                raise ValueError(f"the robot's observation has no camera {camera!r} to record")
            self._images[camera].append(np.asarray(obs["images"][camera]))
        self._state.append(np.asarray(obs["state"], dtype=np.float32))
        self._actions.append(np.asarray(command.action, dtype=np.float32))
        self._reasons.append(list(command.reasons))

    def commit(self, instruction: str, extra: dict) -> int | None:
        """Add the collected episode to the dataset (None when it has no frame); start collecting the next."""
        if not self._state:
            return None
        try:
            videos = {
                camera: encode_video(np.stack(frames), self._staging / f"{camera}.mp4", self.fps, self.codec)
                for camera, frames in self._images.items()
            }
            episode = Episode(instruction, np.stack(self._state), np.stack(self._actions), videos, extra)
            index = self.writer.add_episode(episode)
            counts = Counter(reason for reasons in self._reasons for reason in reasons)
            sidecar = {
                "episode_index": index,
                "length": len(self._reasons),
                "interventions": self._reasons,
                "counts": dict(counts),
            }
            write_json_atomic(self.writer.root / SIDECAR.format(index=index), sidecar)
        finally:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._begin()
        return index

    def close(self) -> None:
        self.writer.close()
