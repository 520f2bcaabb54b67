"""The end-to-end demo in miniature: record 2 episodes, train a few steps, evaluate 2 episodes, report."""

from __future__ import annotations

import json

from policies.demo import DemoConfig, run_demo
from vla.model.config import ConnectorConfig, LLMConfig, ModelConfig, VisionConfig


def test_record_train_evaluate_report_end_to_end(tmp_path):
    model = ModelConfig(
        vision=VisionConfig(kind="resnet18", width=32),
        connector=ConnectorConfig(kind="mlp"),
        llm=LLMConfig(name="tiny", hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128),
        image_size=[32, 32],
        chunk_size=4,
    )
    config = DemoConfig(
        out=str(tmp_path / "demo"),
        tasks=["PressButton"],
        episodes_per_task=2,
        workers=1,
        steps=3,
        batch_size=4,
        eval_episodes=2,
        model=model,
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
