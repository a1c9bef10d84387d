"""Dask distributed for `data build`: connect to a running cluster or start a local one, and run
the builder's units on it.

- `connect(address)`: a `distributed.Client` on a running scheduler (`dask scheduler`, with
  workers from `dask worker tcp://HOST:PORT`), or one line (`--scheduler: cannot reach Dask
  scheduler ...`) within `CONNECT_TIMEOUT_S` seconds.
- `local_client(n)`: a `distributed.LocalCluster` of `n` worker processes with one thread each
  (closed on leaving the block, also on Ctrl-C; its workers also exit if this process dies).
- `check_workers_see(client, folder)`: the scheduler and every worker can import invdesign, and
  every worker sees the output folder (the workers write the files themselves, so `--out` must be
  on a file system they share).
- `run_units(client, calls, on_done)`: submit `unit(*args)` for each call, report results as they
  finish; a unit whose worker died or whose result cannot be brought back becomes an exception
  passed to `on_done`, not the end of the build.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
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


class _IgnoreCtrlC(distributed.WorkerPlugin):
    """Local workers ignore SIGINT: a terminal's Ctrl-C reaches the whole process group, and the
    build (not each worker, with a traceback apiece) shuts the cluster down."""

    def setup(self, worker: distributed.Worker) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt in the block (main thread only), so a terminated
    build closes its cluster as Ctrl-C does instead of dying with the workers' semaphores leaked.

    All logging is switched off at the signal, before the unwinding cancels the running gathers,
    so an interrupt prints only the CLI's one line: the in-process scheduler and its event loop
    log the cancelled gathers ("Couldn't gather keys", a tornado callback traceback), and
    distributed's logging config gives loggers such as `tornado.application` levels of their own,
    so quietening their parents is not enough. Logging is switched back on after the block.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    disabled = logging.root.manager.disable

    def interrupt(signum: int, _frame: object) -> None:
        logging.disable(logging.CRITICAL)
        raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        logging.disable(disabled)


@contextlib.contextmanager
def local_client(n_workers: int) -> Iterator[distributed.Client]:
    """A client of a new local cluster: `n_workers` processes, one thread each, no dashboard.

    Closed on leaving the block (also on Ctrl-C or SIGTERM, which raise KeyboardInterrupt here);
    Dask's worker processes also exit on their own when this process dies (they watch a pipe to
    it), so none is left behind.
    """
    with (
        _signals_interrupt(),
        distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                 silence_logs=logging.ERROR,
                                 # the scheduler's HTTP server always starts: on a free port (the
                                 # default 8787 may be taken), and without the dashboard
                                 dashboard_address="127.0.0.1:0",
                                 scheduler_kwargs={"dashboard": False}) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        client.register_plugin(_IgnoreCtrlC(), name="invdesign-ignore-ctrl-c")
        yield client


def _sees(folder: str) -> bool:
    return os.path.isdir(folder)


def check_workers_see(client: distributed.Client, folder: os.PathLike) -> None:
    """InvdesignError unless the scheduler and every worker of `client` run invdesign (the
    scheduler unpickles the units too) and every worker sees `folder`."""
    for where, run in (("scheduler", client.run_on_scheduler), ("worker", client.run)):
        try:
            seen = run(_sees, str(folder))  # unpickling `_sees` imports invdesign there
        except Exception as exc:  # noqa: BLE001 - whatever a process without invdesign raises
            raise InvdesignError(f"the Dask {where} cannot run invdesign ({type(exc).__name__}: "
                                 f"{exc}); install it in the cluster's environment",
                                 OPTION) from None
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

    Keys are `invdesign-build-<name>-<run id>`: unique per run, so two builds on one cluster never
    share results; the dashboard groups them as `invdesign-build`.
    """
    run = uuid.uuid4().hex[:8]
    names = [name for name, _ in calls]
    columns = list(zip(*(args for _, args in calls), strict=True))  # client.map takes columns
    keys = [f"invdesign-build-{name}-{run}" for name in names]
    futures = dict(zip(client.map(unit, *columns, key=keys, pure=False), names, strict=True))
    for future in distributed.as_completed(futures, loop=client.loop):
        name = futures.pop(future)
        try:
            result, error = future.result(), None
        except Exception as exc:  # noqa: BLE001 - one lost unit must not end the build
            result, error = None, exc
        future.release()
        on_done(name, result, error)
