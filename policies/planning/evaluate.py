"""``vla-plan-eval``: the language-model planner over skills on the long-horizon tasks, closed loop.

    vla-plan-eval                                          # SmolLM2 planner, held-out seeds, 50 per task
    vla-plan-eval instruction=heldout out=runs/plan-heldout   # every episode in the held-out wording
    vla-plan-eval fault_p=0.3 feedback=[true,false]          # drops mid-carry: with feedback and open loop
    vla-plan-eval planner=oracle                             # the oracle decomposition: no language model
    vla-plan-eval planner=oracle skills=runs/skills/train task=[Stack]   # a VLA trained on skill labels

Skills run with their reference executors (the scripted expert on each skill's waypoints), or with a VLA
trained on skill instructions (``skills=`` a checkpoint; ``policies.planning.learned``); affordances and
success detection read the simulator's state (privileged, and named so in the results). Writes
``results.json`` (``policies.reports.results``'s document, with the planner's metrics in each task's entry
and in ``planner``), ``report.md`` and ``videos/<task>.mp4`` (each task's first episode, captioned with the
skill under way) under ``out``. Options: ``configs/plan_eval.yaml``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import sim
from policies.loading import load_policy
from policies.planning.faults import DropFault
from policies.planning.film import Filmed
from policies.planning.learned import LEARNED, TERMINATIONS, LearnedSkills
from policies.planning.loop import PlanEpisode, run_plan_episode
from policies.planning.oracle import OraclePlanner
from policies.planning.report import report_markdown, task_entry
from policies.reports.results import results_document, summary_document, write_report
from policies.reports.video import write_mp4
from policies.seeds import HELDOUT, episode_seeds

PLANNERS = ("saycan", "oracle")
SCRIPTED = "scripted"  # the skills' reference executors
INSTRUCTIONS = ("drawn", "heldout")  # heldout: every episode in the task's last (never prompted) wording
AFFORDANCE = "privileged: feasibility from the simulator's state (sim.skills.Skill.feasible)"
DETECTOR = "privileged: each skill's termination signal on the simulator's state"


@dataclass
class PlanEvalConfig:
    task: Any = field(default_factory=sim.long_horizon_tasks)  # task names (any of ours)
    episodes_per_task: int = 50
    split: str = HELDOUT.name
    seed: int | None = None  # episode i uses seed + i; None: the split's first seed
    planner: str = "saycan"  # saycan (the language model) | oracle (the scripted decomposition)
    llm: str = "smollm2-135m"  # or a local Hugging Face causal-LM folder
    cache_dir: str = "~/.cache/vla-stack"
    instruction: str = "drawn"  # drawn (as reset draws it) | heldout (the task's last template)
    feedback: Any = True  # true | false | [true, false]: with feedback (Inner Monologue) and/or open loop
    fault_p: float = 0.0  # probability of dropping the held object on each carry
    skills: str = SCRIPTED  # scripted | a checkpoint or vla-train run trained on skill instructions
    precision: str = "fp32"  # what a skills checkpoint computes in: fp32 | bf16
    termination: str = "signal"  # signal: each skill's termination signal (privileged) | learned: the skills
    # checkpoint's termination head (model.done_loss) ends each skill, the signal only judges success
    video: bool = True  # film each task's first episode, captioned with the skill under way
    torch_threads: int = 2
    out: str = "runs/plan-eval"

    def __post_init__(self):
        self.task = sim.resolve_tasks(self.task)
        if self.planner not in PLANNERS:
            raise ValueError(f"planner must be one of {PLANNERS}, got {self.planner!r}")
        if self.instruction not in INSTRUCTIONS:
            raise ValueError(f"instruction must be one of {INSTRUCTIONS}, got {self.instruction!r}")
        modes = [self.feedback] if isinstance(self.feedback, bool) else list(self.feedback)
        if not modes or any(not isinstance(m, bool) for m in modes) or len(set(modes)) != len(modes):
            raise ValueError(f"feedback must be true, false or [true, false], got {self.feedback!r}")
        self.feedback = modes
        if self.termination not in TERMINATIONS:
            raise ValueError(f"termination must be one of {TERMINATIONS}, got {self.termination!r}")
        if self.termination == LEARNED and self.skills == SCRIPTED:
            raise ValueError(
                "termination=learned needs skills= a checkpoint (the scripted skills have no head)"
            )
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {self.precision!r}")
        if not 0.0 <= self.fault_p <= 1.0:
            raise ValueError(f"fault_p must be in [0, 1], got {self.fault_p}")
        if self.torch_threads < 1:
            raise ValueError(f"torch_threads must be >= 1, got {self.torch_threads}")
        episode_seeds(self.split, self.episodes_per_task, self.seed)  # inside the split, or an error now


ConfigStore.instance().store(name="plan_eval_schema", node=PlanEvalConfig)


def make_planner(config: PlanEvalConfig):
    if config.planner == "oracle":
        return OraclePlanner()
    import torch

    from policies.planning.planner import SayCanPlanner
    from policies.planning.scorer import LMScorer, load_language_model

    torch.set_num_threads(config.torch_threads)
    model, tokenizer = load_language_model(config.llm, config.cache_dir)
    return SayCanPlanner(LMScorer(model, tokenizer))


def evaluate(config: PlanEvalConfig, progress: bool = True) -> dict:
    """Run every task's episodes under each feedback mode; return the results document."""
    planner, skills = make_planner(config), make_skills(config)
    seeds = episode_seeds(config.split, config.episodes_per_task, config.seed)
    modes: dict[str, dict] = {}
    started = time.perf_counter()
    with tqdm(total=len(config.task) * len(seeds) * len(config.feedback), disable=not progress) as bar:
        for feedback in config.feedback:
            entries = {}
            for task in config.task:
                bar.set_description(f"{task} {'feedback' if feedback else 'open loop'}")
                film = config.video and feedback == config.feedback[0]  # the first mode's first episode
                episodes, video = _run_task(task, planner, skills, seeds, feedback, config, bar, film)
                entries[task] = task_entry(episodes, video)
            modes["feedback" if feedback else "open_loop"] = entries
    first = "feedback" if True in config.feedback else "open_loop"
    document = results_document(modes[first], _protocol(config, seeds))
    for mode, entries in modes.items():
        if mode != first:
            document[mode] = summary_document(entries)
    document["timing"] = {"wall_s": time.perf_counter() - started}
    return document


def make_skills(config: PlanEvalConfig) -> LearnedSkills | None:
    """None for the scripted executors; else the checkpoint's policy behind ``LearnedSkills``."""
    if config.skills == SCRIPTED:
        return None
    import torch

    torch.set_num_threads(config.torch_threads)
    return LearnedSkills(load_policy(config.skills, precision=config.precision), config.termination)


def _run_task(
    task: str, planner, skills, seeds: list[int], feedback: bool, config, bar, film: bool
) -> tuple[list[PlanEpisode], str | None]:
    """The task's episodes, and the path of its video under ``config.out`` (None: not filmed)."""
    if skills is None:
        env = sim.make(task, cameras=())
    else:
        env = sim.make(task, cameras=skills.policy.cameras, image_size=skills.policy.image_size)
        skills.policy.check_compatible(env)
    try:
        template = env.unwrapped.task.instructions[-1] if config.instruction == "heldout" else None
        options = {"template": template} if template else None
        episodes, video = [], None
        for i, seed in enumerate(seeds):
            faults = DropFault(config.fault_p, seed)
            run_env = Filmed(env) if film and i == 0 else env
            narrate = run_env.narrate if run_env is not env else None
            episode = run_plan_episode(
                run_env, planner, seed, feedback, faults, options, skills=skills, narrate=narrate
            )
            episodes.append(episode)
            if run_env is not env:
                video = f"videos/{task}.mp4"
                write_mp4(Path(config.out) / video, run_env.frames, run_env.fps)
            bar.update(1)
        return episodes, video
    finally:
        env.close()


def _protocol(config: PlanEvalConfig, seeds: list[int]) -> dict:
    from importlib.metadata import version

    return {
        "planner": config.planner,
        "language_model": config.llm if config.planner == "saycan" else None,
        "affordance": AFFORDANCE,
        "success_detector": DETECTOR,
        "termination": (
            "learned: the skills checkpoint's termination head (p > 0.5)"
            if config.termination == LEARNED
            else "privileged: each skill's termination signal"
        ),
        "skill_executor": (
            "scripted expert on each skill's waypoints (sim.skills.executor)"
            if config.skills == SCRIPTED
            else f"learned: {config.skills} ({config.precision}), the skill's text as its instruction"
        ),
        "instruction": config.instruction,
        "feedback": config.feedback,
        "fault_p": config.fault_p,
        "torch_threads": config.torch_threads,
        "split": config.split,
        "seeds": [seeds[0], seeds[-1]],
        "max_steps": {task: sim.ALL_TASKS[task].max_steps for task in config.task},
        "versions": {name: version(name) for name in ("mujoco", "numpy", "torch", "transformers")},
    }


def run(config: PlanEvalConfig) -> dict:
    document = evaluate(config)
    write_report(config.out, document, report_markdown(document))
    return document


@hydra.main(config_path="pkg://configs", config_name="plan_eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    config = OmegaConf.to_object(cfg)
    document = run(config)
    print(report_markdown(document))
    print(f"wrote {config.out}/results.json, report.md")


if __name__ == "__main__":
    main()
