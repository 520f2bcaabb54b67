"""Where a demonstration's gripper command switches: the grasp and the release, the moments a task turns on.

A vla-stack dataset names its gripper action ``gripper`` (> 0 closes). A frame *switches* when its gripper
label has the other sign than the frame before it in the same episode. ``next_switch_rows`` gives, for every
frame, the row of the next switch at or after it (the episode's last row when none is left): the state there
is where the current phase of the task ends (the fingers around the object to pick, the object over the place
to release it), a target the model can be asked to predict from the first frame of that phase on.
"""

from __future__ import annotations

import numpy as np

from vla.data.meta import DatasetMeta
from vla.data.table import FrameTable

GRIPPER = "gripper"  # the action named so is the gripper command: > 0 closes, as in every vla-stack dataset


def gripper_column(meta: DatasetMeta) -> int | None:
    """The index of the gripper action, or None when the dataset's actions name none."""
    names = list(meta.features.get("action", {}).get("names") or [])
    return names.index(GRIPPER) if GRIPPER in names else None


def gripper_switches(table: FrameTable, column: int) -> np.ndarray:
    """(N,) bool: the frames whose gripper label has the other sign than the frame before it, in the same
    episode. At the moment of closing the gripper is still open, so the state says "keep it open" on every
    frame but this one; a policy that reads the state learns to never close (docs/benchmarks.md)."""
    closing = table.action[:, column] > 0
    switched = np.zeros(len(closing), dtype=bool)
    switched[1:] = closing[1:] != closing[:-1]
    return switched & (table.frame_index > 0)


def next_switch_rows(table: FrameTable, switched: np.ndarray) -> np.ndarray:
    """(N,) int64: for each row, the first row at or after it (same episode) where ``switched`` holds, else
    the episode's last row."""
    rows = np.arange(len(switched), dtype=np.int64)
    marks = np.where(switched, rows, table.last)  # a switch names itself; any other row its episode's end
    # A running minimum from the end: every mark of an episode is <= its last row < any later episode's
    # marks, so the minimum over rows r.. never reaches past r's own episode.
    return np.minimum.accumulate(marks[::-1])[::-1].copy()
