"""A fake of the franky API (libfranka's Python bindings) for tests without a robot: ``franky`` in
``sys.modules`` (the ``franky`` fixture) records every call and reports whatever pose a test sets.

``franky.follow = True`` (before the robot is opened): the arm reaches each motion's target at once (its
measured pose or joints become the target), so a control loop sees it move; by default it stays where a test
put it.
"""

from __future__ import annotations

import sys
import threading
import types

import numpy as np
import pytest

from policies.runtime.franka import hand_tcp_in_flange

HAND = hand_tcp_in_flange()


def pose(pos, mat) -> np.ndarray:
    """The 4x4 homogeneous transform of a position and a rotation matrix."""
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = mat, pos
    return matrix


# -- the fake franky ----------------------------------------------------------------------------------------
class ControlException(Exception):
    pass


class Affine:
    def __init__(self, matrix=None):
        self.matrix = np.eye(4) if matrix is None else np.array(matrix, dtype=np.float64)


class ReferenceType:
    Absolute = "Absolute"
    Relative = "Relative"


class CartesianMotion:
    def __init__(self, target, reference_type=ReferenceType.Relative, return_when_finished=True):
        self.target, self.reference_type = target, reference_type
        self.return_when_finished = return_when_finished


class JointMotion:
    def __init__(self, target, reference_type=ReferenceType.Absolute):
        self.target, self.reference_type = np.array(target), reference_type


class FakeRobot:
    def __init__(self, host: str, flange_to_ee: np.ndarray):
        self.host, self.calls = host, []
        self.relative_dynamics_factor = 1.0
        self.flange_to_ee = flange_to_ee  # what Desk configured as the end effector
        self.o_t_ee, self.q = np.eye(4), np.zeros(7)
        self.follow = False  # true: each motion's target is reached at once
        self._motion_error = None

    def set_tcp(self, tcp: np.ndarray) -> None:
        """Report the end-effector pose of a TCP at ``tcp`` (the TCP sits at HAND in the flange frame)."""
        self.o_t_ee = tcp @ np.linalg.inv(HAND) @ self.flange_to_ee

    @property
    def state(self):
        return types.SimpleNamespace(
            O_T_EE=Affine(self.o_t_ee), F_T_EE=Affine(self.flange_to_ee), q=self.q.copy()
        )

    def move(self, motion, asynchronous=False):
        self.calls.append(("move", motion, asynchronous))
        if self.follow and isinstance(motion, CartesianMotion):
            self.o_t_ee = motion.target.matrix.copy()
        elif self.follow and isinstance(motion, JointMotion):
            self.q = motion.target.astype(np.float64)

    def stop(self):
        self.calls.append(("stop",))
        self._motion_error = ControlException("motion aborted by stop")  # as libfranka does

    def join_motion(self, timeout=None):
        self.calls.append(("join_motion",))
        error, self._motion_error = self._motion_error, None
        if error is not None:
            raise error
        return True

    def recover_from_errors(self):
        self.calls.append(("recover_from_errors",))
        return True

    def moves(self) -> list:
        return [call for call in self.calls if call[0] == "move"]


class FakeGripper:
    def __init__(self, host: str):
        self.calls, self.width, self.max_width = [], 0.08, 0.08
        self.gate = threading.Event()  # cleared: commands block, as the real ones do for ~0.5 s
        self.gate.set()
        self.fail = False

    def grasp(self, width, speed, force, epsilon_inner=0.005, epsilon_outer=0.005):
        self.calls.append(("grasp", width, force))
        self.gate.wait(5)
        return True

    def move(self, width, speed):
        self.calls.append(("move", round(width, 6)))
        self.gate.wait(5)
        if self.fail:
            raise RuntimeError("CommandException: move failed")
        self.width = width
        return True


@pytest.fixture(name="franky")
def franky_fixture(monkeypatch):
    """The fake franky module; ``franky.robots`` / ``franky.grippers`` hold what the adapter opened."""
    module = types.ModuleType("franky")
    module.robots, module.grippers = [], []
    module.flange_to_ee = np.eye(4)  # Desk set to "no end effector": EE is the flange
    module.follow = False

    def robot(host):
        module.robots.append(FakeRobot(host, module.flange_to_ee))
        module.robots[-1].follow = module.follow
        module.robots[-1].set_tcp(pose([0.5, 0.0, 0.3], np.diag([1.0, -1.0, -1.0])))
        return module.robots[-1]

    def gripper(host):
        module.grippers.append(FakeGripper(host))
        return module.grippers[-1]

    module.Robot, module.Gripper = robot, gripper
    module.Affine, module.ReferenceType = Affine, ReferenceType
    module.CartesianMotion, module.JointMotion = CartesianMotion, JointMotion
    module.ControlException = ControlException
    monkeypatch.setitem(sys.modules, "franky", module)
    return module
