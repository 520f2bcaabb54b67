"""``PolicyClient``: a policy served by ``vla-serve`` (or any openpi-compatible server) as a local ``Policy``.

    client = PolicyClient("robot-pc.local", 8000, api_key=os.environ["VLA_SERVE_API_KEY"], timeout_s=2.0)
    client.server_metadata["cameras"]     # what the server reads, sent on connect
    actions = client.infer(obs)["actions"]  # float32 (K, D), un-normalized

Torch-free (only numpy, msgpack and websockets), so that it runs on a robot's computer. Unlike openpi's
client it never blocks forever and never hands back anything but the reply to the observation just sent:

- a reply that does not arrive within ``timeout_s`` raises ``TimeoutError``; the connection is then
  dropped, so that the late reply can never be taken for the answer to a later observation;
- a server error (a text frame) raises ``ServerError`` carrying the server's message;
- connecting retries ``connect_retries`` times with exponential back-off (``backoff_s``, doubling, at most
  ``MAX_BACKOFF_S``); a connection found dropped when sending is re-opened and the observation sent once more;
- a wrong API key raises ``PermissionError`` at once (retrying cannot fix it).

Not thread-safe: one client per thread (each is one connection; the server batches them).
"""

from __future__ import annotations

import contextlib
import socket
import time

import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from policies.serving.wire import WireError, bounded, pack, unpack

ACTIONS = "actions"  # policies.base.ACTIONS, repeated: this module imports nothing of the stack
API_KEY_ENV = "VLA_SERVE_API_KEY"  # where vla-serve and vla-deploy read the key from when not given
MAX_BACKOFF_S = 5.0
TOO_BIG_CLOSE_CODE = 1009  # websockets' close code for a frame over the server's max_size
UNAUTHORIZED = 401


class ServerError(RuntimeError):
    """The server refused a request or failed to answer it; ``str(error)`` holds its message."""


class PolicyClient:
    """``PolicyClient(host="localhost", port=8000, api_key=None, timeout_s=5.0, connect_retries=5,
    backoff_s=0.1)``; ``host`` may also be a whole ``ws://`` or ``wss://`` URI (``port`` is then unused).

    Connects at once (so ``server_metadata`` is there to read) and raises ``ConnectionError`` when the
    server cannot be reached after the retries."""

    def __init__(
        self,
        host: str = "localhost",
        port: int = 8000,
        api_key: str | None = None,
        timeout_s: float = 5.0,
        connect_retries: int = 5,
        backoff_s: float = 0.1,
    ):
        if not timeout_s > 0 or connect_retries < 0 or not backoff_s >= 0:
            raise ValueError(
                f"need timeout_s > 0, connect_retries >= 0 and backoff_s >= 0, got {timeout_s}, "
                f"{connect_retries}, {backoff_s}"
            )
        self.uri = host if host.startswith(("ws://", "wss://")) else f"ws://{host}:{port}"
        self.timeout_s, self.connect_retries, self.backoff_s = timeout_s, connect_retries, backoff_s
        self._headers = {"Authorization": f"Api-Key {api_key}"} if api_key else None
        self._connection: ClientConnection | None = None
        self._opened = (
            contextlib.ExitStack()
        )  # the open connection's context: closing it closes the connection
        self.server_metadata: dict = {}
        self._connect()

    def reset(self) -> None:
        """A stateless server policy has nothing to reset. A stateful one keeps its state per connection
        (docs/serving.md), so a fresh connection is a fresh episode."""
        if self.server_metadata.get("stateful"):
            self.close()
            self._connect()

    def infer(self, obs: dict) -> dict:
        """``{"actions": float32 (K, D), "server_timing": {...}}`` for ``obs``, or an error (never stale)."""
        frame = pack(obs)
        limit = self.server_metadata.get("max_frame_bytes")
        if isinstance(limit, int) and len(frame) > limit:
            raise ValueError(
                f"the observation packs to {len(frame)} bytes; the server takes frames up to {limit} "
                "(its max_frame_mb): send smaller images"
            )
        for attempt in range(2):
            if self._connection is None:
                self._connect()
            try:
                self._connection.send(frame)
                reply = self._connection.recv(timeout=self.timeout_s)
                break
            except TimeoutError:
                self._drop()
                raise TimeoutError(f"no reply from {self.uri} within {self.timeout_s} s") from None
            except ConnectionClosed as error:
                self.close()
                if error.rcvd is not None and error.rcvd.code == TOO_BIG_CLOSE_CODE:
                    raise ValueError(
                        f"{self.uri} refused the observation as too large ({len(frame)} bytes)"
                    ) from error
                if attempt == 1:
                    raise ConnectionError(f"the connection to {self.uri} dropped twice: {error}") from error
        if isinstance(reply, str):
            self.close()  # the server closes an errored connection; the next infer opens a new one
            raise ServerError(f"{self.uri}: {bounded(reply)}")
        return _decode_reply(reply, self.uri, self.server_metadata)

    def close(self) -> None:
        self._connection = None
        self._opened.close()

    def _drop(self) -> None:
        """Close without the closing handshake: a server too busy to answer in time would keep a polite
        close waiting up to another ``close_timeout`` (timeout_s=1.0 raised after 2.0 s)."""
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.socket.shutdown(socket.SHUT_RDWR)
        self.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _connect(self) -> None:
        error: Exception | None = None
        for attempt in range(self.connect_retries + 1):
            if attempt:
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S))
            try:
                # entered as a context (websockets >= 17 warns otherwise); self._opened exits it on close()
                connection = self._opened.enter_context(
                    connect(
                        self.uri,
                        additional_headers=self._headers,
                        compression=None,
                        max_size=None,  # replies are small, and come from the server this client chose
                        open_timeout=self.timeout_s,
                        close_timeout=min(self.timeout_s, 1.0),
                    )
                )
            except InvalidStatus as refused:
                if refused.response.status_code == UNAUTHORIZED:
                    raise PermissionError(f"{self.uri} refused the API key (HTTP 401)") from refused
                error = refused
                continue
            except (OSError, TimeoutError, InvalidHandshake) as failed:
                error = failed
                continue
            try:
                metadata = unpack(connection.recv(timeout=self.timeout_s))
            except (TimeoutError, ConnectionClosed, WireError) as failed:
                self._opened.close()
                error = failed
                continue
            if not isinstance(metadata, dict):
                self._opened.close()
                raise ConnectionError(
                    f"{self.uri} is not a policy server: its first frame is not a metadata map"
                )
            self._connection, self.server_metadata = connection, metadata
            return
        raise ConnectionError(
            f"could not connect to {self.uri} ({self.connect_retries + 1} attempts): {error}"
        ) from error


def _decode_reply(reply: bytes, uri: str, metadata: dict) -> dict:
    """The reply's value, its actions checked against the shape ``metadata`` advertises (chunk_size,
    action_dim; a missing or null entry: any)."""
    try:
        value = unpack(reply)
    except WireError as error:
        raise ServerError(f"{uri} sent a malformed reply: {error}") from error
    actions = value.get(ACTIONS) if isinstance(value, dict) else None
    if not isinstance(actions, np.ndarray) or actions.dtype.kind != "f" or actions.ndim != 2:
        raise ServerError(f"{uri} sent a reply without float (K, D) '{ACTIONS}'")
    advertised = (metadata.get("chunk_size"), metadata.get("action_dim"))
    if any(want is not None and got != want for got, want in zip(actions.shape, advertised, strict=True)):
        raise ServerError(
            f"{uri} sent actions of shape {actions.shape}; its metadata advertises "
            f"{tuple('any' if n is None else n for n in advertised)} (chunk_size, action_dim)"
        )
    # unpack's arrays are read-only views of the frame: hand back one the caller may modify
    return {**value, ACTIONS: actions.astype(np.float32, copy=True)}
