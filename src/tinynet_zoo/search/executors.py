"""Where trials run: this process, a local process pool (the default) or Ray tasks; results stream back."""
from __future__ import annotations

import os
from typing import Any

from ..checks import choice, integer, number, positive
from ..errors import ExtraNotInstalledError, InvalidArgumentError, TinyNetZooError
from ..system import usable_cores
from .config import SearchConfig
from .sampling import TrialSpec
from .trial import TrainFn, execute_trial

SEARCH_BACKENDS = ("local", "ray")
Outcome = tuple[TrialSpec, int, "dict[str, Any] | Exception"]  # spec, attempt, metrics or the error


def exit_with_parent(poll_s: float = 1.0) -> None:
    """In a pool worker: exit when the search process dies (killed, crashed) instead of running on orphaned."""
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _payload(spec: TrialSpec) -> dict[str, Any]:
    return {"id": spec.id, "twist": spec.twist.to_dict()}


class SerialBackend:
    """Trials one after another in this process (workers=0: debugging, or when processes are unwelcome)."""

    def __init__(self, config: SearchConfig, train_fn: TrainFn | None, threads: int) -> None:
        self.config, self.train_fn, self.threads = config, train_fn, threads
        self._queue: list[tuple[TrialSpec, int]] = []

    @property
    def pending(self) -> int:
        """Trials submitted and not yet returned."""
        return len(self._queue)

    def submit(self, spec: TrialSpec, attempt: int) -> None:
        """Queue a trial (its `attempt`-th try)."""
        self._queue.append((spec, attempt))

    def next_done(self) -> Outcome:
        """Run the next queued trial; its metrics or the Exception it raised."""
        spec, attempt = self._queue.pop(0)
        try:
            return spec, attempt, execute_trial(_payload(spec), self.config, self.train_fn, self.threads)
        except Exception as exc:  # a failed trial is recorded, not fatal; KeyboardInterrupt still stops the search
            return spec, attempt, exc

    def close(self, interrupted: bool = False) -> None:
        """Nothing to release."""


class LocalBackend(SerialBackend):
    """A pool of `workers` spawned processes, each trial limited to `threads` CPU threads."""

    def __init__(self, config: SearchConfig, train_fn: TrainFn | None, threads: int, workers: int) -> None:
        super().__init__(config, train_fn, threads)
        self.workers = workers
        self._futures: dict[Any, tuple[TrialSpec, int, Any]] = {}
        self._pool = self._new_pool()
        self._broken = False

    def _new_pool(self) -> Any:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: a forked torch process can deadlock in its thread pools
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=exit_with_parent)

    @property
    def pending(self) -> int:
        """Trials submitted and not yet returned."""
        return len(self._futures)

    def submit(self, spec: TrialSpec, attempt: int) -> None:
        """Send a trial to the pool (a new pool if a worker crashed and broke the old one)."""
        if self._broken:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool, self._broken = self._new_pool(), False
        future = self._pool.submit(execute_trial, _payload(spec), self.config, self.train_fn, self.threads)
        self._futures[future] = (spec, attempt, self._pool)

    def next_done(self) -> Outcome:
        """Wait for the next finished trial; its metrics or the Exception it raised (or that killed its worker)."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        done, _ = wait(list(self._futures), return_when=FIRST_COMPLETED)
        future = next(iter(done))
        spec, attempt, pool = self._futures.pop(future)
        try:
            return spec, attempt, future.result()
        except BrokenProcessPool as exc:  # a worker died (killed, out of memory): its pool is unusable
            self._broken = self._broken or pool is self._pool
            return spec, attempt, exc
        except Exception as exc:
            return spec, attempt, exc

    def close(self, interrupted: bool = False) -> None:
        """Shut the pool down; when interrupted, stop the running trials instead of waiting for them."""
        workers = list((getattr(self._pool, "_processes", None) or {}).values())  # private: no public way before 3.14
        self._pool.shutdown(wait=not interrupted, cancel_futures=True)
        if interrupted:
            for process in workers:
                process.terminate()


def import_ray() -> Any:
    """The ray module, or an error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise ExtraNotInstalledError("the ray backend needs Ray, which is not installed: "
                                     "pip install 'tinynet-zoo[search]'") from None
    return ray


class RayBackend:
    """Each trial a Ray task declaring `cpus` CPUs and `gpus` GPUs; joins `address` or starts Ray locally."""

    def __init__(self, config: SearchConfig, train_fn: TrainFn | None, cpus: float, gpus: float,
                 address: str | None = None) -> None:
        ray = self._ray = import_ray()
        self._started = not ray.is_initialized()
        if self._started:
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError) as exc:
                where = f"join the Ray cluster at {address!r}" if address else "start Ray locally"
                raise TinyNetZooError(f"cannot {where}: {str(exc).splitlines()[0]} (start one with `ray start "
                                      "--head`, or leave out --address to start Ray locally)") from None
        self._remote = ray.remote(execute_trial).options(num_cpus=cpus, num_gpus=gpus, max_retries=0)
        self.config, self.train_fn, self.threads = config, train_fn, max(1, int(cpus))
        self._refs: dict[Any, tuple[TrialSpec, int]] = {}

    @property
    def pending(self) -> int:
        """Trials submitted and not yet returned."""
        return len(self._refs)

    def submit(self, spec: TrialSpec, attempt: int) -> None:
        """Launch a trial as a Ray task."""
        ref = self._remote.remote(_payload(spec), self.config, self.train_fn, self.threads)
        self._refs[ref] = (spec, attempt)

    def next_done(self) -> Outcome:
        """Wait for the next finished task; its metrics or the error (task exception, crashed worker)."""
        ready, _ = self._ray.wait(list(self._refs), num_returns=1)
        spec, attempt = self._refs.pop(ready[0])
        try:
            return spec, attempt, self._ray.get(ready[0])
        except Exception as exc:  # RayTaskError wraps the trial's own exception; keep that for the record
            cause = getattr(exc, "cause", None)
            return spec, attempt, cause if isinstance(cause, Exception) else exc

    def close(self, interrupted: bool = False) -> None:
        """Cancel what is still running when interrupted; stop Ray if this backend started it."""
        if interrupted:
            for ref in self._refs:
                self._ray.cancel(ref, force=True)
        if self._started:
            self._ray.shutdown()


def make_backend(name: str, config: SearchConfig, train_fn: TrainFn | None, *, workers: int | None = None,
                 threads: int = 1, address: str | None = None, cpus_per_trial: float = 1,
                 gpus_per_trial: float = 0, tasks: int | None = None) -> Any:
    """A backend by name: 'local' (process pool; workers=0 runs in this process) or 'ray'.

    workers defaults to the CPU count // threads, and is capped at `tasks` (the trials to run).
    """
    choice("search backend", name, SEARCH_BACKENDS)
    integer("threads", threads, 1)
    if name == "ray":
        positive("cpus_per_trial", cpus_per_trial)
        number("gpus_per_trial", gpus_per_trial, 0)
        return RayBackend(config, train_fn, cpus_per_trial, gpus_per_trial, address)
    if address is not None:
        raise InvalidArgumentError("address joins a Ray cluster; it needs backend='ray'")
    workers = integer("workers (0: in this process)", max(1, usable_cores() // threads) if workers is None else
                      workers, 0)
    workers = min(workers, tasks) if tasks else workers
    return SerialBackend(config, train_fn, threads) if workers == 0 else LocalBackend(config, train_fn, threads,
                                                                                      workers)
