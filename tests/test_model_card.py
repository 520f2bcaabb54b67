"""The model card (README.md in every checkpoint): what vla-train writes, what vla-eval appends."""

from __future__ import annotations

import json

from conftest import HUB_REPO_ID, TASKS, tiny_checkpoint
from toy_vla import ToyVLA, make_config

from policies.evaluation.evaluate import EvalConfig, run
from policies.reports.results import rate_with_interval
from policies.seeds import HELDOUT
from vla.machine import machine
from vla.train.card import CARD, append_section
from vla.train.data import split_episodes
from vla.train.loop import train


def test_every_checkpoint_has_a_card_with_its_data_recipe_steps_machine_and_time(hub_cache, tmp_path):
    out = tmp_path / "run"
    train(make_config(HUB_REPO_ID, out), ToyVLA, until=2)
    train(make_config(HUB_REPO_ID, out), ToyVLA)  # resumed: steps 3 and 4
    first = (out / "checkpoints/000002" / CARD).read_text()
    card = (out / "checkpoints/000004" / CARD).read_text()
    assert "step 2 of 4" in first and "resumed" not in first
    assert "step 4 of 4" in card and "| steps | 4 of 4, resumed from step 2 |" in card
    # The dataset as named (a Hub id, so the Hub's metadata names it too), where it resolved, its fingerprint.
    state = json.loads((out / "checkpoints/000004/trainer_state.json").read_text())
    assert card.startswith("---\nlibrary_name: vla-stack\n") and f"datasets: [{HUB_REPO_ID}]" in card
    assert f"| dataset | `{HUB_REPO_ID}` |" in card and f"`{state['dataset']['path']}`" in card
    assert state["dataset"]["meta_sha256"] in card and "snapshots" in state["dataset"]["path"]
    trained, held = split_episodes(3, 0.25)
    assert f"| episodes | 3 ({len(trained)} training, {len(held)} validation) |" in card
    assert all(f"`{task}`" in card for task in TASKS) and "tasks (2)" in card
    assert "4 steps of batch 4 x 1 accumulated x 1 processes, AdamW lr 0.01" in card
    assert "chunks of 4" in card and "cameras ['agentview', 'wrist'] at 32x32" in card
    assert f"{machine()['cpu']}, {machine()['cores']} cores; device cpu" in card
    assert " UTC, this checkpoint " in card and "min in this process" in card


def test_vla_eval_appends_its_table_seeds_and_split_to_the_card(tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "ckpt")
    (checkpoint / CARD).write_text("---\nlibrary_name: vla-stack\n---\n\n# VLA checkpoint\n\n## Training\n")
    options = dict(checkpoint=str(checkpoint), task=["PressButton"], episodes_per_task=2, max_steps=3)
    options.update(videos=False, tensorboard=False)
    first = run(EvalConfig(**options, out=str(tmp_path / "eval")))
    run(EvalConfig(**options, out=str(tmp_path / "again")))
    card = (checkpoint / CARD).read_text()
    assert card.startswith("---\nlibrary_name: vla-stack\n---\n\n# VLA checkpoint\n\n## Training\n")
    assert card.count("## Evaluations") == 1 and card.count("### vla-eval, ") == 2
    entry = first["tasks"]["PressButton"]
    rate = rate_with_interval(entry["success_rate"], entry["ci95"])
    assert f"| PressButton | {rate} | {entry['successes']}/2 |" in card
    start = HELDOUT.start
    assert f"Split `heldout`: episode i of each task uses seed {start} + i (seeds {start}-{start + 1}" in card
    assert first["protocol"]["checkpoint_sha256"] in card
    assert str((tmp_path / "eval" / "results.json").resolve()) in card
    assert card.index("### vla-eval") > card.index("## Evaluations") > card.index("## Training")


def test_a_checkpoint_without_a_card_gets_one_holding_its_evaluations(tmp_path):
    path = append_section(tmp_path, "### vla-eval, today\n\nrows")
    assert (
        path.read_text()
        == f"# VLA checkpoint {tmp_path.name}\n\n## Evaluations\n\n### vla-eval, today\n\nrows\n"
    )
