"""vla-serve and PolicyClient: the same actions as the policy in process, through openpi's client and ours."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import websockets.sync.client
from conftest import tiny_checkpoint
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from websockets.exceptions import ConnectionClosed
from websockets.server import ServerProtocol

import sim
from policies.evaluation.envs import make_eval_env
from policies.expert_policy import EXPERT_ACTIONS, ExpertPolicy
from policies.serving.client import PolicyClient, ServerError
from policies.serving.server import PolicyServer, ServerThread
from policies.serving.wire import pack
from policies.vla_policy import VLAPolicy

KEY = "k" * 24
# openpi-client 0.1.2 opens its connection outside a with-block, which websockets 17 warns about
pytestmark = [
    pytest.mark.filterwarnings("ignore:connect.. must be used as a context manager:DeprecationWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]


@pytest.fixture(scope="module")
def observations():
    """Five consecutive observations of a PressButton episode, with the expert's privileged actions."""
    env = make_eval_env("PressButton", sim.EnvConfig(image_size=(64, 64)), expert_noise=0.0)
    obs, _ = env.reset(seed=0)
    collected = [obs]
    for _ in range(4):
        obs, *_ = env.step(obs[EXPERT_ACTIONS][0])
        collected.append(obs)
    env.close()
    return collected


def plain(obs: dict) -> dict:
    """The observation without the expert's privileged actions (a checkpoint server refuses that key)."""
    return {key: value for key, value in obs.items() if key != EXPERT_ACTIONS}


def openpi_keys(obs: dict) -> dict:
    """The observation as openpi's examples name it (the server's default key map reads it back)."""
    return {
        "observation/image": obs["images"]["agentview"],
        "observation/wrist_image": obs["images"]["wrist"],
        "observation/state": obs["state"],
        "prompt": obs["instruction"],
        **({EXPERT_ACTIONS: obs[EXPERT_ACTIONS]} if EXPERT_ACTIONS in obs else {}),
    }


@pytest.fixture(scope="module")
def expert_server():
    with ServerThread(PolicyServer(ExpertPolicy, port=0, kind="expert")) as running:
        yield running


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="module")
def checkpoint_server(checkpoint):
    with ServerThread(PolicyServer(lambda: VLAPolicy(checkpoint), port=0, kind="checkpoint")) as running:
        yield running


# -- the same actions as in process --------------------------------------------------------------------------
def test_openpi_client_gets_the_experts_actions(expert_server, observations):
    client = WebsocketClientPolicy("localhost", expert_server.port)
    assert client.get_server_metadata()["policy"] == "expert"
    expert = ExpertPolicy()
    for obs in observations:
        reply = client.infer(openpi_keys(obs))
        assert reply["actions"].dtype == np.float32 and reply["actions"].shape == (1, 7)
        assert np.array_equal(reply["actions"], expert.infer(obs)["actions"])
        assert set(reply["server_timing"]) >= {"infer_ms", "prev_total_ms"}


def test_both_clients_get_the_checkpoints_exact_actions(checkpoint_server, checkpoint, observations):
    in_process = VLAPolicy(checkpoint)
    ours = PolicyClient(port=checkpoint_server.port)
    theirs = WebsocketClientPolicy("localhost", checkpoint_server.port)
    meta = ours.server_metadata
    assert meta["cameras"] == ["agentview", "wrist"] and (meta["chunk_size"], meta["action_dim"]) == (4, 7)
    assert meta["checkpoint"] == str(checkpoint) and meta["stateful"] is False
    assert (meta["decoding"], meta["precision"]) == ("autoregressive", "fp32")
    for obs in map(plain, observations):
        expected = in_process.infer(obs)["actions"]
        assert expected.shape == (4, 7)
        assert np.array_equal(ours.infer(obs)["actions"], expected)
        assert np.array_equal(theirs.infer(openpi_keys(obs))["actions"], expected)
    flat = {f"images/{camera}": image for camera, image in observations[0]["images"].items()}
    flat |= {"state": observations[0]["state"], "instruction": observations[0]["instruction"]}
    assert np.array_equal(ours.infer(flat)["actions"], in_process.infer(observations[0])["actions"])
    ours.close()


def test_policy_client_returns_writable_actions_and_timing(expert_server, observations):
    with PolicyClient(port=expert_server.port) as client:
        reply = client.infer(observations[0])
        reply["actions"][0, 0] = 5.0  # a caller may edit the chunk it got
        assert reply["server_timing"]["batch_size"] == 1
        assert client.infer(observations[1])["server_timing"]["prev_total_ms"] > 0


def test_the_client_imports_neither_torch_nor_vla():
    code = (
        "import sys, policies.serving.client\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'vla'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"importing the client imported {result.stdout}{result.stderr}"


# -- errors ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda obs: {**obs, "images": {"agentview": obs["images"]["agentview"]}}, "lacks camera 'wrist'"),
        (lambda obs: {**obs, "state": obs["state"][:5]}, "'state' must have 17 values"),
        (lambda obs: {**obs, "state": np.full(17, np.nan, np.float32)}, "NaN or inf"),
        (lambda obs: {**obs, "state": obs["state"].astype(np.int32)}, "'state' must be a 1-D float array"),
        (lambda obs: {**obs, "images": {**obs["images"], "wrist": obs["images"]["wrist"] * 1.0}}, "uint8"),
        (lambda obs: {**obs, "instruction": ""}, "'instruction'.* must be a non-empty string"),
        (
            lambda obs: {**obs, "observaton/image": obs["images"]["wrist"]},
            "unknown observation key 'observaton/image'",
        ),
        (lambda obs: {**obs, "prompt": "twice"}, "'prompt' gives 'instruction' a second time"),
    ],
)
def test_a_bad_observation_is_an_error_naming_it_and_the_next_is_served(
    checkpoint_server, observations, change, message
):
    client = PolicyClient(port=checkpoint_server.port)
    with pytest.raises(ServerError, match=message):
        client.infer(change(plain(observations[0])))
    assert client.infer(plain(observations[0]))["actions"].shape == (4, 7)  # reconnected by itself
    client.close()


def test_an_error_is_a_text_frame_then_close_code_1011(expert_server):
    with websockets.sync.client.connect(f"ws://localhost:{expert_server.port}") as connection:
        connection.recv(timeout=5)  # the metadata
        connection.send(b"\xc1 not msgpack")
        assert "not a msgpack frame" in connection.recv(timeout=5)
        with pytest.raises(ConnectionClosed) as closed:
            connection.recv(timeout=5)
        assert closed.value.rcvd.code == 1011


class SlowPolicy:
    """Stateless: answers ``[[state[0]]]``, after ``delay_s`` when the instruction is "slow"."""

    def __init__(self, delay_s: float = 1.0):
        self.delay_s, self.batch_sizes = delay_s, []

    def reset(self):
        pass

    def infer(self, obs):
        return self.infer_batch([obs])[0]

    def infer_batch(self, observations):
        self.batch_sizes.append(len(observations))
        if any(obs["instruction"] == "slow" for obs in observations):
            time.sleep(self.delay_s)
        return [{"actions": np.full((1, 1), obs["state"][0], np.float32)} for obs in observations]


def small_obs(value: float, instruction: str = "go") -> dict:
    return {
        "images/agentview": np.zeros((4, 4, 3), np.uint8),
        "state": np.array([value], np.float32),
        "instruction": instruction,
    }


def test_a_late_reply_raises_timeout_and_is_never_returned_later():
    with ServerThread(PolicyServer(lambda: SlowPolicy(1.0), port=0)) as running:
        client = PolicyClient(port=running.port, timeout_s=0.4)
        started = time.perf_counter()
        with pytest.raises(TimeoutError, match=r"within 0\.4 s"):
            client.infer(small_obs(1.0, "slow"))
        assert time.perf_counter() - started < 1.0
        time.sleep(0.8)  # the late reply (1.0) is ready by now: it must not answer the next observation
        assert client.infer(small_obs(2.0))["actions"][0, 0] == 2.0


def _stalled_server(listener: socket.socket, release: threading.Event) -> None:
    """Accept one websocket, send metadata, then never read again: a hung server process or machine."""
    sock, _ = listener.accept()
    protocol = ServerProtocol()
    while not (events := protocol.events_received()):
        protocol.receive_data(sock.recv(65536))
    protocol.send_response(protocol.accept(events[0]))
    protocol.send_binary(pack({"max_frame_bytes": 2**20}))
    for data in protocol.data_to_send():
        sock.sendall(data)
    release.wait(10)
    sock.close()


def test_the_client_raises_after_timeout_s_not_twice_it():
    """timeout_s=1.0 raised after 2.0 s from a hung server: the client then closed the connection politely
    and waited close_timeout for a closing handshake that never came. It drops the connection at once now."""
    listener, release = socket.create_server(("127.0.0.1", 0)), threading.Event()
    server = threading.Thread(target=_stalled_server, args=(listener, release), daemon=True)
    server.start()
    try:
        client = PolicyClient(port=listener.getsockname()[1], timeout_s=1.0, connect_retries=0)
        started = time.perf_counter()
        with pytest.raises(TimeoutError, match=r"within 1\.0 s"):
            client.infer(small_obs(1.0))
        assert 1.0 <= time.perf_counter() - started < 1.3
    finally:
        release.set()
        server.join(10)
        listener.close()


def test_a_client_that_vanishes_mid_request_leaves_the_others_served():
    with ServerThread(PolicyServer(lambda: SlowPolicy(0.5), port=0)) as running:
        for _ in range(3):  # each one sends an observation and disappears before the answer
            vanishing = websockets.sync.client.connect(f"ws://localhost:{running.port}")
            vanishing.recv()  # the metadata
            vanishing.send(pack(small_obs(9.0, "slow")))
            vanishing.socket.close()  # no close handshake: as a crashed process or a pulled cable
        time.sleep(0.8)  # the server answers into closed connections meanwhile
        with PolicyClient(port=running.port) as client:
            assert client.infer(small_obs(3.0))["actions"][0, 0] == 3.0
        with urllib.request.urlopen(f"http://127.0.0.1:{running.port}/healthz", timeout=1) as response:
            assert response.status == 200


def test_the_event_loop_answers_healthz_and_pings_during_a_slow_inference():
    with ServerThread(PolicyServer(lambda: SlowPolicy(1.5), port=0)) as running:
        busy = PolicyClient(port=running.port)
        worker = threading.Thread(target=busy.infer, args=(small_obs(1.0, "slow"),))
        with websockets.sync.client.connect(f"ws://localhost:{running.port}") as idle:
            worker.start()
            time.sleep(0.2)
            started = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{running.port}/healthz", timeout=1) as response:
                assert response.status == 200
            assert idle.ping().wait(timeout=1)
            assert time.perf_counter() - started < 0.5 and worker.is_alive()
        worker.join()


def test_requests_that_arrive_together_are_batched():
    policy = SlowPolicy(0.2)
    with ServerThread(PolicyServer(lambda: policy, port=0)) as running:
        answers = {}

        def drive(index: int):
            with PolicyClient(port=running.port) as client:
                answers[index] = [
                    client.infer(small_obs(index + 10 * n, "slow"))["actions"][0, 0] for n in range(3)
                ]

        threads = [threading.Thread(target=drive, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert answers == {i: [i, i + 10, i + 20] for i in range(6)}  # each client its own answers
    assert sum(policy.batch_sizes) == 18 and max(policy.batch_sizes) >= 3


class CountingPolicy:
    """Stateful (no infer_batch): answers how many observations it has seen since reset()."""

    def reset(self):
        self.count = 0

    def infer(self, obs):
        self.count += 1
        return {"actions": np.full((1, 1), self.count, np.float32)}


def test_a_stateful_policy_gets_an_instance_per_connection_and_reset_starts_over():
    with ServerThread(PolicyServer(CountingPolicy, port=0)) as running:
        first, second = PolicyClient(port=running.port), PolicyClient(port=running.port)
        assert first.server_metadata["stateful"] is True
        counts = [
            (first.infer(small_obs(0))["actions"][0, 0], second.infer(small_obs(0))["actions"][0, 0])
            for _ in range(3)
        ]
        assert counts == [(1, 1), (2, 2), (3, 3)]
        first.reset()
        assert (
            first.infer(small_obs(0))["actions"][0, 0] == 1
            and second.infer(small_obs(0))["actions"][0, 0] == 4
        )


# -- security and limits ---------------------------------------------------------------------------------------
def test_listening_beyond_loopback_requires_a_key_and_checks_it(observations):
    with pytest.raises(ValueError, match="requires an API key"):
        PolicyServer(ExpertPolicy, host="0.0.0.0", port=0)
    with pytest.raises(ValueError, match="at least 16 characters"):
        PolicyServer(ExpertPolicy, host="0.0.0.0", port=0, api_key="short")
    with ServerThread(PolicyServer(ExpertPolicy, host="0.0.0.0", port=0, api_key=KEY)) as running:
        for key in (None, KEY + "x"):
            with pytest.raises(PermissionError, match="401"):
                PolicyClient("127.0.0.1", running.port, api_key=key)
        with urllib.request.urlopen(f"http://127.0.0.1:{running.port}/healthz", timeout=1) as response:
            assert response.status == 200  # health checks need no key
        client = PolicyClient("127.0.0.1", running.port, api_key=KEY)
        assert np.array_equal(client.infer(observations[0])["actions"], observations[0][EXPERT_ACTIONS])
        theirs = WebsocketClientPolicy("127.0.0.1", running.port, api_key=KEY)
        assert np.array_equal(theirs.infer(observations[0])["actions"], observations[0][EXPERT_ACTIONS])


def test_an_oversize_frame_is_refused_and_the_server_keeps_serving(observations):
    with ServerThread(PolicyServer(ExpertPolicy, port=0, max_frame_mb=0.05)) as running:
        big = {**observations[0], "images": {"agentview": np.zeros((150, 150, 3), np.uint8)}}  # 67 KB
        with websockets.sync.client.connect(f"ws://localhost:{running.port}") as connection:
            connection.recv(timeout=5)
            connection.send(pack(big))
            with pytest.raises(ConnectionClosed) as closed:
                connection.recv(timeout=5)
            assert closed.value.rcvd.code == 1009  # message too big, never read into memory
        client = PolicyClient(port=running.port)
        with pytest.raises(ValueError, match="server takes frames up to 52428"):
            client.infer(big)  # refused before sending: the metadata says the limit
        assert np.array_equal(client.infer(observations[0])["actions"], observations[0][EXPERT_ACTIONS])


def test_the_client_retries_with_backoff_then_names_the_server():
    started = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"ws://127.0.0.1:1 \(3 attempts\)"):
        PolicyClient("127.0.0.1", 1, connect_retries=2, backoff_s=0.1)
    assert time.perf_counter() - started >= 0.3  # 0.1 s, then 0.2 s


def test_the_client_reconnects_with_backoff_while_the_server_restarts(observations):
    running = ServerThread(PolicyServer(ExpertPolicy, port=0))
    port = running.port
    client = PolicyClient(port=port, connect_retries=20, backoff_s=0.05)
    running.stop()
    restarted = []
    later = threading.Timer(
        0.3, lambda: restarted.append(ServerThread(PolicyServer(ExpertPolicy, port=port)))
    )
    later.start()
    try:
        assert np.array_equal(client.infer(observations[0])["actions"], observations[0][EXPERT_ACTIONS])
        assert restarted  # answered by the new server, found by retrying
    finally:
        later.join()
        restarted[0].stop()


# -- the vla-serve app -----------------------------------------------------------------------------------------
def _config(*overrides):
    import policies.serving.app  # noqa: F401  (registers the config schema)

    with initialize_config_module(config_module="configs", version_base="1.3"):
        return OmegaConf.to_object(compose("serve", overrides=list(overrides)))


def test_serve_config_is_checked(monkeypatch):
    monkeypatch.delenv("VLA_SERVE_API_KEY", raising=False)
    with pytest.raises(ValueError, match="exactly one of checkpoint=DIR and policy=expert"):
        _config()
    with pytest.raises(ValueError, match="requires an API key"):
        _config("policy=expert", "host=0.0.0.0")
    with pytest.raises(ValueError, match="a target must be 'state'"):
        _config("policy=expert", "key_map={observation/image: picture}")
    with pytest.raises(ValueError, match="precision must be one of"):
        _config("policy=expert", "precision=half")
    monkeypatch.setenv("VLA_SERVE_API_KEY", KEY)
    config = _config("policy=expert", "host=0.0.0.0", "key_map={observation/image: images/wrist}")
    assert config.api_key == KEY and config.key_map == {"observation/image": "images/wrist"}


def test_healthz_answers_ok_and_plain_http_elsewhere_is_refused(expert_server):
    with urllib.request.urlopen(
        f"http://127.0.0.1:{expert_server.port}/healthz?probe=1", timeout=1
    ) as response:
        assert response.status == 200 and response.read() == b"ok\n"
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(
            f"http://127.0.0.1:{expert_server.port}/", timeout=1
        )  # not a websocket upgrade
