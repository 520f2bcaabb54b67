"""The apps' shared command line (policies/cli.py): unknown keys, one-line errors, --help, renamed options."""

import importlib
import subprocess
import sys

import pytest

from policies import cli

APPS = {  # config name -> the module of its app
    "record": "policies.recording.app",
    "sim_report": "policies.evaluation.experts",
    "eval": "policies.evaluation.evaluate",
    "serve": "policies.serving.app",
    "deploy": "policies.runtime.deploy",
    "train": "policies.apps.train",
    "demo": "policies.apps.demo",
    "skill_labels": "policies.recording.relabel",
}
DEMO_PRESETS = ("suite_cpu", "suite_smollm2", "metaworld_mt10_cpu", "metaworld_mt50")


class Ran(BaseException):
    """Raised by a stand-in for an app's work, with the config it was given (not an Exception: cli's error
    handler lets it through)."""


@pytest.fixture(autouse=True)
def _no_logging_setup(monkeypatch):
    monkeypatch.setattr(cli, "configure_log", lambda *args: None)  # the apps' logging stays the test's


def _main(config_name: str):
    return importlib.import_module(APPS[config_name]).main


def _fails(capsys, config_name: str, *argv: str) -> str:
    """The one line an app prints for ``argv``, which must fail with exit status 1."""
    with pytest.raises(SystemExit) as exit_:
        _main(config_name)(list(argv))
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"vla-{config_name.replace('_', '-')}: "), err
    return err


def test_vla_record_with_a_plus_key_exits_naming_the_key_it_meant(tmp_path):
    """Hydra appends a +key, which OmegaConf.to_object dropped: 10 episodes were recorded, not 1."""
    command = [
        sys.executable,
        "-m",
        "policies.recording.app",
        "task=PickUp",
        "+episodes=1",
        f"out={tmp_path}/d",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "did you mean 'episodes_per_task'?" in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    "config_name, argv, nearest",
    [
        ("record", ["+episodes=1"], "episodes_per_task"),
        ("record", ["episodes=1"], "episodes_per_task"),
        ("record", ["+workrs=2"], "workers"),
        ("eval", ["policy=expert", "+episodes=3"], "episodes_per_task"),
        ("serve", ["policy=expert", "prot=1"], "port"),
        ("deploy", ["policy=expert", "+safety.max_translaton=0.1"], "safety.max_translation"),
        ("train", ["dataset=d", "out=o", "+model.chunksize=3"], "model.chunk_size"),
        ("train", ["dataset=d", "out=o", "chunk_size=3"], "model.chunk_size"),  # another level
        ("demo", ["steps=100"], "train.steps"),
        ("demo", ["+record.episodes=3"], "record.episodes_per_task"),
        ("sim_report", ["+nosie=0.1"], "noise"),
    ],
)
def test_an_unknown_key_is_one_line_naming_the_nearest_valid_key(capsys, config_name, argv, nearest):
    err = _fails(capsys, config_name, *argv)
    key = argv[-1].lstrip("+").split("=")[0]
    assert f"unknown option {key!r}; did you mean {nearest!r}?" in err


def test_an_unknown_key_with_nothing_near_lists_the_valid_ones(capsys):
    err = _fails(capsys, "record", "+zzzzzz=1")
    assert "unknown option 'zzzzzz' (options: task, episodes_per_task, out," in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["task=NoSuchTask"], "unknown tasks ['NoSuchTask']; available tasks:"),  # the config's ValueError
        (["episodes_per_task=abc"], "episodes_per_task: Value 'abc' of type 'str' could not be converted"),
        (["episodes_per_task=[1"], "cannot parse the command line"),
        (["--epsiodes"], "unknown flag '--epsiodes'"),
    ],
)
def test_errors_are_one_line_without_a_traceback(capsys, argv, message):
    assert message in _fails(capsys, "record", *argv)


def test_a_missing_value_and_a_missing_group_option_are_one_line(capsys):
    assert "dataset is required: add dataset=..." in _fails(capsys, "train", "out=o")
    err = _fails(capsys, "train", "dataset=d", "out=o", "model=huge")
    assert "Could not find 'model/huge'; choices: smollm2-135m, tiny" in err


def test_vla_debug_shows_the_traceback(monkeypatch):
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(ValueError, match="unknown tasks"):
        _main("record")(["task=NoSuchTask"])


def test_an_error_in_the_work_is_one_line_too(capsys, monkeypatch):
    def broken(config):
        raise RuntimeError("the disk\nis full")

    monkeypatch.setattr(importlib.import_module(APPS["sim_report"]), "run", broken)
    err = _fails(capsys, "sim_report", "task=PickUp")
    assert err == f"vla-sim-report: RuntimeError: the disk is full ({cli.DEBUG_ENV}=1 shows the traceback)\n"


@pytest.mark.parametrize("config_name", [*APPS, *DEMO_PRESETS])
def test_every_option_of_every_app_has_a_description(config_name):
    importlib.import_module(APPS.get(config_name, APPS["demo"]))
    cfg, _, _ = cli.compose_checked(config_name, [])
    rows = list(cli.option_lines(cfg))
    assert len(rows) >= 2  # the smallest app, vla-skill-labels, has two options
    assert [key for key, doc in rows if not doc and not key.endswith(":")] == []


def test_help_shows_defaults_descriptions_and_only_the_groups_the_app_uses(capsys):
    _main("record")(["--help"])
    record = capsys.readouterr().out
    assert record.startswith("vla-record: record demonstrations in simulation")
    assert "episodes_per_task=10" in record and "kept episodes per task; re-running tops" in record
    assert "model" not in record  # the model group is vla-train's (it showed on five apps)
    _main("train")(["--help", "model=smollm2-135m"])
    train = capsys.readouterr().out
    assert "model=smollm2-135m" in train and "choices: smollm2-135m, tiny" in train
    assert "model.llm.name=smollm2-135m" in train and "dataset=???" in train
    _main("demo")(["--config-name", "suite_smollm2", "--help"])
    assert "model@train.model=smollm2-135m" in capsys.readouterr().out


def test_field_docs_reads_the_comments_above_and_beside_a_field():
    from policies.apps.train import TrainAppConfig

    docs = cli.field_docs(TrainAppConfig)
    assert docs["lr"] == "peak learning rate"
    assert docs["resume"].startswith('"auto": continue from <out>/checkpoints/last')  # the block above
    assert docs["closed_loop"] and docs["steps"]  # its own field and its base class's


def test_the_old_names_of_renamed_options_still_work_with_a_notice(capsys, monkeypatch):
    seen = []

    def run(config):
        seen.append(config)
        raise Ran

    monkeypatch.setattr(importlib.import_module(APPS["sim_report"]), "run", run)
    with pytest.raises(Ran):
        _main("sim_report")(["tasks=[PickUp]", "episodes=3"])
    assert seen[0].task == ["PickUp"] and seen[0].episodes_per_task == 3
    assert capsys.readouterr().err.splitlines() == [
        "vla-sim-report: tasks= is now task= (the old name goes in the next release)",
        "vla-sim-report: episodes= is now episodes_per_task= (the old name goes in the next release)",
    ]
    deploy = importlib.import_module(APPS["deploy"])
    assert cli.rename("vla-deploy", ["episodes=4"], deploy.RENAMED) == ["episodes_per_task=4"]
    assert "vla-deploy: episodes= is now episodes_per_task=" in capsys.readouterr().err
    assert cli.rename(
        "vla-train", ["closed_loop.tasks=[all]"], {"closed_loop.tasks": "closed_loop.task"}
    ) == ["closed_loop.task=[all]"]
    capsys.readouterr()
    assert cli.rename("vla-demo", ["+tasks=[a]", "tasks_x=1"], {"tasks": "task"}) == [
        "+task=[a]",
        "tasks_x=1",
    ]


def test_sim_report_writes_its_own_folder_not_the_demos():
    importlib.import_module(APPS["sim_report"])
    cfg, _, _ = cli.compose_checked("sim_report", [])
    assert cfg.out == "runs/experts"
