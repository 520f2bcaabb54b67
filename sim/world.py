"""Physics: one compiled MuJoCo model and its data, with named accessors for the robot and objects.

Tasks, the controller and the experts read and write the simulation only through this class, so none of
them handles MuJoCo indices.
"""

from __future__ import annotations

import mujoco
import numpy as np

from sim import robot


def yaw_quat(yaw: float) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a rotation by ``yaw`` about world z."""
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def rotation_6d(mat: np.ndarray) -> np.ndarray:
    """First two columns of a rotation matrix, (6,): a continuous orientation representation."""
    return mat.reshape(3, 3)[:, :2].T.reshape(6)


def state_vector(tcp_pos, tcp_mat, gripper_opening: float, joints) -> np.ndarray:
    """The observation's float32 (17,) state (``sim.contract.STATE_NAMES``) from a TCP pose (position (3,) and
    rotation (3, 3), base frame), the gripper opening (m) and the 7 joint positions (rad). Robot adapters
    build their state with this, so it has the simulator's layout."""
    parts = [
        np.asarray(tcp_pos, dtype=np.float64).reshape(3),
        rotation_6d(np.asarray(tcp_mat, dtype=np.float64)),
        [float(gripper_opening)],
        np.asarray(joints, dtype=np.float64).reshape(7),
    ]
    return np.concatenate(parts).astype(np.float32)


class World:
    def __init__(self, model: mujoco.MjModel):
        self.model = model
        self.data = mujoco.MjData(model)
        self.arm_qpos_adr = np.array([self._joint_qpos_adr(j) for j in robot.ARM_JOINTS])
        self._arm_dof = np.array([model.jnt_dofadr[self._joint_id(j)] for j in robot.ARM_JOINTS])
        self._finger_qpos = np.array([self._joint_qpos_adr(j) for j in robot.FINGER_JOINTS])
        self.arm_limits = model.jnt_range[[self._joint_id(j) for j in robot.ARM_JOINTS]].copy()  # (7, 2)
        self.arm_actuators = np.array([self._id(mujoco.mjtObj.mjOBJ_ACTUATOR, j) for j in robot.ARM_JOINTS])
        self.finger_actuators = np.array(
            [self._id(mujoco.mjtObj.mjOBJ_ACTUATOR, j) for j in robot.FINGER_JOINTS]
        )
        self.tcp_site = self._id(mujoco.mjtObj.mjOBJ_SITE, robot.TCP_SITE)
        self.finger_geoms = frozenset(self._id(mujoco.mjtObj.mjOBJ_GEOM, g) for g in robot.FINGER_GEOMS)

    # -- names -> indices -------------------------------------------------------------------------------
    def _id(self, kind: mujoco.mjtObj, name: str) -> int:
        index = mujoco.mj_name2id(self.model, kind, name)
        if index < 0:
            raise KeyError(f"no {kind.name[6:].lower()} named {name!r} in the scene")
        return index

    def _joint_id(self, name: str) -> int:
        return self._id(mujoco.mjtObj.mjOBJ_JOINT, name)

    def _joint_qpos_adr(self, name: str) -> int:
        return int(self.model.jnt_qposadr[self._joint_id(name)])

    def body_id(self, name: str) -> int:
        return self._id(mujoco.mjtObj.mjOBJ_BODY, name)

    def camera_id(self, name: str) -> int:
        return self._id(mujoco.mjtObj.mjOBJ_CAMERA, name)

    def geom_id(self, name: str) -> int:
        return self._id(mujoco.mjtObj.mjOBJ_GEOM, name)

    # -- robot ------------------------------------------------------------------------------------------
    @property
    def arm_qpos(self) -> np.ndarray:  # (7,)
        return self.data.qpos[self.arm_qpos_adr].copy()

    @property
    def arm_dofs(self) -> np.ndarray:  # (7,) column indices of the arm in a Jacobian
        return self._arm_dof

    def set_arm_qpos(self, qpos: np.ndarray) -> None:
        self.data.qpos[self.arm_qpos_adr] = qpos
        self.data.ctrl[self.arm_actuators] = qpos

    def set_gripper_opening(self, opening: float) -> None:
        per_finger = np.clip(opening / 2, 0.0, robot.FINGER_TRAVEL)
        self.data.qpos[self._finger_qpos] = per_finger
        self.data.ctrl[self.finger_actuators] = per_finger

    @property
    def tcp_pos(self) -> np.ndarray:  # (3,)
        return self.data.site_xpos[self.tcp_site].copy()

    @property
    def tcp_mat(self) -> np.ndarray:  # (3, 3)
        return self.data.site_xmat[self.tcp_site].reshape(3, 3).copy()

    @property
    def gripper_opening(self) -> float:
        """Distance between the finger pads, m (0 closed, 0.08 fully open)."""
        return float(self.data.qpos[self._finger_qpos].sum())

    # -- objects ----------------------------------------------------------------------------------------
    def body_pos(self, name: str) -> np.ndarray:
        return self.data.xpos[self.body_id(name)].copy()

    def body_mat(self, name: str) -> np.ndarray:
        return self.data.xmat[self.body_id(name)].reshape(3, 3).copy()

    def body_yaw(self, name: str) -> float:
        mat = self.body_mat(name)
        return float(np.arctan2(mat[1, 0], mat[0, 0]))

    def set_free_pose(self, joint: str, pos, yaw: float = 0.0) -> None:
        adr = self._joint_qpos_adr(joint)
        self.data.qpos[adr : adr + 3] = pos
        self.data.qpos[adr + 3 : adr + 7] = yaw_quat(yaw)

    def set_body_pos(self, body: str, pos, yaw: float | None = None) -> None:
        """Move a fixed (jointless) body such as a bin or a cabinet. This edits the model, so tasks set it
        at every reset."""
        index = self.body_id(body)
        self.model.body_pos[index] = pos
        if yaw is not None:
            self.model.body_quat[index] = yaw_quat(yaw)

    def joint_value(self, name: str) -> float:
        return float(self.data.qpos[self._joint_qpos_adr(name)])

    def set_joint_value(self, name: str, value: float) -> None:
        self.data.qpos[self._joint_qpos_adr(name)] = value

    def set_rgba(self, geom: str, rgb) -> None:
        self.model.geom_rgba[self.geom_id(geom)] = (*rgb, 1.0)

    def touching(self, geom_ids: frozenset[int], body: str) -> bool:
        """Whether any of ``geom_ids`` is in contact with a geom of ``body``."""
        n = self.data.ncon
        geom1, geom2 = self.data.contact.geom1[:n], self.data.contact.geom2[:n]
        bodies = self.model.geom_bodyid
        target = self.body_id(body)
        ours = np.isin(geom1, list(geom_ids)) & (bodies[geom2] == target)
        theirs = np.isin(geom2, list(geom_ids)) & (bodies[geom1] == target)
        return bool(np.any(ours | theirs))

    def grasped(self, body: str) -> bool:
        """Both finger pads touch ``body``."""
        return all(self.touching(frozenset({g}), body) for g in self.finger_geoms)

    def forward(self) -> None:
        mujoco.mj_forward(self.model, self.data)
