"""Where the factory's training fan-out runs: local worker processes, or a Dask cluster.

The same flow runs on either (configuration only): ``execution.dask_address`` in conf/ or
``factory run --dask tcp://host:port`` sends the mapped ``train-chunk`` tasks to the Dask
scheduler at that address through prefect-dask's ``DaskTaskRunner``; without one, a
``ProcessPoolTaskRunner`` with ``execution.workers`` processes on this machine runs them.

What a Dask worker must share with the flow's process:

- FACTORY_HOME at the same absolute path (a shared file system): workers read the cached
  bars and features under ``data/cache`` and write each outcome under ``data/runs``; the
  tasks get these as absolute paths, and the train-chunk results Prefect keeps for its cache
  are written where the flow's settings say (under FACTORY_HOME's ``.prefect`` by default).
- The same code and environment: this project (importable as ``factory``, ``model_zoo``,
  ``feature_sets``, ``tasks``) and the same package versions, installed on every worker.
- A Prefect API they can reach: task runs report to the flow's API (``PREFECT_API_URL``).
  The temporary API ``factory run`` starts listens on 127.0.0.1, which serves workers on this
  machine only; workers elsewhere need a Prefect server at an address they can reach.

Only the flow's process writes MLflow and the lake: workers return outcome directories and
the flow logs them, so neither the tracking store nor the Delta tables see two writers.

Threads: each worker should run one task at a time (``dask worker --nthreads 1``, scale with
``--nworkers``): training seeds global random generators and sets torch's thread count per
process. The train-chunk task sets torch to one thread; LightGBM, XGBoost and the random
forest are configured with one thread each; OpenMP, MKL and OpenBLAS read
``OMP_NUM_THREADS``/``MKL_NUM_THREADS``/``OPENBLAS_NUM_THREADS``, which Dask's nanny sets to 1
for the workers it starts (``distributed.nanny.pre-spawn-environ``, on by default); workers
started with ``--no-nanny`` need them in their environment (``factory.paths.SINGLE_THREAD_ENV``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner

from factory.config import ExecutionConfig

CONNECT_TIMEOUT_ENV = "FACTORY_DASK_CONNECT_TIMEOUT"
DEFAULT_CONNECT_TIMEOUT = 10.0


class DaskSchedulerError(RuntimeError):
    """No Dask scheduler answered at the configured address; the message names it."""


def connect_timeout() -> float:
    """Seconds to wait for a Dask scheduler (``FACTORY_DASK_CONNECT_TIMEOUT``, default 10).

    Dask's own default (``distributed.comm.timeouts.connect``, 30 s) keeps a mistyped address
    waiting for half a minute.
    """
    return float(os.environ.get(CONNECT_TIMEOUT_ENV, DEFAULT_CONNECT_TIMEOUT))


@dataclass(frozen=True)
class DaskCluster:
    """What the scheduler at ``address`` reported: each worker's address and thread count."""

    address: str
    worker_threads: dict[str, int]

    def notices(self) -> list[str]:
        """Sentences about a cluster that will not train as expected (empty: none)."""
        notes = []
        if not self.worker_threads:
            notes.append(f"the Dask scheduler at {self.address} has no workers yet: "
                         "training waits until some join")
        threaded = sorted(w for w, n in self.worker_threads.items() if n > 1)
        if threaded:
            notes.append(f"{len(threaded)} Dask worker(s) at {self.address} run several tasks "
                         "per process (start them with --nthreads 1): e.g. " + threaded[0])
        return notes


def check_dask_scheduler(address: str, timeout: float | None = None) -> DaskCluster:
    """Connect to the Dask scheduler at ``address`` and list its workers.

    Parameters
    ----------
    address
        ``tcp://host:port`` or ``tls://host:port``.
    timeout
        Seconds to wait for the connection (default: `connect_timeout`).

    Raises
    ------
    ValueError
        When ``address`` is not of that form.
    DaskSchedulerError
        When nothing answers at ``address`` within ``timeout``.
    """
    from distributed import Client

    address = ExecutionConfig.valid_dask_address(address)
    timeout = connect_timeout() if timeout is None else timeout
    try:
        with Client(address, timeout=timeout, set_as_default=False) as client:
            return DaskCluster(address, dict(client.nthreads()))
    except (OSError, TimeoutError) as err:
        raise DaskSchedulerError(
            f"no Dask scheduler answered at {address} within {timeout:g} s ({err}); start "
            f"one there (`dask scheduler`) or correct --dask / execution.dask_address"
        ) from None


def task_runner(execution: ExecutionConfig, workers: int | None = None,
                dask_address: str | None = None) -> TaskRunner:
    """The task runner of the training fan-out.

    Parameters
    ----------
    execution
        The configuration's ``execution`` section.
    workers
        Local worker processes (default: ``execution.workers``); unused on a Dask cluster.
    dask_address
        A Dask scheduler's address; beats ``execution.dask_address``.

    Returns
    -------
    TaskRunner
        ``DaskTaskRunner(address=...)`` when an address is given (it connects when the first
        task is submitted, waiting at most `connect_timeout`), else
        ``ProcessPoolTaskRunner(max_workers=workers)``.

    Raises
    ------
    ValueError
        When the address is not ``tcp://HOST:PORT`` or ``tls://HOST:PORT``.
    """
    address = dask_address or execution.dask_address
    if address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=ExecutionConfig.valid_dask_address(address),
                              client_kwargs={"timeout": connect_timeout()})
    return ProcessPoolTaskRunner(max_workers=workers or execution.workers)
