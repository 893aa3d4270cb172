"""Ray, for `tools.run`: a local instance or the cluster at RAY_ADDRESS, its nodes, and stage
tasks pinned to a node. Ray is imported here, lazily: only when a stage is to run.

What Ray itself prints in the driver goes to a log file, not the terminal (`start`): what its
C++ core and Python loggers write while it starts or joins, its Python loggers afterwards, and
the cluster events its driver prints on stdout whatever `log_to_driver` says (a node's death
arrives as the last 20 lines of that raylet's log, `[state-dump]` lines).
"""

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from rlrepro.core.errors import UserError
from tools import remote, watchdog

ADDRESS_VAR = "RAY_ADDRESS"  # set: join that cluster; unset: start a local instance
OBJECT_STORE_BYTES = 512 * 1024**2  # a local instance's store: code, inputs and outputs pass
# Ray's token authentication (Ray >= 2.52): `disabled` or `token`, the same on every node and
# in the driver (the nodes call the driver back for the objects it owns).
AUTH_MODE_VAR = "RAY_AUTH_MODE"


class ClusterError(UserError):
    """Ray could not start or has no node able to run a stage."""


@dataclasses.dataclass(frozen=True)
class Node:
    """A Ray node.

    :param node_id: Ray's id.
    :param label: how the progress lines name it: host and the id's first 8 characters.
    :param cpus: its CPUs.
    :param local: whether it is the driver's own node (it shares the workspace).
    """

    node_id: str
    label: str
    cpus: int
    local: bool


def start(jobs: int | None, log: Path) -> list[Node]:
    """Join the cluster at RAY_ADDRESS, else start a local instance with `jobs` CPUs (default:
    this process's usable CPUs); quiet, no dashboard, Ray's own lines written to `log`, created
    anew (`stderr_to` while Ray starts, then `log_to`). A cluster with token authentication
    needs RAY_AUTH_MODE=token here too: Ray 2.60's `ray.init(address=...)` leaves it off even
    where `ray start --head` turned it on by itself (finding ~/.ray/auth_token). It is not
    guessed: a driver with it on is refused by the nodes of a cluster without it.

    :return: the alive nodes with CPUs.
    :raises ClusterError: the cluster cannot be joined, in one line naming why.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray starts its workers at nice 15, for a cluster's background jobs; here they are the
    # user's main work (a cluster's nodes set it with `ray start`).
    os.environ.setdefault("RAY_worker_niceness", "0")
    address = os.environ.get(ADDRESS_VAR)
    reachable()
    import ray

    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(
        f"Ray's own lines of this run ({ADDRESS_VAR}={address or ''}); each node keeps its full "
        "logs in <its --temp-dir, default /tmp/ray>/session_latest/logs\n"
    )
    quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        with stderr_to(log), _own_sigterm():
            if address:
                ray.init(address=address, **quiet)
            else:
                cpus = jobs or len(os.sched_getaffinity(0))
                watchdog.start()  # Ray's agents outlive a killed driver: it ends them
                ray.init(
                    address="local",
                    num_cpus=cpus,
                    include_dashboard=False,
                    object_store_memory=OBJECT_STORE_BYTES,
                    **quiet,
                )
    except ConnectionError as err:
        # Ray 2.60 raises ConnectionError from a RuntimeError whose text holds the last error.
        if "InvalidAuthToken" in str(err.__cause__):
            raise ClusterError(
                f"{ADDRESS_VAR}={address}: that Ray cluster wants its token: set "
                f"{AUTH_MODE_VAR}=token and copy the head's ~/.ray/auth_token here (or name it "
                f"in RAY_AUTH_TOKEN_PATH); Ray's log: {log}"
            ) from err
        raise ClusterError(
            f"{ADDRESS_VAR}={address}: cannot join that Ray cluster ({err}); Ray's log: {log}"
        ) from err
    log_to(log)
    ray.cloudpickle.register_pickle_by_value(remote)
    return nodes()


CONNECT_SECONDS = 10.0  # how long a cluster's address may take to answer before Ray joins it


def parsed_address() -> tuple[str, int] | None:
    """The host and port of RAY_ADDRESS, checked to be HOST:PORT (None: unset, or a form left
    to Ray: `auto`, `local`, `ray://...`). Cheap: `tools.run` asks it before anything runs.

    :raises ClusterError: in one line naming the value and what is accepted.
    """
    value = os.environ.get(ADDRESS_VAR)
    if not value or value in ("auto", "local") or "://" in value:
        return None
    host, _, port = value.rpartition(":")
    spaced = any(c.isspace() for c in host)
    if not host or spaced or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(
            f"{ADDRESS_VAR}={value!r}: expected HOST:PORT of a Ray cluster's head (e.g. "
            "10.0.0.5:6379), `auto`, or nothing for a local instance"
        )
    return host.strip("[]"), int(port)


def reachable() -> None:
    """Check that RAY_ADDRESS (`parsed_address`), when set, answers a TCP connection within
    `CONNECT_SECONDS`: `ray.init` retries an unreachable one for minutes without a word.

    :raises ClusterError: in one line naming the address and why.
    """
    where = parsed_address()
    if where is None:
        return
    try:
        socket.create_connection(where, timeout=CONNECT_SECONDS).close()
    except OSError as err:
        why = err.strerror or str(err) or type(err).__name__
        raise ClusterError(
            f"{ADDRESS_VAR}={os.environ[ADDRESS_VAR]}: cannot reach that Ray cluster's head "
            f"({why}, within {CONNECT_SECONDS:g} s); start it (ray start --head), fix the "
            f"address, or unset {ADDRESS_VAR} to run here"
        ) from None


@contextlib.contextmanager
def _own_sigterm() -> Iterator[None]:
    """Inside, `ray.init` leaves this process's SIGTERM handler as it is, and on the way out it
    is put back in at the C level too. Ray 2.60 puts in two of its own: a Python one
    (`sys.exit(15)`: no line, exit 15) through `ray._private.utils.set_sigterm_handler`, which
    is a no-op meanwhile, and its core worker's C++ failure handler (a multi-line
    `*** SIGTERM received ***` dump, then an abort), which `signal.signal` replaces. The runner's
    handler then stops a join that waits, and a run, with its one line."""
    from ray._private import utils

    handler = signal.getsignal(signal.SIGTERM)
    setter = utils.set_sigterm_handler
    utils.set_sigterm_handler = lambda _handler: None
    try:
        yield
    finally:
        utils.set_sigterm_handler = setter
        if threading.current_thread() is threading.main_thread() and handler is not None:
            signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """Append what this process writes to its stderr (file descriptor 2: Python and C++ alike)
    to `path` meanwhile: Ray's C++ client warns there once a second while a cluster refuses
    it, before Ray knows its log folder."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with path.open("a", encoding="utf-8") as sink:
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def log_to(path: Path) -> None:
    """Append what Ray prints in this process from now on to `path`: its Python loggers'
    records, and the cluster events its driver prints on stdout (Ray 2.60:
    `ray._private.worker.listen_error_messages` prints them through `print_to_stdstream`
    even with `log_to_driver=False`, with the raylet's last log lines when a node dies)."""
    from ray._private import worker

    sink: TextIO = path.open("a", encoding="utf-8", buffering=1)
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ray_logger = logging.getLogger("ray")
    ray_logger.handlers = [handler]
    ray_logger.propagate = False
    os.environ["RAY_COLOR_PREFIX"] = "0"  # read as each line is printed: no colour codes

    def to_file(data: dict[str, Any], ignore_prefix: bool) -> None:
        worker.print_worker_logs(data, sink, ignore_prefix)

    worker.print_to_stdstream = to_file


def nodes() -> list[Node]:
    """The alive nodes that have CPUs, the driver's own first."""
    import ray

    here = ray.get_runtime_context().get_node_id()
    found = [
        Node(
            info["NodeID"],
            f"{info['NodeManagerHostname']}:{info['NodeID'][:8]}",
            int(info["Resources"].get("CPU", 0)),
            info["NodeID"] == here,
        )
        for info in ray.nodes()
        if info["Alive"] and info["Resources"].get("CPU", 0) >= 1
    ]
    return sorted(found, key=lambda node: (not node.local, node.label))


def put(data: Any) -> Any:
    """`data` in Ray's object store, once for every task that needs it: :return: its ref."""
    import ray

    return ray.put(data)


def submit(node: Node, cpus: int, job: remote.Job, archive: Any, files: Any) -> Any:
    """Start `remote.execute(job, archive, files)` on `node` (only there), holding `cpus` CPUs.
    :return: the task's ref."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task: Any = ray.remote(remote.execute).options(
        num_cpus=cpus,
        max_retries=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False),
    )
    return task.remote(job, archive, files)


def node_died(error: Exception) -> bool:
    """Whether `error` (from `wait_one`) says the task's node died or is gone: Ray's
    `NodeDiedError`, or `TaskUnschedulableError` for a task pinned to a node no longer there.
    A task whose own process died (`WorkerCrashedError`) does not count."""
    import ray

    gone = (ray.exceptions.NodeDiedError, ray.exceptions.TaskUnschedulableError)
    return isinstance(error, gone)


def wait_one(refs: list[Any]) -> tuple[Any, remote.Result | Exception]:
    """Wait for the first of `refs` to finish. :return: its ref and its `remote.Result`, or the
    error Ray raised (the task's process or node died)."""
    import ray

    (ref,), _ = ray.wait(refs, num_returns=1)
    try:
        return ref, ray.get(ref)
    except ray.exceptions.RayError as err:
        return ref, err


def stop() -> None:
    """Disconnect from Ray (and stop the local instance, if this process started it)."""
    import ray

    ray.shutdown()
