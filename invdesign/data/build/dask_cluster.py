"""Dask distributed for `data build`: connect to a running cluster or start a local one, and run
the builder's units on it.

- `connect(address)`: a `distributed.Client` on a running scheduler (`dask scheduler`, with
  workers from `dask worker tcp://HOST:PORT`), or one line (`--scheduler: cannot reach Dask
  scheduler ...`) within `CONNECT_TIMEOUT_S` seconds.
- `local_client(n)`: a `distributed.LocalCluster` of `n` worker processes with one thread each
  (closed on leaving the block, also on Ctrl-C; its workers also exit if this process dies).
- `check_workers_see(client, folder)`: every worker can import invdesign and sees the output
  folder (the workers write the files themselves, so `--out` must be on a file system they share).
- `run_units(client, calls, on_done)`: submit `unit(*args)` for each call, report results as they
  finish; a unit whose worker died or whose result cannot be brought back becomes an exception
  passed to `on_done`, not the end of the build.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import distributed
from distributed.comm import connect as comm_connect

from invdesign.core.errors import InvdesignError

#: seconds to wait for a scheduler to answer (a reachable one answers in milliseconds)
CONNECT_TIMEOUT_S = 5.0
#: seconds to wait for the first worker of a scheduler that has none yet
WORKER_WAIT_S = 30.0
OPTION = "--scheduler"


async def _probe(address: str, timeout: float) -> None:
    comm = await comm_connect(address, timeout=timeout)
    await comm.close()


def connect(address: str, timeout: float = CONNECT_TIMEOUT_S,
            worker_wait: float = WORKER_WAIT_S) -> distributed.Client:
    """A client of the scheduler at `address` (`tcp://HOST:PORT`) with at least one worker.

    The address is probed with Dask's own comm layer first: a `Client` that fails to connect
    leaves a half-built object whose clean-up blocks and prints a traceback at exit.
    """
    try:
        asyncio.run(_probe(address, timeout))
    except ValueError as exc:  # a malformed address: no scheme, no port, unknown protocol
        raise InvdesignError(f"not a Dask scheduler address {address!r} ({exc}); "
                             "give tcp://HOST:PORT", OPTION) from None
    except Exception as exc:  # noqa: BLE001 - refused, timed out, or not a Dask server at all
        raise InvdesignError(f"cannot reach Dask scheduler {address} "
                             f"({type(exc).__name__}: {exc})", OPTION) from None
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except Exception as exc:  # noqa: BLE001 - it went away between the probe and the client
        raise InvdesignError(f"cannot reach Dask scheduler {address} "
                             f"({type(exc).__name__}: {exc})", OPTION) from None
    try:
        client.wait_for_workers(1, timeout=worker_wait)
    except TimeoutError:
        client.close()
        raise InvdesignError(f"Dask scheduler {address} has no workers after {worker_wait:g} s; "
                             f"start some with `dask worker {address}`", OPTION) from None
    return client


@contextlib.contextmanager
def local_client(n_workers: int) -> Iterator[distributed.Client]:
    """A client of a new local cluster: `n_workers` processes, one thread each, no dashboard.

    Closed on leaving the block (also on KeyboardInterrupt); Dask's worker processes also exit on
    their own when this process dies (they watch a pipe to it), so none is left behind.
    """
    with (
        distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                 dashboard_address=None, silence_logs=logging.ERROR) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield client


def _sees(folder: str) -> bool:
    return os.path.isdir(folder)


def check_workers_see(client: distributed.Client, folder: os.PathLike) -> None:
    """InvdesignError unless every worker of `client` runs invdesign and sees `folder`."""
    try:
        seen = client.run(_sees, str(folder))  # unpickling `_sees` imports invdesign there
    except Exception as exc:  # noqa: BLE001 - whatever a worker without invdesign raises
        raise InvdesignError(f"a Dask worker cannot run invdesign ({type(exc).__name__}: {exc}); "
                             "install it in the workers' environment", OPTION) from None
    blind = sorted(w for w, ok in seen.items() if not ok)
    if blind:
        raise InvdesignError(f"Dask worker {blind[0]} does not see the output folder "
                             f"({len(blind)} of {len(seen)} do not); --out must be on a file "
                             "system every worker shares", folder)


def run_units(client: distributed.Client, unit: Callable[..., Any],
              calls: Sequence[tuple[str, tuple]],
              on_done: Callable[[str, Any, BaseException | None], None]) -> None:
    """Run `unit(*args)` on the cluster for each `(name, args)` and call
    `on_done(name, result, error)` in the order they finish (`error` is set when the unit raised
    or its worker died, e.g. `distributed.KilledWorker`).

    Keys are `invdesign-<name>-<run id>`: unique per run, so two builds on one cluster never
    share results, and readable in the dashboard.
    """
    run = uuid.uuid4().hex[:8]
    futures = {
        client.submit(unit, *args, key=f"invdesign-{name}-{run}", pure=False): name
        for name, args in calls
    }
    for future in distributed.as_completed(futures, loop=client.loop):
        name = futures.pop(future)
        try:
            result, error = future.result(), None
        except Exception as exc:  # noqa: BLE001 - one lost unit must not end the build
            result, error = None, exc
        future.release()
        on_done(name, result, error)
