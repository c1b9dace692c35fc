"""Executors: where the tasks of a curation (or tokenization) run: a local process pool or Ray.

An executor runs a batch of independent tasks, each a call ``fn(*args)`` of a module-level function,
and returns when all are done. Tasks must be idempotent (write to temporary names and rename, write a
completion marker last), because both executors retry a task whose process died:

- ``local``: a process pool on this machine (or the calling process for one worker). A worker killed
  mid-task breaks the pool; the pool is rebuilt and the unfinished tasks are submitted again, up to
  ``retries`` times.
- ``ray``: Ray Core tasks (``pip install 'pretrain[ray]'``). Without an address a local Ray instance
  with ``workers`` CPUs is started (a laptop); ``address="auto"`` or ``"ray://host:10001"`` joins a
  cluster started with ``ray start`` (on Slurm or Kubernetes the usual Ray way). Ray re-runs a task
  whose worker process died (``max_retries``); a Python exception inside a task is a bug or bad data
  and is not retried. The task functions and the input and output paths must be reachable from every
  node (a shared file system, or fsspec URLs); workers import pretrain (and a config's
  ``step_modules``) from their node's environment, the one ``ray start`` ran in.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any

EXECUTORS = ("local", "ray")


def _die_with_parent() -> None:
    """Pool initializer: on Linux, have the kernel kill this worker when the driver dies (kill -9
    included), so an orphaned worker never keeps writing a shard that the rerun is writing too."""
    if sys.platform == "linux":
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except OSError:
            pass


class LocalExecutor:
    """A process pool kept for the whole run, so a worker sets up its steps once, not once per batch.

    On Linux, when the calling process runs no other thread, ``prepare`` runs here first (imports,
    models) and workers are forked with it done, so they start at no cost; otherwise (threads that fork
    would copy mid-operation, or no fork on the platform) workers are spawned and set themselves up.
    """

    name = "local"

    def __init__(self, workers: int, prepare: Callable[[], None] | None = None, retries: int = 3):
        self.workers = max(1, workers)
        self.prepare = prepare
        self.retries = retries
        self.pool: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self.pool is None:
            if sys.platform == "linux" and threading.active_count() == 1:
                if self.prepare is not None:
                    self.prepare()
                self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=get_context("fork"),
                                                initializer=_die_with_parent)
                self.pool.submit(int).result()  # fork every worker now, before a progress-bar thread exists
            else:
                self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=get_context("spawn"),
                                                initializer=_die_with_parent)
        return self.pool

    def start(self) -> None:
        if self.workers > 1:
            self._pool()

    def run(self, fn: Callable[..., Any], calls: Sequence[tuple], done: Callable[[], None] = lambda: None) -> list:
        """``[fn(*args) for args in calls]``, in parallel; results in the order of ``calls``."""
        results: list[Any] = [None] * len(calls)
        if self.workers == 1:  # even a single task goes to the pool otherwise: the driver stays small
            for i, args in enumerate(calls):
                results[i] = fn(*args)
                done()
            return results
        todo = list(range(len(calls)))
        for attempt in range(self.retries + 1):
            pool = self._pool()
            futures = {pool.submit(fn, *calls[i]): i for i in todo}
            failed = []
            for f in as_completed(futures):
                try:
                    results[futures[f]] = f.result()
                    done()
                except BrokenProcessPool:
                    failed.append(futures[f])
            if not failed:
                return results
            self.close()  # a worker died (killed, out of memory): rebuild the pool and retry its tasks
            todo = sorted(failed)
            if attempt == self.retries:
                raise RuntimeError(f"{len(todo)} task(s) failed {self.retries + 1} times: a worker process died "
                                   "each time (out of memory or killed?)")

    def on_each_node(self, fn: Callable[..., Any], args: tuple) -> None:
        """``fn(*args)`` once on this machine (the only node)."""
        fn(*args)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None


class RayExecutor:
    """Ray Core tasks; each task asks for one CPU, so Ray runs as many at once as the cluster has."""

    name = "ray"

    def __init__(self, workers: int, address: str | None = None, retries: int = 3,
                 warm: tuple[Callable[..., Any], tuple] | None = None):
        try:
            import ray
        except ImportError:
            raise ValueError("--executor ray needs Ray: pip install 'pretrain[ray]'") from None
        self.ray = ray
        self.retries = retries
        self.started = False
        if not ray.is_initialized():
            # No runtime_env: workers take their environment (PYTHONPATH included) from the node they run
            # on, which a local instance inherits from this process. A job-level env would also make Ray
            # start each worker through its runtime-env agent: ~1 s more a worker, measured.
            kwargs: dict[str, Any] = {"address": address, "include_dashboard": False, "log_to_driver": True}
            if address is None:
                kwargs["num_cpus"] = max(1, workers)
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError) as exc:  # Ray's own errors: one line, not its traceback
                raise ValueError(join_failure(address, exc)) from None
            self.started = True
        self.remote: dict[Callable, Any] = {}
        self.warm = warm
        self.warming: list[Any] = []

    def start(self) -> None:
        """Start ``warm`` (a module-level function and its arguments) once per CPU of the cluster, not
        waited for: Ray starts a job's worker processes when its first tasks arrive, so without this the
        first task of each worker would also pay the process start, the imports and the steps' set-up,
        one worker after another, while the planning task runs alone on one of them."""
        if self.warm is not None and not self.warming:
            fn, args = self.warm
            task = self.ray.remote(num_cpus=1, max_retries=0)(fn)
            cpus = int(self.ray.cluster_resources().get("CPU", 1))
            self.warming = [task.remote(*args) for _ in range(max(1, cpus))]

    def run(self, fn: Callable[..., Any], calls: Sequence[tuple], done: Callable[[], None] = lambda: None) -> list:
        """``[fn(*args) for args in calls]`` as Ray tasks; results in the order of ``calls``."""
        ray = self.ray
        if fn not in self.remote:
            self.remote[fn] = ray.remote(num_cpus=1, max_retries=self.retries, retry_exceptions=False)(fn)
        refs = [self.remote[fn].remote(*args) for args in calls]
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                ray.get(ready)
                done()
            return ray.get(refs)
        except ray.exceptions.RayTaskError as exc:  # the task's own exception, not a dead worker
            raise exc.as_instanceof_cause() from None

    def on_each_node(self, fn: Callable[..., Any], args: tuple) -> None:
        """``fn(*args)`` once on every live node of the cluster (e.g. to clear a node-local cache)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self.ray
        task = ray.remote(num_cpus=0, max_retries=self.retries)(fn)
        ray.get([task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                 .remote(*args) for n in ray.nodes() if n.get("Alive")])

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False


def join_failure(address: str | None, exc: BaseException) -> str:
    """One line for a Ray instance that could not be started or joined, with the usual fix: since Ray
    2.59 a cluster started with `ray start` checks a token, which a driver joining by address (not
    ``auto``) sends only under ``RAY_AUTH_MODE=token``."""
    chain, e = [], exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    where = f"--ray-address {address}" if address else "--executor ray"
    if any("AuthToken" in str(e) or type(e).__name__ == "AuthenticationError" for e in chain):
        return (f"{where}: the Ray cluster refused this driver's token; set RAY_AUTH_MODE=token, with the cluster's "
                "token in ~/.ray/auth_token or RAY_AUTH_TOKEN (see `ray get-auth-token`), or use --ray-address auto "
                "on a node of the cluster")
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    what = "cannot join a Ray cluster there" if address else "cannot start a local Ray instance"
    return f"{where}: {what}: {first}"


def make_executor(name: str, workers: int, address: str | None = None,
                  prepare: Callable[[], None] | None = None,
                  warm: tuple[Callable[..., Any], tuple] | None = None) -> LocalExecutor | RayExecutor:
    """``prepare``: set-up the local pool runs once before it forks its workers; ``warm``: the same as a
    picklable (function, arguments), which Ray runs once per CPU as it starts."""
    if name == "local":
        if address:
            raise ValueError("--ray-address needs --executor ray")
        return LocalExecutor(workers, prepare)
    if name == "ray":
        return RayExecutor(workers, address, warm=warm)
    raise ValueError(f"unknown executor {name!r} (choose from {', '.join(EXECUTORS)})")
