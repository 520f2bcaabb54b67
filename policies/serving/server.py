"""``PolicyServer``: one policy behind a websocket, wire-compatible with openpi (docs/serving.md).

Per connection: the server sends a metadata map, then answers each observation frame with exactly one
reply frame ``{"actions": float32 (K, D), "server_timing": {...}}``. A frame it cannot answer gets a text
frame naming the problem and close code 1011; that ends the connection and nothing else.

Concurrency: everything network-facing runs on one asyncio event loop; inference runs on one worker
thread, so pings and ``/healthz`` keep answering during a slow forward pass. Requests that arrive while
the worker is busy wait in a queue and go into the next ``infer_batch`` together (no waiting window: a
lone request never waits for company). A stateful policy (no ``infer_batch``) cannot share its state
between robots, so each connection gets its own instance (reused after ``reset()`` once that connection
ends); its calls run on the same worker thread, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from urllib.parse import urlsplit

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from policies.base import ACTIONS, BatchPolicy, infer_batch
from policies.expert_policy import EXPERT_ACTIONS, ExpertPolicy
from policies.serving import keys
from policies.serving.wire import bounded, pack, unpack
from sim.contract import ACTION_DIM

log = logging.getLogger(__name__)

HEALTHZ = "/healthz"
AUTH_SCHEME = "Api-Key"  # openpi-client sends "Authorization: Api-Key <key>"
MIN_API_KEY_CHARS = 16
ERROR_CLOSE_CODE = 1011  # "internal error": openpi's convention after an error text frame
MAX_CLOSE_REASON_BYTES = 123  # the websocket protocol's limit
MAX_QUEUED_FRAMES = 4  # per connection; a client that sends ahead of its replies is paused, not buffered


def check_host(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond this machine without an API key, and refuse a guessable key."""
    if api_key is not None and len(api_key) < MIN_API_KEY_CHARS:
        raise ValueError(
            f"api_key must have at least {MIN_API_KEY_CHARS} characters, got {len(api_key)}; make one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(24))'"
        )
    if not is_loopback(host) and api_key is None:
        raise ValueError(
            f"host={host!r} accepts connections from other machines, which requires an API key (set "
            f"$VLA_SERVE_API_KEY; clients then send 'Authorization: {AUTH_SCHEME} <key>'); serve on 127.0.0.1 "
            "to stay on this machine"
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or "": it may resolve to (or mean) any interface


def describe(policy, kind: str, key_map: dict, max_frame_bytes: int) -> dict:
    """The metadata map every connection receives first: what to send and what comes back."""
    config = getattr(policy, "config", None)
    expert = isinstance(policy, ExpertPolicy)
    image_size = getattr(policy, "image_size", None)
    checkpoint = getattr(policy, "checkpoint", None)
    return {
        "server": "vla-serve",
        "policy": kind,
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "cameras": list(getattr(policy, "cameras", ())),  # observation cameras the policy reads
        "image_size": None if image_size is None else list(image_size),  # (H, W) it was trained on
        "state_dim": getattr(config, "state_dim", None),
        "action_dim": ACTION_DIM if expert else getattr(config, "action_dim", None),
        "chunk_size": 1 if expert else getattr(config, "chunk_size", None),
        "decoding": getattr(config, "decoding", None),  # how the chunk is decoded (vla/model/decoding.py)
        "precision": getattr(policy, "precision", None),  # the float type the model computes in
        "key_map": dict(key_map),
        "max_frame_bytes": max_frame_bytes,
        "stateful": not isinstance(policy, BatchPolicy),
    }


class PolicyServer:
    """``PolicyServer(make_policy, host=, port=, api_key=, max_frame_mb=, key_map=, max_batch=, kind=)``.

    ``make_policy()`` builds the policy: once for a stateless one, once per concurrent connection for a
    stateful one. ``port=0`` picks a free port (``serve``'s ``on_ready`` and ``ServerThread.port`` tell it).
    """

    def __init__(
        self,
        make_policy: Callable,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        api_key: str | None = None,
        max_frame_mb: float = 16.0,
        key_map: dict | None = None,
        max_batch: int = 32,
        kind: str | None = None,
    ):
        check_host(host, api_key)
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0-65535, got {port}")
        if not max_frame_mb > 0 or max_batch < 1:
            raise ValueError(f"max_frame_mb must be > 0 and max_batch >= 1, got {max_frame_mb}, {max_batch}")
        self.host, self.port, self.max_batch = host, port, max_batch
        self._expected_auth = None if api_key is None else f"{AUTH_SCHEME} {api_key}".encode()
        self.max_frame_bytes = int(max_frame_mb * 2**20)
        self.key_map = keys.check_key_map(key_map)
        self._make_policy = make_policy
        self.policy = make_policy()
        self.stateful = not isinstance(self.policy, BatchPolicy)
        self._idle = [self.policy]  # stateful: instances no connection holds
        config = getattr(self.policy, "config", None)
        self._cameras = tuple(getattr(self.policy, "cameras", ()))
        self._state_dim = getattr(config, "state_dim", None)
        self._passthrough = (EXPERT_ACTIONS,) if isinstance(self.policy, ExpertPolicy) else ()
        kind = kind or type(self.policy).__name__
        self.metadata = describe(self.policy, kind, self.key_map, self.max_frame_bytes)
        self._metadata_frame = pack(self.metadata)
        self._shape = (self.metadata["chunk_size"], self.metadata["action_dim"])  # None: not advertised
        self._queue: asyncio.Queue | None = None
        self._worker: ThreadPoolExecutor | None = None

    async def serve(self, on_ready: Callable[[int], None] | None = None, stop=None) -> None:
        """Serve until ``stop`` (an awaitable) completes, or forever. ``on_ready(port)`` once listening."""
        self._queue = asyncio.Queue()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="vla-serve-infer")
        batches = asyncio.create_task(self._run_batches())
        try:
            async with serve(
                self._handle,
                self.host,
                self.port,
                process_request=self._process_request,
                compression=None,  # as openpi; also no decompression bombs
                max_size=self.max_frame_bytes,
                max_queue=MAX_QUEUED_FRAMES,
            ) as server:
                self.port = server.sockets[0].getsockname()[1]
                if on_ready is not None:
                    on_ready(self.port)
                await (stop if stop is not None else asyncio.get_running_loop().create_future())
        finally:
            batches.cancel()
            self._worker.shutdown(wait=False, cancel_futures=True)

    def run(self, on_ready: Callable[[int], None] | None = None) -> None:
        """Serve in this thread until interrupted (Ctrl-C)."""
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self.serve(on_ready))

    # -- the handshake ---------------------------------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request):
        if urlsplit(request.path).path == HEALTHZ:
            return connection.respond(HTTPStatus.OK, "ok\n")
        if self._expected_auth is not None:
            given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given, self._expected_auth):
                return connection.respond(
                    HTTPStatus.UNAUTHORIZED,
                    f"missing or wrong API key: send 'Authorization: {AUTH_SCHEME} <key>'\n",
                )
        return None  # go on with the websocket handshake

    # -- one connection --------------------------------------------------------------------------------------
    async def _handle(self, connection: ServerConnection) -> None:
        try:
            policy = await self._checkout()
        except Exception as error:  # a stateful policy that fails to build fails this client
            await _refuse(connection, RuntimeError(f"could not build a policy for this connection: {error}"))
            return
        try:
            await connection.send(self._metadata_frame)
            previous_ms = 0.0
            async for message in connection:
                started = time.perf_counter()
                try:
                    reply = await self._answer(policy, message, previous_ms)
                except Exception as error:  # any failure of this request ends this connection only
                    await _refuse(connection, error)
                    return
                await connection.send(reply)
                previous_ms = (time.perf_counter() - started) * 1000
        except ConnectionClosed:
            pass  # the client left, or sent a frame over max_size (websockets closed with 1009)
        finally:
            self._checkin(policy)

    async def _answer(self, policy, message, previous_ms: float) -> bytes:
        if isinstance(message, str):
            raise keys.ObservationError("frames must be binary msgpack, got a text frame")
        frame = unpack(message)  # WireError (a ValueError) names what is malformed
        obs = keys.to_observation(frame, self.key_map, self._cameras, self._state_dim, self._passthrough)
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((policy, obs, future))
        output, infer_ms, batch_size = await future
        timing = {"infer_ms": infer_ms, "prev_total_ms": previous_ms, "batch_size": batch_size}
        return pack({ACTIONS: _actions(output, self._shape), "server_timing": timing})

    async def _checkout(self):
        if not self.stateful:
            return self.policy
        policy = self._idle.pop() if self._idle else None
        # Building a policy may load a checkpoint: never on the event loop.
        loop = asyncio.get_running_loop()
        if policy is None:
            policy = await loop.run_in_executor(self._worker, self._make_policy)
        await loop.run_in_executor(self._worker, policy.reset)
        return policy

    def _checkin(self, policy) -> None:
        if self.stateful:
            self._idle.append(policy)

    # -- batching ---------------------------------------------------------------------------------------------
    async def _run_batches(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())  # whatever arrived while the worker was busy
            try:
                results = await loop.run_in_executor(self._worker, _infer_all, batch)
            except Exception as error:  # the loop must outlive any one batch
                results = [error] * len(batch)
            for (_, _, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


def _infer_all(batch: list[tuple]) -> list:
    """On the worker thread: one ``(output, infer_ms, batch_size)`` or exception per request, grouped by
    policy instance (a stateless policy: one group, one ``infer_batch``)."""
    groups: dict[int, list[int]] = {}
    for index, (policy, _, _) in enumerate(batch):
        groups.setdefault(id(policy), []).append(index)
    results: list = [None] * len(batch)
    for indices in groups.values():
        policy = batch[indices[0]][0]
        observations = [batch[i][1] for i in indices]
        started = time.perf_counter()
        try:
            outputs = infer_batch(policy, observations)
        except Exception as error:  # handed to the requests' connections
            if len(indices) == 1:
                results[indices[0]] = error
                continue
            # One bad observation must not fail its batch-mates: answer each alone to find it.
            for i in indices:
                results[i] = _infer_all([batch[i]])[0]
            continue
        infer_ms = (time.perf_counter() - started) * 1000
        for i, output in zip(indices, outputs, strict=True):
            results[i] = (output, infer_ms, len(indices))
    return results


def _actions(output, shape: tuple) -> np.ndarray:
    """The policy's actions as float32 (K, D), refusing what must not reach a robot: anything but the
    ``shape`` the metadata advertised (an entry None: any)."""
    actions = output.get(ACTIONS) if isinstance(output, dict) else None
    if actions is None:
        raise RuntimeError(f"the policy returned no '{ACTIONS}'")
    actions = np.asarray(actions)
    if actions.dtype.kind != "f" or actions.ndim != 2 or actions.shape[0] < 1:
        raise RuntimeError(
            f"the policy returned {actions.dtype} actions of shape {actions.shape}, not float (K, D)"
        )
    if any(want is not None and got != want for got, want in zip(actions.shape, shape, strict=True)):
        advertised = tuple("any" if n is None else n for n in shape)
        raise RuntimeError(
            f"the policy returned actions of shape {actions.shape}; the metadata advertises "
            f"{advertised} (chunk_size, action_dim): refused"
        )
    if not np.isfinite(actions).all():
        raise RuntimeError("the policy returned NaN or inf actions")
    return actions.astype(np.float32, copy=False)


async def _refuse(connection: ServerConnection, error: Exception) -> None:
    """The error as a text frame, then close code 1011 (openpi's convention)."""
    client_error = isinstance(error, ValueError)  # malformed frames and observations the policy refuses
    message = str(error) if client_error else f"inference failed: {type(error).__name__}: {error}"
    message = bounded(message)  # it may quote the frame: a key, a dtype, megabytes of them
    if client_error:
        log.info("refused a request from %s: %s", connection.remote_address, message)
    else:  # the traceback, each of its lines bounded as well (its last one repeats the message)
        lines = traceback.format_exception(error)
        trace = "".join(bounded(line.rstrip("\n")) + "\n" for line in "".join(lines).splitlines())
        log.error("refused a request from %s: %s\n%s", connection.remote_address, message, trace.rstrip())
    reason = message.encode()[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore")
    with contextlib.suppress(ConnectionClosed):
        await connection.send(message)
        await connection.close(ERROR_CLOSE_CODE, reason)


class ServerThread:
    """A ``PolicyServer`` serving on a daemon thread (tests, benchmarks, notebooks)::

    with ServerThread(PolicyServer(make_policy, port=0)) as running:
        client = PolicyClient(port=running.port)
    """

    def __init__(self, server: PolicyServer, start_timeout_s: float = 10.0):
        self.server = server
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future | None = None
        self._thread = threading.Thread(target=self._main, name="vla-serve", daemon=True)
        self._thread.start()
        if not self._ready.wait(start_timeout_s):
            raise TimeoutError(f"the policy server did not start within {start_timeout_s} s")
        if self._failure is not None:
            raise RuntimeError(f"the policy server failed to start: {self._failure}") from self._failure

    @property
    def port(self) -> int:
        return self.server.port

    def _main(self) -> None:
        async def main():
            self._loop = asyncio.get_running_loop()
            self._stop = self._loop.create_future()
            await self.server.serve(lambda _: self._ready.set(), self._stop)

        try:
            asyncio.run(main())
        except BaseException as error:  # reported to the starting thread
            self._failure = error
        finally:
            self._ready.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(lambda: self._stop.done() or self._stop.set_result(None))
        self._thread.join(timeout_s)

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
