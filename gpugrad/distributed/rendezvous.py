"""A small TCP rendezvous: rank 0 hands a token (the NCCL unique id) to every other rank.

Used when NCCL processes were started without MPI (one per GPU, by a script or a scheduler),
with PyTorch's environment variables: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from ..errors import DistributedError

ENV_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE")


def env_world() -> dict[str, Any] | None:
    """Rank, world size, local rank and address from the environment; None when unset."""
    present = [name for name in ENV_VARIABLES if name in os.environ]
    if not present:
        return None
    missing = [name for name in ENV_VARIABLES if name not in os.environ]
    if missing:
        raise DistributedError(
            f"the environment sets {', '.join(present)} but not {', '.join(missing)}; a "
            "launch without MPI needs all of MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE"
        )
    values = {name: os.environ[name] for name in ENV_VARIABLES}
    values["LOCAL_RANK"] = os.environ.get("LOCAL_RANK", values["RANK"])
    for name in ("MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
        if not values[name].isdigit():
            raise DistributedError(
                f"{name}={values[name]!r} in the environment is not a whole number"
            )
    world: dict[str, Any] = {"addr": values["MASTER_ADDR"]}
    for key, name in (("port", "MASTER_PORT"), ("rank", "RANK"), ("world_size", "WORLD_SIZE")):
        world[key] = int(values[name])
    world["local_rank"] = int(values["LOCAL_RANK"])
    if not 0 <= world["rank"] < world["world_size"]:
        raise DistributedError(
            f"RANK={world['rank']} is outside the world of WORLD_SIZE={world['world_size']}"
        )
    return world


def exchange(
    token: Any, rank: int, world_size: int, addr: str, port: int, timeout: float = 60.0
) -> Any:
    """Rank 0's JSON-serialisable `token`, on every rank: rank 0 listens on (addr, port) and
    sends it to each of the other ranks, which connect (retrying until rank 0 listens)."""
    deadline = time.monotonic() + timeout
    if rank == 0:
        payload = json.dumps(token).encode()
        with socket.create_server((addr, port), reuse_port=False) as server:
            for _ in range(world_size - 1):
                server.settimeout(max(deadline - time.monotonic(), 0.01))
                try:
                    conn, _ = server.accept()
                except TimeoutError as exc:
                    raise DistributedError(
                        f"rendezvous on {addr}:{port}: not every one of the {world_size} ranks "
                        f"connected within {timeout} s"
                    ) from exc
                with conn:
                    conn.sendall(len(payload).to_bytes(8, "big") + payload)
        return token
    while True:
        try:
            with socket.create_connection((addr, port), timeout=timeout) as conn:
                size = int.from_bytes(_receive(conn, 8), "big")
                return json.loads(_receive(conn, size))
        except (ConnectionRefusedError, ConnectionResetError) as exc:
            if time.monotonic() > deadline:
                raise DistributedError(
                    f"rendezvous: rank {rank} could not reach rank 0 at {addr}:{port} within "
                    f"{timeout} s"
                ) from exc
            time.sleep(0.05)


def _receive(conn: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = conn.recv(size)
        if not chunk:
            raise DistributedError("rendezvous: rank 0 closed the connection early")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
