"""The closed loop of an evaluation: one task's episodes over a pool of environments, policy batched.

Episode i of a task runs with seed ``seeds[i]`` whichever environment slot it lands on, and a policy with
``infer_batch`` is stateless, so the episodes' outcomes do not depend on how many environments run them
(up to floating-point differences of batched inference, see docs/evaluation.md).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from policies.base import BatchPolicy, Policy, infer_batch
from policies.chunking import RecedingHorizon, TemporalEnsemble
from policies.evaluation.instruction import EPISODE_KEYS
from policies.rollout import EpisodeResult, action_chunk
from sim import grasp


class ClipPicker:
    """Which episodes' videos to keep: the first episode, the first success and the first failure (by
    episode index, so the choice does not depend on the number of environments).

    Episodes are recorded from their start until both a success and a failure have been seen: episodes
    start in index order, so every episode before the first of each outcome was recorded."""

    def __init__(self):
        self._kept: dict[str, tuple[int, EpisodeResult]] = {}  # "first"|"success"|"failure" -> (index, clip)
        self._seen = {True: False, False: False}

    def wants(self, index: int) -> bool:
        return index == 0 or not all(self._seen.values())

    def offer(self, index: int, result: EpisodeResult, frames) -> None:
        """An episode has ended; ``frames`` (uint8 (T + 1, H, W, 3)) if it was recorded, else None."""
        self._seen[result.success] = True
        if frames is None:
            return
        clip = replace(result, frames=frames)
        if index == 0:
            self._kept["first"] = (index, clip)
        outcome = "success" if result.success else "failure"
        if outcome not in self._kept or index < self._kept[outcome][0]:
            self._kept[outcome] = (index, clip)

    def clips(self) -> list[EpisodeResult]:
        """The kept episodes with their frames, in episode order, each once."""
        by_index = {index: clip for index, clip in self._kept.values()}
        return [by_index[index] for index in sorted(by_index)]


@dataclass
class _Running:
    index: int  # the episode's index within the task
    seed: int
    executor: RecedingHorizon | TemporalEnsemble
    recorded: bool


def check_batchable(policy: Policy, num_envs: int) -> None:
    if num_envs > 1 and not isinstance(policy, BatchPolicy):
        raise ValueError(
            f"{type(policy).__name__} has no infer_batch (a stateless batched interface), so it cannot drive "
            f"{num_envs} environments at once; use num_envs=1"
        )


def run_episodes(
    pool,
    policy: Policy,
    seeds: Sequence[int],
    make_executor: Callable[[], RecedingHorizon | TemporalEnsemble],
    clips: ClipPicker | None = None,
    on_episode: Callable[[EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Run one episode per seed on ``pool``'s environments; results in seed order.

    ``clips`` (optional) decides which episodes are recorded and keeps their frames; ``on_episode`` is
    called as each episode ends (a progress bar)."""
    check_batchable(policy, pool.num_envs)
    waiting = deque(enumerate(seeds))
    running: dict[int, _Running] = {}
    obs: dict[int, dict] = {}
    results: dict[int, EpisodeResult] = {}

    def start(slots) -> None:
        seeds_now, record = {}, {}
        for slot in slots:
            if waiting:
                index, seed = waiting.popleft()
                record[slot] = clips is not None and clips.wants(index)
                running[slot] = _Running(index, seed, make_executor(), record[slot])
                seeds_now[slot] = seed
        if seeds_now:
            obs.update(pool.reset(seeds_now, record))
            policy.reset()  # a no-op for batch policies; a single-environment policy's episode start

    start(range(pool.num_envs))
    action_dim = pool.single_action_space.shape[0]  # 7 in sim, 4 in Meta-World
    while running:
        asking = [slot for slot, run in running.items() if run.executor.needs_query()]
        if asking:
            for slot, output in zip(asking, infer_batch(policy, [obs[s] for s in asking]), strict=True):
                running[slot].executor.add_chunk(action_chunk(output, action_dim))
        steps = pool.step({slot: run.executor.next_action() for slot, run in running.items()})
        finished = []
        for slot, step in steps.items():
            obs[slot] = step.obs
            if step.terminated or step.truncated:
                run = running.pop(slot)
                results[run.index] = _result(pool, slot, run, step.info, clips)
                if on_episode is not None:
                    on_episode(results[run.index])
                finished.append(slot)
        start(finished)
    return [results[i] for i in range(len(seeds))]


def _result(pool, slot: int, run: _Running, info: dict, clips: ClipPicker | None) -> EpisodeResult:
    result = EpisodeResult(
        task=str(info["task"]),
        seed=run.seed,
        instruction=str(info["instruction"]),
        success=bool(info["success"]),
        length=int(info["steps"]),
        extra={key: info[key] for key in (*EPISODE_KEYS, *grasp.KEYS) if key in info} or None,
    )
    if clips is not None:
        clips.offer(run.index, result, pool.take_frames(slot) if run.recorded else None)
    return result
