"""``vla-deploy``: a policy on a robot, through the safety layer, at a fixed rate, with a report.

    vla-deploy policy=expert task=PickUp episodes_per_task=10                         # a rehearsal in simulation
    vla-deploy checkpoint=runs/tiny task=PickUp remote=true episodes_per_task=20      # the simulator in its own process
    vla-deploy checkpoint=runs/tiny async_inference=false                    # vla-eval's receding horizon
    VLA_SERVE_API_KEY=KEY vla-deploy server=gpu-box:8000 task=PickUp         # a policy served by vla-serve
    vla-deploy checkpoint=runs/tiny safety.scale=0.3 safety.max_translation=0.02   # a slow first run
    vla-deploy checkpoint=runs/tiny safety.dry_run=true                      # compute and log, send nothing
    vla-deploy policy=expert record=data/deployments episodes_per_task=5              # record what was executed
    vla-deploy robot=franka franka.host=172.16.0.2 'franka.cameras={agentview: 0, wrist: 2}' \
        checkpoint=runs/tiny instruction='pick up the red block' max_steps=300 safety.scale=0.3   # the arm
    vla-deploy robot=my_arm 'robot_options={port: /dev/ttyUSB0}' checkpoint=runs/tiny instruction='...' \
        max_steps=300                    # a robot a package registered (policies/runtime/robots.py)

Writes ``report.json``, ``report.md``, ``timing.csv`` and ``timing.png`` under ``out`` (even when stopped
early). SIGINT / SIGTERM stop the robot and exit with 128 + the signal's number; a failing or stalled policy
stops it and exits with 1. Options: ``configs/deploy.yaml``, validated by ``DeployConfig``; the reference is
docs/runtime.md.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

import sim
from policies import cli
from policies.loading import EXPERT, load_policy
from policies.runtime import deploy_report
from policies.runtime.deploy_franka import FrankaOptions, check_franky, close_cameras, make_franka
from policies.runtime.estop import EStop, EStopped
from policies.runtime.loop import ControlLoop, EpisodeRun, LoopConfig, PolicyStalled
from policies.runtime.robots import BUILT_IN, FRANKA, SIM, load_robot_class, robot_path
from policies.runtime.safety import SafetyLayer, tightened
from policies.runtime.schedule import PolicyFailed
from policies.seeds import HELDOUT, episode_seeds
from policies.serving.client import API_KEY_ENV, PolicyClient
from policies.threads import passive_openmp

log = logging.getLogger(__name__)
HIDDEN = "<hidden>"  # what report.json says of a given API key
LIMIT_OPTIONS = (
    "max_translation",
    "max_rotation",
    "max_joint_step",
    "joint_margin",
    "max_gripper_change",
    "workspace_low",
    "workspace_high",
)


@dataclass
class SafetyOptions:
    enabled: bool = True  # false: only the finite check and the [-1, 1] clip (and scale) remain
    scale: float = 1.0  # arm actions multiplied by this, in (0, 1]: slow first runs
    dry_run: bool = False  # compute and log every command, send none
    # Tighter limits than the robot declares (null: the robot's own); they can only tighten.
    max_translation: float | None = None  # m of commanded TCP motion per step
    max_rotation: float | None = None  # rad of commanded TCP rotation per step
    max_joint_step: float | None = None  # rad per joint per step
    joint_margin: float | None = None  # rad kept clear of each joint limit
    max_gripper_change: float | None = None  # gripper command change per step (action units, 2: any)
    workspace_low: list[float] | None = None  # m, (3,) corner of the box the commanded TCP stays in
    workspace_high: list[float] | None = None  # m, (3,) the opposite corner

    def __post_init__(self):
        if not 0 < self.scale <= 1:
            raise ValueError(f"safety.scale must be in (0, 1], got {self.scale}")
        for name in LIMIT_OPTIONS[:5]:
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"safety.{name} must be >= 0, got {value}")

    def limits(self) -> dict:
        return {name: getattr(self, name) for name in LIMIT_OPTIONS}


@dataclass
class DeployConfig:
    # sim: a vla-stack task as a robot (policies.runtime.sim_robot) | franka: the arm | a name registered in
    # the vla_stack.robots entry points | package.module:Class (policies/runtime/robots.py, docs/robots.md)
    robot: str = SIM
    robot_options: Any = None  # a registered or module:Class robot: its class's keyword arguments
    task: str = "PickUp"  # robot=sim: the task
    seed: int | None = None  # robot=sim: episode i uses seed + i; null: the split's first seed
    split: str = HELDOUT.name  # robot=sim: the seeds' split (policies/seeds.py)
    remote: bool = False  # robot=sim: run the simulator in a spawned process, over the wire
    checkpoint: str | None = None  # the policy: a checkpoint or vla-train run directory, or
    policy: str | None = None  # "expert" (the scripted experts; robot=sim only), or
    server: str | None = None  # host:port of a vla-serve policy server
    # server: sent as "Authorization: Api-Key <key>"; null: $VLA_SERVE_API_KEY. Never written to a file.
    api_key: str | None = field(default=None, repr=False)
    instruction: str | None = None  # what the policy is told; null: the sim task's (robot=franka: required)
    episodes_per_task: int = 1  # episodes of the one task (or instruction), run one after the other
    rate_hz: float = 10.0  # control rate
    n_action_steps: int = 5  # sync: actions played per chunk; async: ticks between requests
    async_inference: bool = True  # false: ask, play n_action_steps, ask again (vla-eval's loop)
    max_steps: int | None = None  # ticks per episode, holds included; null: the sim's (franka: required)
    stall_timeout_s: float = 5.0  # no fresh action for this long: the robot holds and the run stops
    safety: SafetyOptions = field(default_factory=SafetyOptions)
    franka: FrankaOptions = field(default_factory=FrankaOptions)
    record: str | None = None  # a LeRobotDataset v3.0 directory to add every episode to
    out: str = "runs/deploy"  # report.json, report.md, timing.csv, timing.png
    cameras: list[str] | None = None  # robot=sim: cameras observed; null: those the policy reads
    image_size: list[int] | None = None  # (H, W) of the frames; null: the checkpoint's (128x128 otherwise)
    camera_map: Any = None  # checkpoint: model camera -> observation camera; null: identity
    device: str = "cpu"  # checkpoint: where the model runs

    def __post_init__(self):
        if isinstance(self.safety, dict):  # DeployConfig(safety={...}) from Python
            self.safety = SafetyOptions(**self.safety)
        if isinstance(self.franka, dict):
            self.franka = FrankaOptions(**self.franka)
        self._check_robot()
        given = [name for name in ("checkpoint", "policy", "server") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of checkpoint=DIR, policy=expert and server=host:port")
        if self.policy is not None and self.policy != EXPERT:
            raise ValueError(
                f"policy must be {EXPERT!r} (a checkpoint comes with checkpoint=DIR), got {self.policy!r}"
            )
        if self.server is not None:
            host_port(self.server)
            if self.api_key is None:  # the environment keeps the key off the command line (and `ps`)
                self.api_key = os.environ.get(API_KEY_ENV) or None
        if self.robot != FRANKA and self.franka.host is not None:
            raise ValueError(f"franka.host is set but robot={self.robot}: add robot=franka to run on the arm")
        if self.robot != SIM:
            self._check_real()
        elif self.task not in sim.list_tasks():
            raise ValueError(f"unknown task {self.task!r}; available: {sim.list_tasks()}")
        self.seeds()  # inside the split, or an error now
        self.loop_config(600)  # rate, n_action_steps, stall timeout
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.record is not None and self.safety.dry_run:
            raise ValueError(
                "a dry run executes nothing, so it has nothing to record: drop record= or dry_run"
            )
        if self.record is not None and not float(self.rate_hz).is_integer():
            raise ValueError(f"recording needs a whole rate_hz (the dataset's fps), got {self.rate_hz}")
        if self.instruction is not None and not self.instruction.strip():
            raise ValueError("instruction must not be empty")

    def _check_robot(self) -> None:
        """A registered name or an importable class path (before any policy loads); options that fit it."""
        robot_path(self.robot)  # or an error listing the registered names
        if self.robot not in BUILT_IN:
            load_robot_class(self.robot)
        elif self.robot_options is not None:
            raise ValueError(
                f"robot_options are a plugin robot's keyword arguments; robot={self.robot} takes "
                + ("task=, seed=, remote=, cameras=" if self.robot == SIM else "franka.*")
            )
        if not isinstance(self.robot_options, Mapping | None):
            raise ValueError(f"robot_options must map argument names to values, got {self.robot_options!r}")

    def _check_real(self) -> None:
        """What a real robot needs that the simulator would have supplied, and what means nothing there."""
        robot = self.robot
        if robot == FRANKA and not self.franka.host:
            raise ValueError("robot=franka needs franka.host=<the robot's IP address>, e.g. 172.16.0.2")
        if self.policy == EXPERT:
            raise ValueError(
                "policy=expert reads the simulator's state, so it runs on robot=sim only: give checkpoint=DIR "
                "or server=host:port"
            )
        if self.instruction is None:
            raise ValueError(f'robot={robot} needs instruction="...": a real robot has no task instruction')
        if self.max_steps is None:
            raise ValueError(
                f"robot={robot} needs max_steps=N, the ticks per episode (a real robot has no episode limit; "
                "300 ticks are 30 s at 10 Hz)"
            )
        sim_only = {"seed": self.seed is not None, "remote": self.remote, "cameras": self.cameras is not None}
        given = [name for name, is_set in sim_only.items() if is_set]
        if given:
            own = "franka.cameras={name: device, ...}" if robot == FRANKA else "its own (robot_options)"
            raise ValueError(
                f"{', '.join(given)} only mean something for robot=sim; robot={robot}'s cameras are {own}"
            )

    def seeds(self) -> list[int | None]:
        """Each episode's seed; a real robot's scene has none (its episodes are numbered, not seeded)."""
        if self.robot == SIM:
            return episode_seeds(self.split, self.episodes_per_task, self.seed)
        if self.episodes_per_task < 1:
            raise ValueError(f"episodes_per_task must be >= 1, got {self.episodes_per_task}")
        return [None] * self.episodes_per_task

    def loop_config(self, robot_max_steps: int) -> LoopConfig:
        return LoopConfig(
            rate_hz=self.rate_hz,
            n_action_steps=self.n_action_steps,
            async_inference=self.async_inference,
            max_steps=self.max_steps or robot_max_steps,
            stall_timeout_s=self.stall_timeout_s,
        )


ConfigStore.instance().store(name="deploy_schema", node=DeployConfig)


def host_port(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"server must be host:port, e.g. localhost:8000, got {server!r}")
    return host, int(port)


def make_policy(config: DeployConfig):
    """The policy the options name: served (a client of ``server``), else loaded as vla-eval loads it."""
    if config.server is not None:
        host, port = host_port(config.server)
        return PolicyClient(host=host, port=port, api_key=config.api_key)
    return load_policy(config.policy or config.checkpoint, camera_map=config.camera_map, device=config.device)


def make_robot(config: DeployConfig, policy):
    from policies.runtime.sim_robot import make_sim_robot

    # What the policy reads: a served policy says so in the metadata it sent on connecting.
    reads = getattr(policy, "server_metadata", None) or {}
    image_size = tuple(
        config.image_size or reads.get("image_size") or getattr(policy, "image_size", None) or (128, 128)
    )
    expert = config.policy == EXPERT or reads.get("policy") == EXPERT
    if config.robot != SIM and expert:
        raise ValueError("the served policy is the scripted expert, which needs the simulator: robot=sim")
    if config.robot not in BUILT_IN:  # a plugin: its class, called with its options
        return load_robot_class(config.robot)(**(config.robot_options or {}))
    if config.robot == FRANKA:
        reads_cameras = tuple(reads.get("cameras", getattr(policy, "cameras", ())))
        return make_franka(config.franka, config.safety.dry_run, reads_cameras, image_size)
    cameras = config.cameras
    if cameras is None:
        cameras = list(reads.get("cameras", getattr(policy, "cameras", sim.CAMERAS)))
        if config.record is not None and not cameras:  # the scripted expert reads none; a dataset needs some
            cameras = list(sim.CAMERAS)
    # the scripted expert reads the simulator: here, or behind a vla-serve server
    return make_sim_robot(
        config.task, remote=config.remote, image_size=image_size, cameras=tuple(cameras), expert=expert
    )


def _recorder(config: DeployConfig, robot):
    from policies.runtime.recorder import DeploymentRecorder

    image = robot.observe()["images"]
    size = next(iter(image.values())).shape[:2] if image else (0, 0)
    default = f"franka_{config.franka.model}" if config.robot == FRANKA else config.robot
    robot_type = getattr(robot, "robot_type", default)
    return DeploymentRecorder(
        config.record, fps=config.rate_hz, cameras=robot.cameras, image_size=size, robot_type=robot_type
    )


def _warm_up(policy, robot, instruction: str) -> None:
    """One answer before the first episode, so a model's first (slow) call is not the robot's first step."""
    started = time.perf_counter()
    policy.infer({**robot.observe(), "instruction": instruction})
    log.info("policy warm-up: %.0f ms", 1000 * (time.perf_counter() - started))


def _begin_episode(config: DeployConfig, robot, seed: int | None) -> str:
    """Put the robot at an episode's start; return the instruction the policy is given."""
    if config.robot == SIM:
        robot.reset(seed)  # the seed fixes the scene, as in vla-eval
        return config.instruction or robot.instruction
    robot.home()  # the start posture; the scene is the operator's to reset
    return config.instruction


def _episode_entry(index: int, seed: int | None, instruction: str, result) -> dict:
    summary = result.summary()
    return {"episode": index, "seed": seed, "instruction": instruction, **summary, "recorded_as": None}


def run(config: DeployConfig, estop: EStop | None = None) -> dict:
    """Deploy: every episode through the loop; the report under ``config.out`` (also when stopped early)."""
    estop = estop or EStop()
    seeds = config.seeds()
    if config.robot == FRANKA:
        check_franky()
    policy = make_policy(config)
    robot = make_robot(config, policy)
    episodes, ticks, stopped, recorder, loop = [], [], None, None, None
    try:
        limits = tightened(robot.limits, **config.safety.limits())
        options = config.safety
        safety = SafetyLayer(limits, scale=options.scale, dry_run=options.dry_run, enabled=options.enabled)
        loop_config = config.loop_config(getattr(robot, "max_steps", None))
        loop = ControlLoop(robot, policy, safety, loop_config, estop)
        for index, seed in enumerate(seeds):
            instruction = _begin_episode(config, robot, seed)
            if index == 0:
                recorder = _recorder(config, robot) if config.record else None
                _warm_up(policy, robot, instruction)
            result = loop.run_episode(instruction, recorder.frame if recorder else None, index)
            ticks += result.ticks
            episodes.append(_episode_entry(index, seed, instruction, result))
            verdict = "not judged" if result.success is None else f"success {result.success}"
            log.info("episode %d (seed %s): %s in %d steps", index, seed, verdict, result.steps)
            if recorder is not None:
                extra = _recording_extra(config, seed, result)
                episodes[-1]["recorded_as"] = recorder.commit(instruction, extra)
    except (EStopped, PolicyStalled, PolicyFailed) as error:
        stopped = str(error)
        _stop(robot)  # the loop has stopped it if it was running; between episodes too
        interrupted = loop.current if loop is not None else None
        if interrupted is not None and len(episodes) == interrupted.index:  # not yet in the log
            ticks += interrupted.ticks
            episodes.append(_interrupted_entry(interrupted, seeds[interrupted.index]))
        raise
    finally:
        if recorder is not None:
            recorder.close()
        robot_close = getattr(robot, "close", None)
        if robot_close is not None:
            robot_close()
        close_cameras(getattr(robot, "cameras", None))
        doc = deploy_report.document(episodes, ticks, _reported(config), stopped)
        if episodes or ticks or stopped:  # not for a set-up error (say, a limit looser than the robot's)
            deploy_report.write(config.out, doc, ticks, config.rate_hz)
    return doc


def _interrupted_entry(run, seed: int | None) -> dict:
    """The report's entry of an episode a stop cut short: what it did until then, not judged."""
    entry = _episode_entry(run.index, seed, run.instruction, EpisodeRun(run.ticks, run.steps, False, None))
    return {**entry, "stopped": True}


def _reported(config: DeployConfig) -> dict:
    """The options as report.json records them: JSON-ready, the API key hidden."""
    options = _plain(asdict(config))
    if options["api_key"] is not None:
        options["api_key"] = HIDDEN
    return options


def _stop(robot) -> None:
    try:
        robot.stop()
    except Exception as error:  # a dead driver must not hide why the run stopped; say it loudly instead
        log.error("robot.stop() failed: %s: %s", type(error).__name__, error)


def _recording_extra(config: DeployConfig, seed: int | None, result) -> dict:
    summary = result.summary()
    judged = {}  # a real robot's episode has no task, seed or verdict: only what the runtime measured
    if config.robot == SIM:
        judged = {"sim_task": config.task, "seed": int(seed), "success": int(bool(result.success))}
    return {
        **judged,
        "holds": int(summary["holds"]),
        "dropped": int(summary["dropped"]),
        "interventions": int(sum(summary["interventions"].values())),
        "mode": "async" if config.async_inference else "sync",
    }


def _plain(value):
    """The config as JSON-ready values (numpy-free)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


RENAMED = {"episodes": "episodes_per_task"}  # the name every other app uses; old one for a release


@cli.app("vla-deploy", "deploy", renamed=RENAMED)
def main(config: DeployConfig) -> None:
    passive_openmp()
    estop = EStop()
    with estop.on_signals():
        try:
            doc = run(config, estop)
        except EStopped as error:
            print(f"{error}: the robot was stopped; partial report in {config.out}", file=sys.stderr)
            raise SystemExit(error.exit_code) from None
        except (PolicyStalled, PolicyFailed) as error:
            print(f"{error}: the robot was stopped; partial report in {config.out}", file=sys.stderr)
            raise SystemExit(1) from None
    print(deploy_report.markdown(doc))
    print(f"wrote {config.out}/report.json, report.md, timing.csv, timing.png")


if __name__ == "__main__":
    main()
