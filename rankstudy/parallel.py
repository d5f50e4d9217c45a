"""Where parallel work runs: joblib's loky processes on this machine, or an existing dask.distributed cluster.

Both the rank study (`rankstudy sample`) and the channel study (`rankstudy channels`) hand their tasks to
one `joblib.Parallel`; `--scheduler tcp://HOST:PORT` only swaps joblib's backend for its dask backend, so
the tasks, their arguments and the order results are stored in are the same either way. Tasks return their
results to this process, which writes them: cluster workers need the code and the input data, not the
output folder.
"""

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator

from joblib import Parallel, parallel_config

from .errors import StudyError

CONNECT_TIMEOUT_S = 20
PARENT_POLL_S = 0.5


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)  # the parent is gone: nothing will read this worker's results


def watch_parent(parent: int) -> None:
    """Starts a daemon thread that ends this (worker) process within PARENT_POLL_S once process `parent` is gone.

    loky workers otherwise outlive a parent killed with SIGKILL until they next look at their queue; the
    initializer of every local worker pool (`run_tasks`), so a killed study leaves no process behind."""
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True, name="watch-parent").start()


def check_scheduler(address: str) -> None:
    """Raises StudyError unless `address` looks like a scheduler address and, for tcp://HOST:PORT, something
    listens there: called before a study writes anything, so a bad --scheduler leaves no folder behind."""
    if "://" not in address:
        raise StudyError(
            f"--scheduler {address!r} is not an address; give e.g. tcp://HOST:8786 (what `dask scheduler` prints)"
        )
    scheme, _, rest = address.partition("://")
    if scheme != "tcp":
        return
    host, _, port = rest.rstrip("/").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except (OSError, ValueError) as exc:
        raise StudyError(
            f"cannot reach the dask scheduler at {address} ({exc.__class__.__name__}); start one with "
            "`dask scheduler` and workers with `dask worker ADDRESS`, or drop --scheduler"
        ) from None


@contextlib.contextmanager
def dask_client(address: str) -> Iterator[object]:
    """Yields a dask.distributed Client connected to the scheduler at `address`; StudyError if unreachable."""
    try:
        from distributed import Client  # noqa: PLC0415 - optional dependency (the [dask] extra)
    except ImportError:
        raise StudyError(
            "--scheduler needs dask.distributed; install it with pip install 'dask[distributed]' "
            "(or the project's [dask] extra)"
        ) from None
    if "://" not in address:
        raise StudyError(
            f"--scheduler {address!r} is not an address; give e.g. tcp://HOST:8786 (what `dask scheduler` prints)"
        )
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=True)
    except (OSError, TimeoutError, ValueError) as exc:
        raise StudyError(
            f"cannot reach the dask scheduler at {address} ({exc.__class__.__name__}); start one with "
            "`dask scheduler` and workers with `dask worker ADDRESS`, or drop --scheduler"
        ) from None
    try:
        yield client
    finally:
        client.close()


def run_tasks(tasks: Iterable, workers: int, scheduler: str | None = None) -> Iterator:
    """Yields the results of joblib `delayed` tasks as they finish (in any order).

    `scheduler` None: `workers` loky processes here (1 = in this process, no pool). Otherwise joblib's dask
    backend on the cluster at that address, with as many tasks in flight as the cluster has worker threads.
    """
    if scheduler is not None:
        with dask_client(scheduler), parallel_config(backend="dask"):
            yield from Parallel(n_jobs=-1, return_as="generator_unordered")(tasks)
    elif workers > 1:
        # Each worker watches this process: killed (even by kill -9), it takes its workers with it.
        with parallel_config(backend="loky", initializer=watch_parent, initargs=(os.getpid(),)):
            yield from Parallel(n_jobs=workers, return_as="generator_unordered")(tasks)
    else:
        for fn, args, kwargs in tasks:
            yield fn(*args, **kwargs)
