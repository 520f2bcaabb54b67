"""The action tokenizer's contract (vla/tokenizer.py), as properties over random statistics and chunks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vla.tokenizer import ActionTokenizer

DIM = 7
IDS = np.arange(1000, 1256)  # the LLM ids standing for bins 0..255


@st.composite
def tokenizer_and_chunk(draw):
    q01 = draw(arrays(np.float64, DIM, elements=st.floats(-5, 5)))
    span = draw(arrays(np.float64, DIM, elements=st.floats(0.01, 5)))
    k = draw(st.integers(1, 12))
    unit = draw(arrays(np.float64, (k, DIM), elements=st.floats(0, 1)))
    return ActionTokenizer(q01, q01 + span, IDS), q01 + unit * span


@settings(max_examples=200, deadline=None)
@given(tokenizer_and_chunk())
def test_round_trip_is_within_half_a_bin(case):
    tokenizer, chunk = case
    tokens = tokenizer.encode(chunk)
    assert tokens.shape == (chunk.size,) and np.isin(tokens, IDS).all()
    decoded = tokenizer.decode(tokens)
    half_bin = (tokenizer.q99 - tokenizer.q01) / tokenizer.num_bins
    assert decoded.shape == chunk.shape and decoded.dtype == np.float32
    assert np.all(np.abs(decoded - chunk) <= half_bin + 1e-5)


@settings(max_examples=100, deadline=None)
@given(tokenizer_and_chunk())
def test_encoding_decoded_actions_is_the_identity_on_tokens(case):
    tokenizer, chunk = case
    tokens = tokenizer.encode(chunk)
    np.testing.assert_array_equal(tokenizer.encode(tokenizer.decode(tokens)), tokens)


def test_values_outside_the_quantiles_are_clipped_to_the_end_bins():
    tokenizer = ActionTokenizer(np.zeros(DIM), np.ones(DIM), IDS)
    tokens = tokenizer.encode(np.array([[-3.0] * DIM, [7.0] * DIM]))
    assert (tokens[:DIM] == IDS[0]).all() and (tokens[DIM:] == IDS[-1]).all()


def test_tokens_are_laid_out_step_by_step():
    tokenizer = ActionTokenizer(np.zeros(2), np.ones(2), IDS)
    tokens = tokenizer.encode(np.array([[0.0, 1.0], [1.0, 0.0]]))
    np.testing.assert_array_equal(tokens, IDS[[0, 255, 255, 0]])


def test_a_constant_dimension_decodes_to_its_value():
    tokenizer = ActionTokenizer([0.0, 2.0], [1.0, 2.0], IDS)
    decoded = tokenizer.decode(tokenizer.encode(np.array([[0.3, 2.0]])))
    assert decoded[0, 1] == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("tokens", "message"),
    [([1000] * 6 + [5], "not an action token"), ([1000] * 5, "whole number"), ([], "whole number")],
)
def test_invalid_token_sequences_raise_instead_of_returning_zeros(tokens, message):
    tokenizer = ActionTokenizer(np.zeros(DIM), np.ones(DIM), IDS)
    with pytest.raises(ValueError, match=message):
        tokenizer.decode(np.array(tokens))


def test_bad_statistics_and_chunks_are_rejected():
    with pytest.raises(ValueError, match="q99 must be >= q01"):
        ActionTokenizer([1.0], [0.0], IDS)
    with pytest.raises(ValueError, match="finite"):
        ActionTokenizer([np.nan], [1.0], IDS)
    with pytest.raises(ValueError, match="distinct"):
        ActionTokenizer([0.0], [1.0], np.zeros(256))
    tokenizer = ActionTokenizer(np.zeros(DIM), np.ones(DIM), IDS)
    with pytest.raises(ValueError, match="shape"):
        tokenizer.encode(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        tokenizer.encode(np.full((1, DIM), np.nan))
