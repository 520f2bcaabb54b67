"""The seed protocol: reported numbers come from seeds that recording and tuning never touch, and every
success rate carries its 95% interval."""

from __future__ import annotations

import itertools

import pytest

from policies.reports.results import markdown_table, results_document
from policies.seeds import HELDOUT, RECORDING, TUNE, episode_seeds, wilson_interval


def test_the_splits_never_overlap():
    ranges = sorted([RECORDING, TUNE, HELDOUT], key=lambda r: r.start)
    for before, after in itertools.pairwise(ranges):
        assert before.stop <= after.start, f"{before.name} overlaps {after.name}"
    assert set(episode_seeds("heldout", 50)).isdisjoint(episode_seeds("tune", 50))


def test_seeds_stay_inside_their_split():
    assert episode_seeds("heldout", 3) == [HELDOUT.start, HELDOUT.start + 1, HELDOUT.start + 2]
    assert episode_seeds("tune", 2, TUNE.start + 10) == [TUNE.start + 10, TUNE.start + 11]
    with pytest.raises(ValueError, match="leave the tune split"):
        episode_seeds("tune", 5, TUNE.stop - 2)  # would spill into the held-out range
    with pytest.raises(ValueError, match="leave the heldout split"):
        episode_seeds("heldout", 5, 0)
    with pytest.raises(ValueError, match="split must be one of"):
        episode_seeds("recording", 5)


@pytest.mark.parametrize(
    ("successes", "episodes", "low", "high"),
    [(46, 50, 0.8116, 0.9685), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (5, 10, 0.2366, 0.7634)],
)
def test_wilson_interval_on_known_counts(successes, episodes, low, high):
    found = wilson_interval(successes, episodes)
    assert found == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_refuses_impossible_counts():
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)
    with pytest.raises(ValueError, match="episodes"):
        wilson_interval(0, 0)


def test_every_rate_in_the_report_has_its_interval():
    tasks = {
        name: {
            "success_rate": k / 50,
            "successes": k,
            "episodes": 50,
            "ci95": list(wilson_interval(k, 50)),
            "mean_length": 40.0,
            "example_instruction": "open the drawer",
            "video": None,
        }
        for name, k in (("OpenDrawer", 46), ("CloseDrawer", 45))
    }
    document = results_document(tasks, protocol={})
    assert document["mean_ci95"] == pytest.approx(wilson_interval(91, 100))
    table = markdown_table(document)
    assert "| OpenDrawer | 92% [81%-97%] (46/50) |" in table
    assert "**91% [84%-95%]**" in table
