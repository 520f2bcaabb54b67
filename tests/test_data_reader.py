"""VLADataset: what a training loop reads back from a LeRobotDataset v3.0 written by DatasetWriter (CPU, seconds).

Datasets come from the ``make_dataset`` fixture (tests/conftest.py): every image encodes its (episode, frame,
camera) and state/action are exact functions of (episode, frame), so each check knows the right answer.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import TASKS, action_values, frame_pattern, read_pattern, state_values, synthetic_episode
from torch.utils.data import DataLoader

from vla.data.cache import cache_paths
from vla.data.dataset import VLADataset, collate
from vla.data.layout import DATA_PATH, EPISODES_PATH, INFO_PATH, VIDEO_PATH, DatasetError, image_key
from vla.data.writer import DatasetWriter

CAMERAS = ("agentview", "wrist")
STATE_DIM, ACTION_DIM = 17, 7
# The synthetic quadrants decode within ~2 grey levels on average (libx264, CRF 23; see test_data_writer);
# a wrong frame or camera differs by 16 or more in some quadrant.
FRAME_MEAN_ABS_TOLERANCE = 4.0


def hwc(image: torch.Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).numpy()


def check_image(image: torch.Tensor, episode: int, frame: int, camera_index: int) -> None:
    """``image`` (3, H, W) is the decoded synthetic frame (episode, frame, camera_index)."""
    assert image.dtype == torch.uint8
    assert read_pattern(hwc(image)) == (episode % 16, frame, camera_index)
    expected = frame_pattern(episode, frame, camera_index, tuple(image.shape[1:]))
    assert np.abs(hwc(image).astype(float) - expected).mean() < FRAME_MEAN_ABS_TOLERANCE


def samples_by_frame(dataset: VLADataset) -> dict[tuple[int, int], int]:
    return {(dataset[i]["episode_index"], dataset[i]["frame_index"]): i for i in range(len(dataset))}


def test_numeric_columns_and_instructions_round_trip_exactly(make_dataset):
    lengths = [4, 6, 5]
    dataset = VLADataset(make_dataset(lengths=lengths, cameras=CAMERAS), chunk_size=1)
    assert len(dataset) == sum(lengths)
    i = 0
    for episode, length in enumerate(lengths):
        for frame in range(length):
            sample = dataset[i]
            assert (sample["episode_index"], sample["frame_index"]) == (episode, frame)
            assert sample["state"].dtype == torch.float32 and sample["state"].shape == (STATE_DIM,)
            states = state_values(episode, length, STATE_DIM)
            np.testing.assert_array_equal(sample["state"], states[frame])
            np.testing.assert_array_equal(sample["goal_state"], states[-1])  # where the episode ends
            assert sample["actions"].dtype == torch.float32 and sample["actions"].shape == (1, ACTION_DIM)
            np.testing.assert_array_equal(
                sample["actions"][0], action_values(episode, length, ACTION_DIM)[frame]
            )
            assert sample["instruction"] == TASKS[episode % 2]
            i += 1
    assert set(dataset.stats["action"]) >= {"mean", "std", "q01", "q99"}
    assert dataset.meta.total_frames == sum(lengths)


@pytest.mark.parametrize(
    "options",
    [{}, {"data_files_size_in_mb": 1e-3, "video_files_size_in_mb": 1e-3}, {"codec": "libsvtav1"}],
    ids=["one-file", "file-per-episode", "av1"],  # AV1: what LeRobot writes
)
def test_every_frame_decodes_to_its_own_picture_in_any_order(make_dataset, options):
    root = make_dataset(lengths=[5, 7, 4], cameras=CAMERAS, image_size=(32, 48), **options)
    dataset = VLADataset(root)
    files = 3 if "video_files_size_in_mb" in options else 1
    assert len(list((root / "videos" / image_key("wrist")).rglob("*.mp4"))) == files
    order = np.random.default_rng(0).permutation(len(dataset))  # backward jumps force seeks
    for i in np.concatenate([order, np.arange(len(dataset))]):
        sample = dataset[int(i)]
        assert list(sample["images"]) == list(CAMERAS)
        for camera_index, camera in enumerate(CAMERAS):
            assert sample["images"][camera].shape == (3, 32, 48)
            check_image(
                sample["images"][camera], sample["episode_index"], sample["frame_index"], camera_index
            )


def test_action_chunks_pad_with_the_last_action_and_mask_it_at_episode_ends(make_dataset):
    lengths = [5, 3]
    dataset = VLADataset(make_dataset(lengths=lengths, cameras=("agentview",)), chunk_size=4)
    actions0, actions1 = (action_values(e, n, ACTION_DIM) for e, n in enumerate(lengths))
    first = dataset[0]
    np.testing.assert_array_equal(first["actions"], actions0[0:4])
    assert first["action_mask"].tolist() == [True] * 4
    last = dataset[4]  # episode 0, frame 4: one real action, then K-1 copies of it, never episode 1's
    assert last["action_mask"].dtype == torch.bool and last["action_mask"].tolist() == [
        True,
        False,
        False,
        False,
    ]
    np.testing.assert_array_equal(last["actions"], np.repeat(actions0[4:5], 4, axis=0))
    short = dataset[5]  # episode 1 is shorter than the chunk
    assert short["action_mask"].tolist() == [True, True, True, False]
    np.testing.assert_array_equal(short["actions"], np.concatenate([actions1, actions1[-1:]]))
    batch = collate([dataset[3], dataset[4]])
    assert batch["actions"].shape == (2, 4, ACTION_DIM) and batch["action_mask"].sum().item() == 3


def test_history_before_the_episode_start_repeats_the_first_frame_and_is_masked(make_dataset):
    lengths = [4, 5]
    dataset = VLADataset(make_dataset(lengths=lengths, cameras=CAMERAS), history=2, chunk_size=2)
    states = state_values(1, lengths[1], STATE_DIM)
    start = dataset[4]  # episode 1, frame 0
    assert (start["episode_index"], start["frame_index"]) == (1, 0)
    assert start["history_mask"].tolist() == [False, False, True]
    np.testing.assert_array_equal(start["state"], states[[0, 0, 0]])
    for camera_index, camera in enumerate(CAMERAS):
        assert start["images"][camera].shape == (3, 3, 32, 32)
        for image in start["images"][camera]:
            check_image(image, 1, 0, camera_index)
    inside = dataset[7]  # episode 1, frame 3: frames 1, 2, 3, oldest first
    assert inside["history_mask"].tolist() == [True, True, True]
    np.testing.assert_array_equal(inside["state"], states[[1, 2, 3]])
    for k, image in enumerate(inside["images"]["wrist"]):
        check_image(image, 1, 1 + k, 1)
    second = dataset[5]  # frame 1: one frame of padding
    assert second["history_mask"].tolist() == [False, True, True]
    np.testing.assert_array_equal(second["state"], states[[0, 0, 1]])
    batch = collate([start, inside])
    assert batch["images"]["agentview"].shape == (2, 3, 3, 32, 32) and batch["history_mask"].shape == (2, 3)


def test_cameras_can_be_selected_renamed_and_unknown_ones_are_named(make_dataset):
    root = make_dataset(lengths=[3], cameras=CAMERAS)
    only_wrist = VLADataset(root, cameras=["wrist"])[1]
    assert list(only_wrist["images"]) == ["wrist"]
    check_image(only_wrist["images"]["wrist"], 0, 1, 1)
    renamed = VLADataset(root, cameras={"primary": "wrist", "secondary": image_key("agentview")})[2]
    assert list(renamed["images"]) == ["primary", "secondary"]
    check_image(renamed["images"]["primary"], 0, 2, 1)
    check_image(renamed["images"]["secondary"], 0, 2, 0)
    for bad in (["front"], {"primary": "front"}):
        with pytest.raises(ValueError, match="front") as error:
            VLADataset(root, cameras=bad)
        assert "agentview" in str(error.value) and "wrist" in str(error.value)
    with pytest.raises(ValueError, match="cameras"):
        VLADataset(root, cameras="wrist")


def test_image_size_resizes_and_keeps_the_picture(make_dataset):
    root = make_dataset(lengths=[3], cameras=CAMERAS, image_size=(64, 64))
    sample = VLADataset(root, image_size=(32, 48))[2]
    for camera_index, camera in enumerate(CAMERAS):
        assert sample["images"][camera].shape == (3, 32, 48)
        check_image(sample["images"][camera], 0, 2, camera_index)
    for bad in ((32,), (0, 32), (32.0, 32)):
        with pytest.raises(ValueError, match="image_size"):
            VLADataset(root, image_size=bad)


def test_episode_selection_and_argument_checks(make_dataset):
    root = make_dataset(lengths=[3, 4, 5], cameras=("agentview",))
    dataset = VLADataset(root, episodes=[2, 1])
    assert len(dataset) == 9
    assert [dataset[i]["episode_index"] for i in (0, 3, 4, 8)] == [1, 1, 2, 2]
    check_image(dataset[4]["images"]["agentview"], 2, 0, 0)
    with pytest.raises(IndexError):
        dataset[9]
    with pytest.raises(ValueError, match=r"episodes \[7\]"):
        VLADataset(root, episodes=[7])
    for option in ({"chunk_size": 0}, {"history": -1}):
        with pytest.raises(ValueError, match=next(iter(option))):
            VLADataset(root, **option)


def test_cache_matches_decoding_and_never_touches_the_videos(make_dataset):
    root = make_dataset(lengths=[4, 6], cameras=CAMERAS, image_size=(32, 32))
    decoded = VLADataset(root, image_size=(16, 24), history=1)
    expected = [decoded[i]["images"] for i in range(len(decoded))]
    cached = VLADataset(root, image_size=(16, 24), history=1, cache="memmap")
    assert cache_paths(root / ".cache", image_key("wrist"), (16, 24))[0].is_file()
    shutil.move(root / "videos", root / "videos-away")
    for i in range(len(cached)):
        for camera in CAMERAS:  # bit for bit: the same decoder and the same resize
            torch.testing.assert_close(cached[i]["images"][camera], expected[i][camera], rtol=0, atol=0)
    shutil.move(root / "videos-away", root / "videos")
    own_dir = VLADataset(root, cameras=["agentview"], cache=root / "my-cache")
    check_image(own_dir[5]["images"]["agentview"], 1, 1, 0)
    assert (root / "my-cache" / "agentview_32x32.u8").is_file()


def test_a_stale_cache_is_rebuilt_and_a_current_one_reused(make_dataset):
    root = make_dataset(lengths=[3, 4], cameras=("agentview",))
    data, _ = cache_paths(root / ".cache", image_key("agentview"), (32, 32))
    VLADataset(root, cache="memmap")
    built = data.stat().st_mtime_ns
    VLADataset(root, cache="memmap")
    assert data.stat().st_mtime_ns == built  # unchanged dataset: reused

    data.write_bytes(bytes(data.stat().st_size))  # a cache that is wrong ...
    video = root / VIDEO_PATH.format(video_key=image_key("agentview"), chunk_index=0, file_index=0)
    os.utime(video, ns=(built, built + 10**9))  # ... of a video that has changed since
    check_image(VLADataset(root, cache="memmap")[4]["images"]["agentview"], 1, 1, 0)

    writer = DatasetWriter.open(root)  # a new episode: more frames than the cache holds
    writer.add_episode(
        synthetic_episode(2, 5, ("agentview",), (32, 32), STATE_DIM, ACTION_DIM, 10, root.parent, 0)
    )
    grown = VLADataset(root, cache="memmap")
    assert len(grown) == 12
    check_image(grown[11]["images"]["agentview"], 2, 4, 0)


def test_dataloader_with_two_spawned_workers(make_dataset):
    lengths = [5, 6]
    dataset = VLADataset(make_dataset(lengths=lengths, cameras=CAMERAS), chunk_size=3, image_size=(16, 16))
    loader = DataLoader(
        dataset,
        batch_size=4,
        num_workers=2,
        multiprocessing_context="spawn",
        collate_fn=collate,
        shuffle=True,
    )
    seen = []
    for batch in loader:
        n = len(batch["instruction"])
        assert batch["images"]["wrist"].shape == (n, 3, 16, 16) and batch["actions"].shape == (
            n,
            3,
            ACTION_DIM,
        )
        assert batch["episode_index"].dtype == torch.int64 and isinstance(batch["instruction"][0], str)
        for k in range(n):
            episode, frame = int(batch["episode_index"][k]), int(batch["frame_index"][k])
            assert batch["instruction"][k] == TASKS[episode % 2]
            check_image(batch["images"]["agentview"][k], episode, frame, 0)
            seen.append((episode, frame))
    assert sorted(seen) == [(e, f) for e, n in enumerate(lengths) for f in range(n)]


# Bad input: each is a DatasetError naming the file (and the field where there is one).


def edit_parquet(path, column: str, change) -> None:
    table = pq.read_table(path)
    values = pa.array(change(table.column(column).to_numpy()), type=table.schema.field(column).type)
    pq.write_table(table.set_column(table.schema.get_field_index(column), column, values), path)


@pytest.fixture
def small_dataset(make_dataset):
    return make_dataset(lengths=[3, 4], cameras=("agentview",))


def data_file(root):
    return root / DATA_PATH.format(chunk_index=0, file_index=0)


def video_file(root):
    return root / VIDEO_PATH.format(video_key=image_key("agentview"), chunk_index=0, file_index=0)


def test_missing_or_corrupt_data_file_names_the_file(small_dataset):
    data_file(small_dataset).unlink()
    with pytest.raises(DatasetError, match="not found") as error:
        VLADataset(small_dataset)
    assert error.value.path == str(data_file(small_dataset))
    data_file(small_dataset).write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DatasetError, match="corrupt parquet") as error:
        VLADataset(small_dataset)
    assert error.value.path == str(data_file(small_dataset))


def test_data_rows_that_disagree_with_the_episodes_name_the_file_and_column(small_dataset):
    edit_parquet(data_file(small_dataset), "frame_index", lambda v: v + (np.arange(len(v)) == 5))
    with pytest.raises(DatasetError, match="'frame_index'") as error:
        VLADataset(small_dataset)
    assert error.value.path == str(data_file(small_dataset))


def test_rows_past_total_frames_are_an_uncommitted_episode_and_too_few_rows_an_error(small_dataset):
    path = data_file(small_dataset)
    table = pq.read_table(path)
    extra = table.slice(5, 2)  # like the start of an episode 2 whose commit stopped before info.json
    extra = extra.set_column(extra.schema.get_field_index("index"), "index", pa.array([7, 8]))
    extra = extra.set_column(extra.schema.get_field_index("episode_index"), "episode_index", pa.array([2, 2]))
    pq.write_table(pa.concat_tables([table, extra]), path)
    dataset = VLADataset(small_dataset)
    assert len(dataset) == 7 and dataset[6]["episode_index"] == 1
    pq.write_table(table.slice(0, 5), path)
    with pytest.raises(DatasetError, match="total_frames is 7, the data files hold 5 rows") as error:
        VLADataset(small_dataset)
    assert error.value.path == str(small_dataset / INFO_PATH)


def test_wrong_codebase_version_names_info_json(small_dataset):
    info_path = small_dataset / INFO_PATH
    info = json.loads(info_path.read_text())
    for version, message in (("v2.1", "v2.x.*convert"), ("v9.0", "codebase_version")):
        info_path.write_text(json.dumps({**info, "codebase_version": version}))
        with pytest.raises(DatasetError, match=message) as error:
            VLADataset(small_dataset)
        assert error.value.path == str(info_path)


def test_missing_or_corrupt_video_names_the_video_file(small_dataset):
    video = video_file(small_dataset)
    content = video.read_bytes()
    video.unlink()
    with pytest.raises(DatasetError, match="not found") as error:
        VLADataset(small_dataset)
    assert error.value.path == str(video)
    video.write_bytes(content[: len(content) // 3])
    dataset = VLADataset(small_dataset)
    with pytest.raises(DatasetError) as error:
        dataset[len(dataset) - 1]  # the last frames were cut off
    assert error.value.path == str(video)


@pytest.mark.parametrize("cache", [None, "memmap"])
def test_a_frame_missing_at_its_timestamp_names_the_video_and_the_time(small_dataset, cache):
    episodes = small_dataset / EPISODES_PATH.format(chunk_index=0, file_index=0)
    # Half a frame off: the picture would be the nearest frame, which LeRobot's 1e-4 s tolerance rejects.
    edit_parquet(episodes, f"videos/{image_key('agentview')}/from_timestamp", lambda v: v + 0.05)
    with pytest.raises(DatasetError, match=r"timestamp 0\.05") as error:
        VLADataset(small_dataset, cache=cache)[0]
    assert error.value.path == str(video_file(small_dataset))
