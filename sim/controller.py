"""Cartesian end-effector control: a 7-D action becomes joint-position targets.

The action ``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` in [-1, 1] moves a commanded tool-centre-point
(TCP) pose: translation by ``action[:3] * MAX_TRANSLATION`` metres along world x, y, z, and rotation by the
rotation vector ``action[3:6] * MAX_ROTATION`` radians about world x, y, z (applied on the left). Damped
least-squares inverse kinematics, iterated on a scratch copy of the kinematics, turns the commanded pose
into joint targets for the arm's position servos. ``gripper`` maps linearly from -1 (fully open, 0.08 m)
to +1 (closed); the finger servos have a force limit, so a closed command holds an object.
``next_commanded_pose`` is the pose update on its own, which the real-robot adapters call too.
"""

from __future__ import annotations

import mujoco
import numpy as np

from sim import robot
from sim.world import World

MAX_TRANSLATION = 0.05  # m per control step at |action| = 1
MAX_ROTATION = 0.25  # rad per control step at |action| = 1
GRIPPER_OPEN, GRIPPER_CLOSED = -1.0, 1.0

# The commanded pose may lead the measured one by at most this much, so a blocked arm does not wind up.
_MAX_LEAD = 0.08  # m
_MAX_LEAD_ANGLE = 0.5  # rad
# Where the commanded TCP may go: above the table, within reach.
WORKSPACE_LOW = np.array([0.15, -0.45, 0.0])
WORKSPACE_HIGH = np.array([0.85, 0.45, 0.55])


def rotvec_to_mat(rotvec: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(rotvec))
    quat = np.array([1.0, 0.0, 0.0, 0.0])
    if angle > 1e-12:
        mujoco.mju_axisAngle2Quat(quat, rotvec / angle, angle)
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, quat)
    return mat.reshape(3, 3)


def orientation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Rotation vector (world frame) that takes ``current`` to ``target``, both 3x3 matrices."""
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, (target @ current.T).reshape(9))
    rotvec = np.zeros(3)
    mujoco.mju_quat2Vel(rotvec, quat, 1.0)
    return rotvec


def next_commanded_pose(
    target_pos: np.ndarray,
    target_mat: np.ndarray,
    tcp_pos: np.ndarray,
    tcp_mat: np.ndarray,
    action: np.ndarray,
    translation_step: float = MAX_TRANSLATION,
    rotation_step: float = MAX_ROTATION,
    max_lead: float = _MAX_LEAD,
    max_lead_angle: float = _MAX_LEAD_ANGLE,
    workspace: tuple[np.ndarray, np.ndarray] = (WORKSPACE_LOW, WORKSPACE_HIGH),
) -> tuple[np.ndarray, np.ndarray]:
    """The commanded TCP pose (position (3,), rotation (3, 3)) after one action.

    ``target_*`` is the pose commanded so far, ``tcp_*`` the measured one, ``action`` a validated action
    (only its first six entries are read). Translation moves along world axes; rotation is applied on the
    left, about world axes. The result is kept within ``max_lead`` / ``max_lead_angle`` of the measured pose
    and its position inside ``workspace``. The simulator and the real-robot adapters all call this one
    function, so an action means the same everywhere.
    """
    pos = target_pos + action[:3] * translation_step
    lead = pos - tcp_pos
    lead_norm = float(np.linalg.norm(lead))
    if lead_norm > max_lead:
        pos = tcp_pos + lead * (max_lead / lead_norm)
    pos = np.clip(pos, workspace[0], workspace[1])

    mat = rotvec_to_mat(action[3:6] * rotation_step) @ target_mat
    lead_rot = orientation_error(mat, tcp_mat)
    angle = float(np.linalg.norm(lead_rot))
    if angle > max_lead_angle:
        mat = rotvec_to_mat(lead_rot * (max_lead_angle / angle)) @ tcp_mat
    return pos, mat


class CartesianController:
    """Holds the commanded TCP pose and writes joint and finger targets to ``world.data.ctrl``."""

    def __init__(
        self, world: World, ik_iterations: int = 3, damping: float = 0.05, nullspace_gain: float = 0.1
    ):
        self.world = world
        self.ik_iterations = ik_iterations
        self.damping = damping
        self.nullspace_gain = nullspace_gain
        self._scratch = mujoco.MjData(world.model)  # IK iterates here, never on the live simulation
        self._jacp = np.zeros((3, world.model.nv))
        self._jacr = np.zeros((3, world.model.nv))
        self.target_pos = np.zeros(3)
        self.target_mat = np.eye(3)

    def reset(self) -> None:
        """Command the pose the robot is in now."""
        self.target_pos = self.world.tcp_pos
        self.target_mat = self.world.tcp_mat

    def apply(self, action: np.ndarray) -> None:
        """Update the commanded pose by one (validated) action and write the servo targets."""
        self.target_pos, self.target_mat = next_commanded_pose(
            self.target_pos, self.target_mat, self.world.tcp_pos, self.world.tcp_mat, action
        )
        world = self.world
        world.data.ctrl[world.arm_actuators] = self.solve_ik(self.target_pos, self.target_mat)
        opening = (1.0 - float(action[6])) / 2 * robot.FINGER_TRAVEL
        world.data.ctrl[world.finger_actuators] = opening

    def solve_ik(self, pos: np.ndarray, mat: np.ndarray) -> np.ndarray:
        """Joint positions (7,) that put the TCP at ``pos`` with orientation ``mat``, near the current ones."""
        world, scratch = self.world, self._scratch
        scratch.qpos[:] = world.data.qpos
        dofs = world.arm_dofs
        limits = world.arm_limits
        q = world.arm_qpos
        for _ in range(self.ik_iterations):
            scratch.qpos[world.arm_qpos_adr] = q
            mujoco.mj_kinematics(world.model, scratch)
            mujoco.mj_comPos(world.model, scratch)
            mujoco.mj_jacSite(world.model, scratch, self._jacp, self._jacr, world.tcp_site)
            jac = np.vstack([self._jacp[:, dofs], self._jacr[:, dofs]])  # (6, 7)
            site_pos = scratch.site_xpos[world.tcp_site]
            site_mat = scratch.site_xmat[world.tcp_site].reshape(3, 3)
            error = np.concatenate([pos - site_pos, orientation_error(mat, site_mat)])
            jjt = jac @ jac.T + (self.damping**2) * np.eye(6)
            dq = jac.T @ np.linalg.solve(jjt, error)
            # Pull towards the home posture in the Jacobian's null space, away from joint limits.
            null = np.eye(7) - jac.T @ np.linalg.solve(jjt, jac)
            dq += null @ (self.nullspace_gain * (robot.HOME_QPOS - q))
            q = np.clip(q + dq, limits[:, 0], limits[:, 1])
        return q
