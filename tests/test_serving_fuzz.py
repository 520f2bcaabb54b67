"""Malformed frames at a vla-serve process: each is refused by name, a well-formed client is served correctly
all along, and the server's memory stays flat."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time
from collections import Counter

import msgpack
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from policies.expert_policy import EXPERT_ACTIONS
from policies.serving.client import PolicyClient
from policies.serving.wire import WireError, pack, unpack

CONNECTIONS = 4  # malformed frames in flight at once, each on its own connection (an error closes it)
RSS_SLACK_KB = 4 * 1024  # seen: < 0.5 MB; a leak of one 2 KB frame per request shows above it


def valid_obs(rng: np.random.Generator) -> dict:
    return {
        "images": {
            camera: rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for camera in ("agentview", "wrist")
        },
        "state": rng.standard_normal(17).astype(np.float32),
        "instruction": "press the button",
        EXPERT_ACTIONS: rng.uniform(-1, 1, (1, 7)).astype(np.float32),
    }


def raw_array(shape, dtype: str, data: bytes = b"") -> dict:
    """An array map as the wire carries it, with whatever shape, dtype and data a hostile client declares."""
    return {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape}


def _with(obs: dict, key: str, value) -> bytes:
    return pack({**obs, key: value})


MALFORMED = {
    "random bytes": lambda rng, obs: rng.bytes(int(rng.integers(0, 600))),
    "truncated msgpack": lambda rng, obs: (frame := pack(obs))[: int(rng.integers(1, len(frame)))],
    "unknown key": lambda rng, obs: _with(obs, f"observation/{rng.integers(1000)}", 1),
    "missing state": lambda rng, obs: pack({k: v for k, v in obs.items() if k != "state"}),
    "missing expert actions": lambda rng, obs: pack({k: v for k, v in obs.items() if k != EXPERT_ACTIONS}),
    "float image": lambda rng, obs: _with(obs, "images", {"agentview": np.zeros((16, 16, 3), np.float32)}),
    "int state": lambda rng, obs: _with(obs, "state", np.zeros(17, np.int32)),
    "string state": lambda rng, obs: _with(obs, "state", "0.1, 0.2"),
    "image without channels": lambda rng, obs: _with(obs, "images/agentview", np.zeros((16, 16), np.uint8)),
    "four-channel image": lambda rng, obs: _with(obs, "images/wrist", np.zeros((16, 16, 4), np.uint8)),
    "2-D state": lambda rng, obs: _with(obs, "state", np.zeros((17, 1), np.float32)),
    "NaN state": lambda rng, obs: _with(
        obs, "state", np.where(rng.random(17) < 0.5, np.nan, 0).astype(np.float32)
    ),
    "inf state": lambda rng, obs: _with(obs, "state", np.full(17, np.inf, np.float32)),
    "NaN expert actions": lambda rng, obs: _with(obs, EXPERT_ACTIONS, np.full((1, 7), np.nan, np.float32)),
    "huge declared shape": lambda rng, obs: _with(obs, "state", raw_array([2**40, 2**40], "<f4", b"\0" * 16)),
    "wrapping declared shape": lambda rng, obs: _with(obs, "state", raw_array([2**62, 4], "<f4")),
    "object dtype": lambda rng, obs: _with(obs, "state", raw_array([1], "|O", b"\0" * 8)),
    "void dtype": lambda rng, obs: _with(obs, "state", raw_array([17], "|V4", b"\0" * 68)),
    "complex dtype": lambda rng, obs: _with(obs, "state", raw_array([17], "<c8", b"\0" * 136)),
    "unknown dtype": lambda rng, obs: _with(obs, "state", raw_array([17], "<q9", b"\0" * 68)),
    "scalar overflow": lambda rng, obs: _with(
        obs, "state", {b"__npgeneric__": True, b"data": 1000, b"dtype": "|i1"}
    ),
    "not a map": lambda rng, obs: pack([1, 2, 3]) if rng.random() < 0.5 else pack(float(rng.random())),
    "non-string key": lambda rng, obs: msgpack.packb({1: 2}),
    "empty instruction": lambda rng, obs: _with(obs, "instruction", "   "),
    "huge instruction": lambda rng, obs: _with(obs, "instruction", "x" * 20_000),
    "deep nesting": lambda rng, obs: b"\x91" * 5000 + b"\xc0",
    "text frame": lambda rng, obs: "not a binary frame",
}


def malformed_frames(count: int, seed: int) -> list[tuple[str, bytes | str]]:
    rng = np.random.default_rng(seed)
    kinds = list(MALFORMED)
    frames = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        frames.append((kind, MALFORMED[kind](rng, valid_obs(rng))))
    return frames


async def _refusals(port: int, frames: list, connections: int) -> Counter:
    """Send each frame on a fresh connection; count (kind, outcome) where the outcome should be a text
    frame followed by close code 1011."""
    outcomes = Counter()
    queue = list(reversed(frames))

    async def worker():
        while queue:
            kind, frame = queue.pop()
            async with connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None) as connection:
                await connection.recv()  # the metadata
                await connection.send(frame)
                try:
                    reply = await asyncio.wait_for(connection.recv(), 10)
                    await asyncio.wait_for(connection.recv(), 10)
                    code = None
                except ConnectionClosed as closed:
                    code = closed.rcvd.code if closed.rcvd else None
                outcomes[
                    (kind, "refused" if isinstance(reply, str) and code == 1011 else f"{reply!r:.80} {code}")
                ] += 1

    await asyncio.gather(*(worker() for _ in range(connections)))
    return outcomes


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+) kB", status.read()).group(1))


@pytest.fixture
def server_process(tmp_path):
    """``vla-serve policy=expert port=0`` in its own process; yields (pid, port)."""
    log = (tmp_path / "serve.log").open("w+")
    command = [sys.executable, "-m", "policies.serving.app", "policy=expert", "port=0", "max_frame_mb=1"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (match := re.search(r"on ws://127\.0\.0\.1:(\d+)", (tmp_path / "serve.log").read_text())):
            assert process.poll() is None and time.monotonic() < deadline, (
                tmp_path / "serve.log"
            ).read_text()
            time.sleep(0.05)
        yield process.pid, int(match.group(1))
    finally:
        process.terminate()
        process.wait(10)
        log.close()


class WellFormedClient(threading.Thread):
    """Keeps asking for actions and checks each answer is the one its own observation asked for."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.client = PolicyClient(port=port, timeout_s=10)
        self.stop, self.served, self.wrong = threading.Event(), 0, []

    def run(self):
        rng = np.random.default_rng(7)
        while not self.stop.is_set():
            obs = valid_obs(rng)
            try:
                actions = self.client.infer(obs)["actions"]
            except Exception as error:  # recorded for the test's assertion
                self.wrong.append(repr(error))
                continue
            if np.array_equal(actions, obs[EXPERT_ACTIONS]):
                self.served += 1
            else:
                self.wrong.append(f"got {actions} for {obs[EXPERT_ACTIONS]}")
            time.sleep(0.002)


def _fuzz(server_process, count: int):
    pid, port = server_process
    warmup = malformed_frames(400, seed=0)
    asyncio.run(_refusals(port, warmup, CONNECTIONS))  # let the allocator reach its working size first
    good = WellFormedClient(port)
    good.start()
    rss_before = _rss_kb(pid)
    started = time.perf_counter()
    outcomes = asyncio.run(_refusals(port, malformed_frames(count, seed=1), CONNECTIONS))
    elapsed = time.perf_counter() - started
    good.stop.set()
    good.join(10)
    rss_after = _rss_kb(pid)
    not_refused = {key: n for key, n in outcomes.items() if key[1] != "refused"}
    assert not not_refused, f"frames not answered with an error text and close 1011: {not_refused}"
    assert sum(outcomes.values()) == count and len({kind for kind, _ in outcomes}) == len(MALFORMED)
    assert not good.wrong and good.served > 20, (good.served, good.wrong[:3])
    assert rss_after - rss_before < RSS_SLACK_KB, f"server RSS grew from {rss_before} to {rss_after} kB"
    print(
        f"{count} malformed frames in {elapsed:.1f} s; {good.served} good requests served; RSS {rss_before} -> {rss_after} kB"
    )


def test_fuzzed_server_refuses_ten_thousand_bad_frames_and_keeps_serving(server_process):
    _fuzz(server_process, 10_000)  # about 20 s on 2 cores: the figure, in the default suite


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({b"__npgeneric__": True, b"data": 1000, b"dtype": "|i1"}, "bad numpy scalar of dtype int8"),
        (raw_array([2**62, 4], "<f4"), r"needs 73786976294838206464 bytes, got 0"),  # not wrapped to 0
        (raw_array([2**63], "<f4"), "needs 36893488147419103232 bytes"),
        (raw_array([2], "|O", b"\0" * 16), "refused numpy dtype object"),
    ],
)
def test_the_wire_refuses_overflowing_values_by_name(value, message):
    with pytest.raises(WireError, match=message):
        unpack(pack({"state": value}))
