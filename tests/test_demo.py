"""The end-to-end demo in miniature: record 2 episodes, train a few steps, evaluate 2 episodes, report."""

from __future__ import annotations

import json
import sys

import pytest
from toy_vla import small_model

import sim
from policies import suites
from policies.apps.demo import DemoConfig, demo_eval, demo_record, demo_train, run_demo
from vla.model.config import LanguageConfig, LLMConfig, ModelConfig, VisionConfig


def test_record_train_evaluate_report_end_to_end(tmp_path):
    model = small_model(language=LanguageConfig(encoder="minilm"))
    config = DemoConfig(
        out=str(tmp_path / "demo"),
        task=["PressButton"],
        instruction_eval=["swap", "blank"],
        instruction_episodes=1,
        record=demo_record(episodes_per_task=2, goals_per_scene=2, workers=1),
        train=demo_train(steps=3, batch_size=4, model=model),
        eval=demo_eval(episodes_per_task=2, n_action_steps=2),
    )
    document = run_demo(config)
    out = tmp_path / "demo"
    saved = json.loads((out / "results.json").read_text())
    assert saved["tasks"]["PressButton"]["episodes"] == 2 and 0.0 <= saved["mean_success"] <= 1.0
    assert saved["demo"]["train_steps"] == 3 and set(saved["demo"]["timing"]) == {
        "record_s",
        "train_s",
        "eval_s",
    }
    assert saved["protocol"] == document["protocol"]
    assert (out / "training_curves.png").stat().st_size > 0
    assert "training curves" in (out / "report.md").read_text()
    assert list((out / "videos").glob("*.mp4"))
    # Does it read its instruction: the swap and blank modes beside the normal results, in the report too.
    modes = saved["instruction_modes"]
    assert (
        list(modes) == ["normal", "swap", "blank"] and modes["swap"]["tasks"]["PressButton"]["episodes"] == 1
    )
    assert modes["normal"]["tasks"]["PressButton"] == saved["tasks"]["PressButton"]
    assert saved["protocol"]["instruction"]["chance"]["PressButton"] == pytest.approx(1 / 3)
    assert "Instruction following" in (out / "report.md").read_text()
    # The model card: the training, then the demo's evaluation once, with its instruction modes.
    card = (out / "train/checkpoints/000003/README.md").read_text()
    assert "step 3 of 3" in card and card.count("### vla-demo, ") == 1 and "### vla-eval" not in card
    assert "#### Instruction following" in card and "| PressButton |" in card
    with pytest.raises(ValueError, match="language task"):
        DemoConfig(task=["OpenDrawer"], instruction_eval=["swap"])
    with pytest.raises(ValueError, match="beside normal"):
        DemoConfig(task=["PressButton"], instruction_eval=["normal", "swap"])


def test_stages_run_apart_record_on_one_machine_train_and_evaluate_on_another(tmp_path):
    from dataclasses import replace

    model = ModelConfig(
        vision=VisionConfig(kind="resnet18", width=32),
        llm=LLMConfig(name="tiny", hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128),
        image_size=[32, 32],
        chunk_size=4,
    )
    config = DemoConfig(
        out=str(tmp_path / "suite"), task=["PressButton"], stages=["record"],
        record=demo_record(episodes_per_task=2, workers=1), train=demo_train(steps=2, batch_size=4, model=model),
        eval=demo_eval(episodes_per_task=1, num_envs=1, n_action_steps=4),
    )  # fmt: skip
    assert run_demo(config) is None
    assert (tmp_path / "suite" / "data" / "meta" / "info.json").is_file()
    assert not (tmp_path / "suite" / "train").exists()
    with pytest.raises(FileNotFoundError, match="train stage"):
        run_demo(replace(config, stages=["eval"]))
    document = run_demo(replace(config, stages=["train", "eval"]))
    assert document["tasks"]["PressButton"]["episodes"] == 1
    # The time of every stage, the record stage's from the first call included: a resumed or split run
    # reports what it took in all.
    assert set(document["demo"]["timing"]) == {"record_s", "train_s", "eval_s"}
    assert document["protocol"]["machine"]["cores"] >= 1
    with pytest.raises(ValueError, match="stages"):
        DemoConfig(stages=["deploy"])
    with pytest.raises(ValueError, match="precision"):
        DemoConfig(train=demo_train(precision="fp16"))  # refused before recording, not after
    with pytest.raises(
        ValueError, match=r"eval.n_action_steps \(5\) must be <= the actions one inference returns \(4"
    ):
        DemoConfig(train=demo_train(model=model), eval=demo_eval(n_action_steps=5))


def test_every_pipeline_preset_composes():
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module("configs", version_base="1.3"):
        demo = OmegaConf.to_object(compose("demo"))
        suite = OmegaConf.to_object(compose("suite_smollm2", overrides=["stages=[record]"]))
        suite_cpu = OmegaConf.to_object(compose("suite_cpu"))
        mt10 = OmegaConf.to_object(compose("metaworld_mt10_cpu"))
        mt50 = OmegaConf.to_object(compose("metaworld_mt50", overrides=["stages=[record]"]))
    assert demo.model.llm.name == "tiny" and len(demo.task) >= 2 and demo.eval_episodes == 50
    # One action per step: with DART labels a longer chunk would be executed blind (docs/benchmarks.md).
    assert demo.record.noise > 0 and demo.model.chunk_size == 1 == demo.eval.n_action_steps
    assert demo.model.prompt == "{instruction}" and demo.model.connector.kind == "keypoints"
    assert suite.model.llm.name == "smollm2-135m" and suite.task == sim.list_tasks()
    assert suite.stages == ["record"] and suite.eval_episodes == 50 == suite_cpu.eval_episodes
    # Meta-World: its groups spelled out, one camera, one instruction per task, LeRobot's 10 episodes per task.
    assert len(mt10.task) == 10 and len(mt50.task) == 50 and mt10.task[0].startswith("metaworld/")
    for preset in (mt10, mt50):
        assert preset.model.cameras == ["corner2"] and preset.eval_episodes == 10
        record = preset.record
        assert record.episodes_per_task == 50 and record.noise == 0.1 and record.goals_per_scene == 1
        assert preset.model.chunk_size == 1 == preset.eval.n_action_steps and preset.model.state_dropout == 0
        assert preset.model.language.encoder == "minilm" and preset.model.connector.kind == "keypoints"
        assert not preset.instruction_eval and record.holdout_templates is None
    assert mt10.model.llm.name == "tiny" and mt10.model.image_size == [128, 128]
    assert mt10.eval.device == "auto" and mt50.model.llm.name == "smollm2-135m"
    assert mt50.train.steps > mt10.train.steps


@pytest.mark.parametrize("preset", ["demo", "suite_cpu", "metaworld_mt10_cpu"])
def test_the_cpu_recipes_build_their_model_and_train_on_a_fake_batch(preset, make_dataset):
    """Every CPU recipe's model section builds and takes a training step on a batch of its own shapes,
    the instruction machinery (sentence encoder, whitening, FiLM, instruction keypoints) included; a
    Meta-World recipe on Meta-World's shapes (4-D state and action, the corner2 camera)."""
    import torch
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from vla.data.dataset import VLADataset, collate
    from vla.model.vla import VLA
    from vla.train.data import fit_model_config

    with initialize_config_module("configs", version_base="1.3"):
        config = OmegaConf.to_object(compose(preset))
    model_config = config.model
    suite = config.suite  # its robot's shapes (Meta-World: 4-D state and action, corner2); ours: the defaults
    sizes = {
        "state_dim": len(suite.state_names),
        "action_dim": len(suite.action_names),
        "cameras": suite.cameras,
    }
    shapes = {} if suite is suites.SIM else sizes
    action_dim = shapes.get("action_dim", 7)
    root = make_dataset(episodes=2, lengths=[3, 3], image_size=tuple(model_config.image_size), **shapes)
    dataset = VLADataset(root, cameras=model_config.cameras, chunk_size=model_config.chunk_size)
    model_config = fit_model_config(model_config, dataset.meta)  # the dataset's sizes, as training does
    torch.manual_seed(0)
    model = VLA(model_config, dataset.stats)
    model.fit_instructions(dataset.meta.tasks)
    out = model.loss(collate([dataset[i] for i in range(4)]))
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert model.predict(collate([dataset[0]])).shape == (1, model_config.chunk_size, action_dim)


def test_metaworld_options_are_checked_before_anything_runs():
    """One suite per run; Meta-World's one camera, one instruction and one goal per task, each with why."""
    config = DemoConfig(task=["metaworld/reach-v3", "metaworld/mt10"])
    assert config.task[0] == "metaworld/reach-v3" and len(config.task) == 10  # repeats dropped
    assert config.model.cameras == ["corner2"]  # our default cameras stand for Meta-World's one
    assert config.eval_episodes == 10 and DemoConfig(task=["PickUp"]).eval_episodes == 50
    assert DemoConfig(task=["metaworld/mt10"], eval=demo_eval(episodes_per_task=3)).eval_episodes == 3
    with pytest.raises(ValueError, match=r"cannot record Meta-World .* their robots"):
        DemoConfig(task=["metaworld/reach-v3", "PickUp"])
    with pytest.raises(ValueError, match=r"model.cameras must be \[corner2\], got \['agentview'\]"):
        DemoConfig(task=["metaworld/reach-v3"], train=demo_train(model=ModelConfig(cameras=["agentview"])))
    with pytest.raises(ValueError, match=r"goals_per_scene must be 1 for Meta-World.*one goal"):
        DemoConfig(task=["metaworld/reach-v3"], record=demo_record(goals_per_scene=3))
    with pytest.raises(ValueError, match=r"holdout_templates must be null for Meta-World.*one instruction"):
        DemoConfig(task=["metaworld/reach-v3"], record=demo_record(holdout_templates="last"))
    with pytest.raises(ValueError, match=r"instruction_eval=\['swap'\] is not available on Meta-World"):
        DemoConfig(task=["metaworld/reach-v3"], instruction_eval=["swap"])
    with pytest.raises(ValueError, match="unknown Meta-World task"):
        DemoConfig(task=["metaworld/no-such-task-v3"])


def test_a_metaworld_demo_without_metaworld_says_how_to_install_it_before_anything_runs(
    tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "metaworld", None)  # makes `import metaworld` raise ImportError
    out = tmp_path / "demo"
    config = DemoConfig(out=str(out), task=["metaworld/reach-v3"], stages=["train", "eval"])
    with pytest.raises(ImportError, match=r"make metaworld"):
        run_demo(config)  # not after the training
    assert not out.exists()
