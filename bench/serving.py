"""What serving a policy over a loopback websocket costs, against calling the same policy in process.

    .venv/bin/python bench/serving.py                 # stand-in policy and the tiny VLA, 1/4/16 clients
    .venv/bin/python bench/serving.py --no-vla --requests 2000

The observation is two 224x224 uint8 images, the 17-D state and an instruction (~0.3 MB a frame). The
stand-in policy answers a constant (10, 7) chunk at once, so its served latency minus its in-process latency
is the serving overhead (pack, websocket, unpack, key checks, the hop to the worker thread and back). The
tiny VLA (random weights, ``configs/model/tiny.yaml``) shows the same next to a real forward pass.

The server runs in a process of its own (``vla-serve``'s ``PolicyServer``), as it would in use; the clients
are threads of this process (one ``PolicyClient`` connection each). Frames per second count replies over
``--seconds`` with 1, 4 and 16 clients asking as fast as they can; the server batches what arrives together.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from policies.serving.client import PolicyClient
from policies.threads import passive_openmp

CHUNK = (10, 7)


class StandIn:
    """A stateless policy that costs nothing: the serving path alone is what gets measured."""

    def __init__(self):
        self.actions = np.zeros(CHUNK, np.float32)

    def reset(self):
        pass

    def infer(self, obs):
        return {"actions": self.actions}

    def infer_batch(self, observations):
        return [{"actions": self.actions} for _ in observations]


def observation(rng: np.random.Generator) -> dict:
    return {
        "images": {
            camera: rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for camera in ("agentview", "wrist")
        },
        "state": rng.standard_normal(17).astype(np.float32),
        "instruction": "open the top drawer",
    }


def make_policy(kind: str, checkpoint: str | None, torch_threads: int):
    if kind == "standin":
        return StandIn()
    import torch

    from policies.vla_policy import VLAPolicy

    torch.set_num_threads(torch_threads)
    return VLAPolicy(checkpoint)


def tiny_checkpoint(directory: Path) -> str:
    import torch

    from vla.model.config import ModelConfig
    from vla.model.vla import VLA

    torch.manual_seed(0)
    config = ModelConfig()  # the tiny preset's defaults
    stats = {
        key: {"q01": -np.ones(dim), "q99": np.ones(dim)}
        for key, dim in (("observation.state", config.state_dim), ("action", config.action_dim))
    }
    VLA(config, stats).save(directory)
    return str(directory)


def serve(kind: str, checkpoint: str | None, torch_threads: int) -> None:
    """The server process: print the port, then serve until killed."""
    from policies.serving.server import PolicyServer

    server = PolicyServer(lambda: make_policy(kind, checkpoint, torch_threads), port=0, max_batch=32)
    server.run(lambda port: print(f"PORT {port}", flush=True))


def start_server(kind: str, checkpoint: str | None, torch_threads: int) -> tuple[subprocess.Popen, int]:
    command = [sys.executable, __file__, "--serve", kind, "--torch-threads", str(torch_threads)]
    if checkpoint:
        command += ["--checkpoint", checkpoint]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"the benchmark server did not start: {line!r}")
    return process, int(line.split()[1])


def latencies_ms(calls: dict, obs: dict, requests: int) -> dict[str, list[float]]:
    """Round-trip times of each call, interleaved request by request, so that load from other processes
    on the machine falls on all of them alike."""
    for _ in range(max(5, requests // 20)):  # warm-up
        for call in calls.values():
            call(obs)
    times = {name: [] for name in calls}
    for _ in range(requests):
        for name, call in calls.items():
            started = time.perf_counter()
            call(obs)
            times[name].append((time.perf_counter() - started) * 1000)
    return times


def frames_per_second(port: int, clients: int, seconds: float) -> tuple[float, float]:
    """Replies per second with ``clients`` connections asking back to back, and the mean batch size."""
    counts, batches, stop = [0] * clients, [], threading.Event()
    go = threading.Barrier(clients + 1)

    def ask(index: int):
        obs = observation(np.random.default_rng(index))
        with PolicyClient(port=port, timeout_s=30) as client:
            client.infer(obs)
            go.wait()
            while not stop.is_set():
                batches.append(client.infer(obs)["server_timing"]["batch_size"])
                counts[index] += 1

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    go.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    elapsed = time.perf_counter() - started
    for thread in threads:
        thread.join()
    return sum(counts) / elapsed, statistics.fmean(batches)


def measure(kind: str, checkpoint: str | None, args) -> dict:
    obs = observation(np.random.default_rng(0))
    policy = make_policy(kind, checkpoint, args.torch_threads)
    requests = args.requests if kind == "standin" else max(30, args.requests // 20)
    process, port = start_server(kind, checkpoint, args.torch_threads)
    try:
        with PolicyClient(port=port, timeout_s=30) as client:
            times = latencies_ms({"local": policy.infer, "served": client.infer}, obs, requests)
        fps = {n: frames_per_second(port, n, args.seconds) for n in args.clients}
    finally:
        process.terminate()
        process.wait(10)
    return {**times, "fps": fps}


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def report(results: dict, args) -> None:
    import msgpack
    import websockets

    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"websockets {websockets.__version__}, msgpack {'.'.join(map(str, msgpack.version))}"
    )
    print("observation: 2 x 224x224x3 uint8 + state (17,) + instruction; reply (K, 7) float32; loopback")
    print()
    print("| policy | in process p50 / p90 ms | served p50 / p90 ms | overhead p50 ms |")
    print("|---|---|---|---|")
    for name, r in results.items():
        overhead = statistics.median(r["served"]) - statistics.median(r["local"])
        print(
            f"| {name} | {p(r['local'], 50):.3f} / {p(r['local'], 90):.3f} | "
            f"{p(r['served'], 50):.3f} / {p(r['served'], 90):.3f} | {overhead:.3f} |"
        )
    print()
    print("| clients | " + " | ".join(f"{name} frames/s (mean batch)" for name in results) + " |")
    print("|---|" + "---|" * len(results))
    cells = [f"{1000 / statistics.median(r['local']):.0f}" for r in results.values()]
    print("| in process, 1 caller | " + " | ".join(cells) + " |")
    for n in args.clients:
        cells = [f"{r['fps'][n][0]:.0f} ({r['fps'][n][1]:.1f})" for r in results.values()]
        print(f"| {n} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000, help="timed round trips per latency figure")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each frames-per-second run")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--no-vla", action="store_true", help="the stand-in policy only")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--serve", choices=("standin", "vla"), help=argparse.SUPPRESS)  # the server process
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    passive_openmp()  # before torch loads (docs/benchmarks.md: spinning OpenMP threads on a small machine)
    if args.serve:
        serve(args.serve, args.checkpoint, args.torch_threads)
        return
    results = {"stand-in": measure("standin", None, args)}
    if not args.no_vla:
        with tempfile.TemporaryDirectory() as tmp:
            results["tiny VLA"] = measure("vla", tiny_checkpoint(Path(tmp) / "tiny"), args)
    report(results, args)


if __name__ == "__main__":
    main()
