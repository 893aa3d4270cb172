"""`make repro` (`python -m tools.run`): rerun the stale stages of the pipeline side by side, on
every core of this machine or on a Ray cluster, and record each in dvc.lock as it finishes.

    python -m tools.run [TARGET ...] [--jobs N] [--isolate] [--rerun]

TARGETs are what `dvc repro` takes (default: the root dvc.yaml; a study:
`studies/<name>/dvc.yaml`). The plan comes from DVC itself (`tools.pipeline`). The machine checks
(`always_changed` stages: `env_check`) run first, here, as plain processes. Then a stage runs
when DVC reports it changed or anything upstream of it runs, each as a Ray task holding
`numerics.torch_threads` CPUs, as many at once as the CPUs allow, the longest first
(`Durations`); when nothing is stale Ray is never imported. With RAY_ADDRESS set, stages run on
any node of that cluster: a node other than this one gets the committed code and the stage's
inputs through Ray's object store and runs in a folder of its own (`tools.remote`), after its
own run of the machine checks matched this one's. A stage whose node dies is started once more
on a live node (`Scheduler`). Every finished stage is committed here, one at a time
(`dvc commit --force`), so a failure loses nothing that finished. Ray's own lines go to
`.dvc/tmp/rlrepro-ray.log` (`RAY_LOG`), not the terminal. Exit 0 when every stage ran, 1 when
one failed, 2 on a user error (DVC's own errors included, in one line), 130 on Ctrl-C, 143 on
SIGTERM, 3 on a bug (`console.run`). A killed runner leaves no Ray process behind
(`tools.watchdog`).

Before any stage runs, each stale one whose outputs DVC's default remote or run-cache holds gets
them from there, as in `dvc repro --pull` (`--rerun`: none does, for `make verify`); a finished
stage goes into DVC's cache and run-cache too, as in `dvc repro`.
"""

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, TypeVar

from rlrepro import console
from rlrepro.core import layout, params
from rlrepro.core.errors import ParamsError, StoppedError, UserError
from rlrepro.core.files import WRITE_ERRORS, write_bytes
from tools import cluster, remote
from tools.cluster import Node
from tools.pipeline import InputsChangedError, Pipeline, Step, files, no_remote, ready, to_run

T = TypeVar("T")

ISOLATE_VAR = "RLREPRO_RUN_ISOLATED"  # =1: every stage in a folder of its own, even here
RAY_LOG = Path(".dvc", "tmp", "rlrepro-ray.log")  # Ray's own lines, in DVC's untracked scratch


class RunError(UserError):
    """A run that cannot start: bad arguments, no git commit to send, no node to run on."""


def log(message: str) -> None:
    """One progress line on stdout, at once."""
    print(message, flush=True)


def failure(step: Step, where: str, result: remote.Result | Exception) -> str:
    """The lines that report a failed stage: its name, where, why, and its stderr's tail (or,
    when Ray's task died, Ray's message and where Ray's log is)."""
    if isinstance(result, Exception):
        why = f"its task died: {type(result).__name__} (Ray's log: {RAY_LOG})"
        tail = str(result).strip()
    else:
        why = f"{exit_reason(result.returncode)} after {result.seconds:.1f} s"
        tail = result.stderr_tail
    lines = [f"FAILED  {step.name}  on {where}: {why}"]
    lines += [f"    {line}" for line in tail.splitlines()[-remote.TAIL_LINES :]]
    return "\n".join(lines)


def exit_reason(code: int) -> str:
    """How a stage's command ended, from its exit `code`: a negative code is the signal that
    killed it; so is 128 + N from a shell (such as dash) that waited on its killed child."""
    signals = {int(s) for s in signal.Signals}
    if code < 0:
        return f"killed by signal {-code}"
    if code - 128 in signals:
        return f"killed by signal {code - 128} (the shell's exit {code})"
    return f"exit {code}"


class Recorder:
    """Commits finished stages to dvc.lock, one at a time, so that the lock lists them in the
    order a serial `dvc repro` would: a stage already in the lock keeps its place and is
    committed at once; a new one waits for the new ones before it in DVC's plan order.

    :param order: the stages that may be recorded, in plan order.
    """

    def __init__(self, pipe: Pipeline, order: list[Step]) -> None:
        self.pipe, self.order = pipe, order
        self.finished: set[str] = set()
        self.recorded: list[str] = []
        self.relocked: set[str] = set()  # the recorded stages whose lock entries changed
        self.unrecorded: list[str] = []  # why a finished stage was not recorded

    def finish(self, step: Step) -> None:
        """Mark `step` finished and commit whatever may be committed now."""
        self.finished.add(step.name)
        blocked = False
        for each in self.order:
            waiting = each.name not in self.recorded
            if each.name in self.finished and waiting and (each.locked or not blocked):
                self._commit(each)
            elif waiting and not each.locked:
                blocked = True

    def flush(self) -> None:
        """Commit every finished stage not yet committed (the run ends; some never will)."""
        for each in self.order:
            if each.name in self.finished and each.name not in self.recorded:
                self._commit(each)

    def _commit(self, step: Step) -> None:
        try:
            if self.pipe.commit(step.name):
                self.relocked.add(step.name)
        except InputsChangedError as err:
            self.unrecorded.append(f"NOT RECORDED {err}")
            log(self.unrecorded[-1])
        self.recorded.append(step.name)


class Durations:
    """Each stage's seconds in the last run that finished it, kept in `path` (DVC's own scratch
    folder, never tracked), so that the longest stages start first: on two CPUs, a long
    training started last leaves one CPU idle at the end.

    :param path: the JSON file (missing or unreadable: nothing measured yet).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.seconds: dict[str, float] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.seconds = {}

    @staticmethod
    def file(root: Path) -> Path:
        """Where the repository at `root` keeps them."""
        return root / ".dvc" / "tmp" / "rlrepro-seconds.json"

    def expected(self, step: Step, work: Callable[[Step], float]) -> float:
        """Its measured seconds; else `work(step)` (`Pipeline.work`) at a nominal 1,000 env
        steps/s."""
        if step.name in self.seconds:
            return self.seconds[step.name]
        return work(step) / 1000.0

    def record(self, step: Step, seconds: float) -> None:
        """Keep `seconds` for `step` (a temporary file, then a rename)."""
        self.seconds[step.name] = round(seconds, 1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.seconds, indent=1, sort_keys=True))
        temporary.replace(self.path)


def run_checks(
    pipe: Pipeline,
    checks: list[Step],
    jobs: int,
    recorder: Recorder,
    durations: Durations,
    meanwhile: Callable[[], T],
) -> tuple[list[str], T]:
    """Run the machine checks here, `jobs` at a time, as plain processes in the workspace, and
    `meanwhile()` in this thread; record each check that passes as it ends.

    :return: the failure reports (empty: every check passed) and what `meanwhile` returned.
    """
    host = f"{os.uname().nodename} (here)"
    failures = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running = {}
        for step in checks:
            pipe.prepare(step.name)
            job = remote.Job(step.name, step.cmd, step.wdir, step.outs, str(pipe.root))
            running[pool.submit(_check_here, job, host)] = step
        alongside = meanwhile()
        for future in as_completed(running):
            step, result = running[future], future.result()
            if result.returncode == 0:
                log(f"done    {step.name}  on {host}  {result.seconds:.1f} s")
                recorder.finish(step)
                durations.record(step, result.seconds)
            else:
                failures.append(failure(step, host, result))
    return failures, alongside


def _check_here(job: remote.Job, host: str) -> remote.Result:
    log(f"start   {job.name}  on {host}")
    return remote.execute(job)


class Scheduler:
    """Runs `steps` (in plan order, all of them stale) as Ray tasks on `nodes`, each when its
    upstream is done, as many at once as the nodes' free CPUs allow; machine-checks every node
    but this one before its first stage; records each finished stage.

    A stage whose node dies (`cluster.node_died`) is started once more, on a live node, and
    that node is given nothing more; a second death, or a stage that fails by itself (an exit
    code, a signal), fails the run. The retried stage starts from its inputs as they are in
    the workspace, in a folder of its own on a node other than this one (or in the workspace
    here). A training's snapshots (`snapshots/`, `rlrepro.training.snapshot`) stay in the
    folder it ran in, on the dead node, so it starts from its first step, except in the
    workspace, where it resumes from a snapshot of its own key if an earlier run left one
    there. Either way it ends with the same bytes.

    :param checks: the machine checks a node must pass (already run and passed here).
    :param jobs: at most this many CPUs in use at once (default: every node's).
    :param isolate: run every stage in a folder of its own, this node's too.
    :param durations: the stages' last seconds (the longest start first), updated as they end.
    """

    def __init__(
        self,
        pipe: Pipeline,
        recorder: Recorder,
        durations: Durations,
        steps: list[Step],
        checks: list[Step],
        nodes: list[Node],
        jobs: int | None,
        isolate: bool,
    ) -> None:
        self.pipe, self.checks, self.isolate = pipe, checks, isolate
        self.pending = list(steps)
        self.recorder = recorder
        self.names = {step.name for step in steps}
        self.nodes = {node.node_id: node for node in nodes}
        self.free = {node.node_id: node.cpus for node in nodes}
        self.budget = jobs or sum(node.cpus for node in nodes)
        self.state = {n.node_id: "ok" if n.local or not checks else "new" for n in nodes}
        self.running: dict[Any, tuple[Step, Node]] = {}  # by Ray ref
        self.checking: dict[Any, tuple[Step, Node]] = {}
        self.done: set[str] = set()
        self.retried: set[str] = set()  # started once more after their node died
        self.to_record: list[Step] = []  # finished, to commit once the next ones started
        self.failures: list[str] = []
        self._archive: Any = None
        self.durations = durations
        self._require_fit(steps)

    def _require_fit(self, steps: list[Step]) -> None:
        widest = max(min(node.cpus, self.budget) for node in self.nodes.values())
        for step in steps:
            if step.threads > widest:
                raise RunError(
                    f"{step.name} needs {step.threads} CPUs (numerics.torch_threads) but at "
                    f"most {widest} are available on one node; lower it or add a bigger node"
                )

    def run(self) -> int:
        """Run every stage; :return: 0 when all finished, 1 when one failed or was not recorded
        (its inputs changed while it ran)."""
        self._loop()
        self.recorder.flush()
        left = len(self.pending)
        if self.recorder.unrecorded:
            log(
                f"{len(self.recorder.unrecorded)} not recorded (inputs changed while they ran), "
                f"{len(self.failures)} failed, {left} not run"
            )
            return 1
        if self.failures:
            log(
                f"{len(self.failures)} failed, {len(self.done)} finished and recorded, "
                f"{left} not run"
            )
            return 1
        log(f"{len(self.done)} stages finished and recorded")
        return 0

    def _loop(self) -> None:
        while True:
            if not self.failures:
                self._launch()
            # Committed after the next stages started: hashing outputs leaves no CPU idle.
            for step in self.to_record:
                self.recorder.finish(step)
            self.to_record.clear()
            refs = [*self.running, *self.checking]
            if not refs:
                if self.pending and not self.failures:
                    raise RunError(
                        "no node is left to run on: every node failed its check or died; "
                        f"Ray's log: {RAY_LOG}"
                    )
                return
            ref, result = cluster.wait_one(refs)
            if ref in self.checking:
                self._checked(ref, result)
            else:
                self._finished(ref, result)

    def _ready(self) -> list[Step]:
        """The pending stages whose upstream is done, the longest first (`Durations.expected`)."""
        return ready(
            self.pending,
            self.done,
            self.names,
            lambda step: self.durations.expected(step, self.pipe.work),
        )

    def _launch(self) -> None:
        """Start what is ready on nodes with free CPUs (checking new nodes first)."""
        ready = self._ready()
        for new in self.nodes.values():
            if ready and self.state[new.node_id] == "new":
                self._start_checks(new)
        for step in ready:
            in_use = sum(each.threads for each, _ in self.running.values())
            node = self._node_for(step)
            if in_use + step.threads <= self.budget and node is not None:
                self._start(step, node)

    def _node_for(self, step: Step) -> Node | None:
        """The first checked node with `step.threads` free CPUs (this one first)."""
        for node_id, node in self.nodes.items():
            if self.state[node_id] == "ok" and self.free[node_id] >= step.threads:
                return node
        return None

    def _folder(self, node: Node) -> bool:
        return self.isolate or not node.local

    def _job(self, step: Step, node: Node) -> tuple[remote.Job, Any, Any]:
        """The job of `step` on `node`, with its archive and input files (None, in place)."""
        if not self._folder(node):
            here = str(self.pipe.root)
            return remote.Job(step.name, step.cmd, step.wdir, step.outs, here), None, None
        shipped = (*step.inputs, *([] if step.check else step.outs))
        root = self.pipe.root
        names = files(root, [p for p in shipped if not p.startswith("../")], self.pipe.ignored)
        data = {name: (root / name).read_bytes() for name in names}
        return remote.Job(step.name, step.cmd, step.wdir, step.outs, None), self._code(), data

    def _code(self) -> Any:
        """The committed code (`git archive HEAD`, every pipeline output left out), in the object
        store once."""
        if self._archive is None:
            excluded = [f":(exclude){out}" for out in self.pipe.pipeline_outs()]
            done = subprocess.run(
                ["git", "archive", "--format=tar", "HEAD", "--", ".", *excluded],
                cwd=self.pipe.root,
                capture_output=True,
                check=False,
            )
            if done.returncode != 0:
                why = (done.stderr.decode().strip().splitlines() or ["failed"])[-1]
                raise RunError(f"git archive HEAD: {why} (other nodes get the committed code)")
            self._archive = cluster.put(done.stdout)
        return self._archive

    def _start(self, step: Step, node: Node) -> None:
        self.pending.remove(step)
        if step.name not in self.retried:  # a retry keeps the hashes its first start took
            self.pipe.prepare(step.name)
        job, archive, data = self._job(step, node)
        ref = cluster.submit(node, step.threads, job, archive, data)
        self.running[ref] = (step, node)
        self.free[node.node_id] -= step.threads
        log(f"start   {step.name}  on {self._where(node)}")

    def _where(self, node: Node) -> str:
        return f"{node.label} ({'own folder' if self._folder(node) else 'workspace'})"

    def _finished(self, ref: Any, result: remote.Result | Exception) -> None:
        step, node = self.running.pop(ref)
        self.free[node.node_id] += step.threads
        if isinstance(result, Exception) and self._retry(step, node, result):
            return
        if isinstance(result, remote.Result) and result.returncode == 0:
            damaged = self._receive(step, result)
            if damaged is None:
                log(f"done    {step.name}  on {self._where(node)}  {result.seconds:.1f} s")
                self.durations.record(step, result.seconds)
                self.done.add(step.name)
                self.to_record.append(step)
                return
            result = RuntimeError(damaged)
        self.failures.append(failure(step, self._where(node), result))
        log(self.failures[-1])

    def _retry(self, step: Step, node: Node, error: Exception) -> bool:
        """Put `step` back to run once more when `error` says its node died, the first time;
        exclude that node. :return: whether it was put back."""
        if not cluster.node_died(error) or step.name in self.retried:
            return False
        self.state[node.node_id] = "dead"
        self.retried.add(step.name)
        self.pending.insert(0, step)
        log(
            f"retry   {step.name}  its node {node.label} died ({type(error).__name__}); once "
            f"more on a live node (Ray's log: {RAY_LOG})"
        )
        return True

    def _receive(self, step: Step, result: remote.Result) -> str | None:
        """Write a folder-mode stage's outputs into the workspace, each checked against the hash
        the node computed. :return: why they cannot be taken, or None when written."""
        for path, (data, digest) in result.outs.items():
            if remote.sha256(data) != digest or not _inside(path, step.outs):
                return f"output {path} arrived damaged or outside the stage's outputs"
        if not result.outs:
            return None
        for out in step.outs:
            folder = self.pipe.root / out
            if folder.is_dir():
                for old in files(self.pipe.root, [out]):
                    if old not in result.outs:
                        (self.pipe.root / old).unlink()
        for path, (data, _) in sorted(result.outs.items()):
            write_bytes(self.pipe.root / path, data)
        return None

    def _start_checks(self, node: Node) -> None:
        """Run the machine checks on `node` in folders of their own; it gets no stage until
        their reports match this machine's."""
        self.state[node.node_id] = "checking"
        for step in self.checks:
            job, archive, data = self._job(step, node)
            ref = cluster.submit(node, min(step.threads, node.cpus), job, archive, data)
            self.checking[ref] = (step, node)

    def _checked(self, ref: Any, result: remote.Result | Exception) -> None:
        step, node = self.checking.pop(ref)
        if self.state[node.node_id] in ("excluded", "dead"):
            return
        why = self._check_differs(step, result)
        if why is not None:
            self.state[node.node_id] = "excluded"
            log(f"node {node.label} excluded: {why}")
        elif not any(n is node for _, n in self.checking.values()):
            self.state[node.node_id] = "ok"
            log(f"node {node.label} passed the machine checks")

    def _check_differs(self, step: Step, result: remote.Result | Exception) -> str | None:
        if isinstance(result, Exception):
            return f"{step.name} could not run there ({type(result).__name__})"
        if result.returncode != 0:
            last = (result.stderr_tail.splitlines() or [f"exit {result.returncode}"])[-1]
            return f"{step.name} failed there: {last}"
        for name in files(self.pipe.root, step.outs):
            theirs = result.outs.get(name)
            if theirs is None or theirs[0] != (self.pipe.root / name).read_bytes():
                return f"its {step.name} report {name} differs from this machine's"
        return None


def _inside(path: str, outs: Iterable[str]) -> bool:
    return any(path == out or path.startswith(f"{out}/") for out in outs)


def check_params(targets: list[str], experiments: bool = False) -> None:
    """Check each target pipeline's params.yaml: what DVC itself reads to expand the stages
    (`seeds`, the experiments' names; DVC's own error for `seeds: abc` names no key; a name
    that is not `layout.check_name`'s would reach the stages' shell commands), and with
    `experiments` every experiment as its train stage will (`training.check`: algorithm, action
    space, hyperparameters; it imports SB3, so only when a stage is to run), so that a mistake
    in the last experiment stops the run before the first one trains.

    :raises ParamsError: naming the file and the key.
    """
    pipelines = [Path(t) for t in targets if t.endswith("dvc.yaml")] or [Path("dvc.yaml")]
    for pipeline in pipelines:
        file = pipeline.parent / "params.yaml"
        raw = params.read(file)
        try:
            params.seeds(raw)
            names = params.section_names(raw, "experiments")
            for name in names:  # before DVC puts it in a stage's shell command
                layout.check_name(name)
            if experiments:
                from rlrepro import training

                for name in names:
                    training.check(params.experiment(raw, name), name)
        except ParamsError as err:
            raise ParamsError(f"{file}: {err}") from None


_signals: list[int] = []  # the stop signals received, in order


@contextlib.contextmanager
def _terminate_interrupts() -> Iterator[None]:
    """Inside (in the main thread), SIGTERM stops the run as Ctrl-C does: `KeyboardInterrupt`,
    the one exception Ray's waits let through (`ray.wait` polls signals and turns any other
    exception a handler raises into nothing); the signals are noted in `_signals`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    _signals.clear()

    def interrupt(signum: int, _frame: object) -> None:
        _signals.append(signum)
        raise KeyboardInterrupt

    before = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def dvc_message(err: BaseException) -> str:
    """DVC's error `err` in one line, as plain `dvc` prints it: its message and those of its
    causes joined by ": " (DVC's multi-line messages on one line)."""
    parts: list[str] = []
    cause: BaseException | None = err
    while cause is not None and len(parts) < 5:
        text = console.one_line(str(cause), limit=None)
        if text and text not in parts:
            parts.append(text)
        cause = cause.__cause__
    return console.one_line(": ".join(parts) or type(err).__name__, limit=400)


def run(targets: list[str], jobs: int | None, isolate: bool, rerun: bool = False) -> int:
    """Check this machine, then run the stale stages of `targets` (with `rerun`, each of them:
    nothing taken from DVC's remote or run-cache). :return: the exit code.

    :raises RunError: DVC's own errors (a bad target, dvc.yaml or dvc.lock, a read-only
        repository...), in one line as plain `dvc` prints them.
    """
    from dvc.exceptions import DvcException

    try:
        with _terminate_interrupts():
            return _run_checked(targets, jobs, isolate, rerun)
    except KeyboardInterrupt:  # before the pipeline was loaded: nothing ran
        signum = _signals[0] if _signals else signal.SIGINT
        raise StoppedError(f"stopped by {signal.Signals(signum).name}", signum) from None
    except DvcException as err:
        raise RunError(f"dvc: {dvc_message(err)}") from err
    except OSError as err:  # DVC's lock or cache, our scratch files: where plain `dvc` says
        if err.errno not in WRITE_ERRORS:  # "unexpected error - [Errno 30] ..."
            raise
        raise RunError(
            f"{err.filename or 'the repository'}: cannot write it ({err.strerror}); `make "
            "repro` writes DVC's lock, cache and outputs: free space or fix the permissions"
        ) from err


def _run_checked(targets: list[str], jobs: int | None, isolate: bool, rerun: bool) -> int:
    cluster.parsed_address()  # a RAY_ADDRESS that is no address: said before anything runs
    check_params(targets)
    with Pipeline(targets) as pipe:
        recorder = Recorder(pipe, pipe.steps)
        try:
            return _run(pipe, recorder, jobs, isolate, targets, rerun)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (`_terminate_interrupts`)
            recorder.flush()
            signum = _signals[0] if _signals else signal.SIGINT
            raise StoppedError(
                f"stopped by {signal.Signals(signum).name}: {len(recorder.recorded)} finished "
                "stages are recorded in dvc.lock, the running ones were stopped; rerun `make "
                "repro` to run the rest",
                signum,
            ) from None
        finally:
            recorder.flush()


def _run(
    pipe: Pipeline,
    recorder: Recorder,
    jobs: int | None,
    isolate: bool,
    targets: list[str],
    rerun: bool = False,
) -> int:
    checks = [step for step in pipe.steps if step.check]
    durations = Durations(Durations.file(pipe.root))
    stale: list[Step] = []
    missing = [] if rerun or pipe.remote() else pipe.missing()
    if missing:
        log(f"{no_remote(missing)}: regenerating")

    def meanwhile() -> list[Node] | None:
        # While the checks run: what is stale already, and Ray (seconds to start) if anything is,
        # unless a remote may give it all back (after the checks: its stages read their outputs).
        stale.extend(to_run(pipe.steps, pipe.changed()))
        ray_log = pipe.root / RAY_LOG
        return cluster.start(jobs, ray_log) if stale and (rerun or not pipe.remote()) else None

    nodes: list[Node] | None = None
    try:
        failures, nodes = run_checks(
            pipe, checks, jobs or len(os.sched_getaffinity(0)), recorder, durations, meanwhile
        )
        if failures:
            log("\n".join(failures))
            return 1
        if recorder.relocked:  # a check's outputs changed, and so may what reads them
            stale = to_run(pipe.steps, pipe.changed())
        if stale and not rerun:
            stale = _bring_back(pipe, recorder, stale)
        if not stale:
            log("Everything is up to date.")
            return 0
        check_params(targets, experiments=True)  # before any stage trains
        nodes = nodes or cluster.start(jobs, pipe.root / RAY_LOG)
        return Scheduler(pipe, recorder, durations, stale, checks, nodes, jobs, isolate).run()
    finally:
        if nodes is not None or "ray" in sys.modules:
            cluster.stop()


def _bring_back(pipe: Pipeline, recorder: Recorder, stale: list[Step]) -> list[Step]:
    """Take what DVC's remote and run-cache hold of the `stale` steps (`Pipeline.bring_back`)
    and record it; :return: the steps left to run."""
    back = pipe.bring_back(stale)
    for step, source in back:
        log(f"cached  {step.name}  from DVC's {source}")
        recorder.finish(step)
    return to_run(stale, {step.name for step in stale} - {step.name for step, _ in back})


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run; :return: the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="dvc.yaml files or stages (default: dvc.yaml)")
    parser.add_argument("--jobs", type=int, help="at most this many CPUs at once (default: all)")
    parser.add_argument(
        "--isolate",
        action="store_true",
        default=os.environ.get(ISOLATE_VAR) == "1",
        help=f"run every stage in a folder of its own, as on another node ({ISOLATE_VAR}=1)",
    )
    parser.add_argument(
        "--rerun",
        action="store_true",
        help="run every stale stage: take nothing from DVC's remote or run-cache (make verify)",
    )
    args = parser.parse_args(argv)
    code = [0]

    def work() -> None:
        if args.jobs is not None and args.jobs < 1:
            raise RunError(f"--jobs: expected a number >= 1, got {args.jobs}")
        code[0] = run(args.targets, args.jobs, args.isolate, args.rerun)

    return console.run(work) or code[0]


if __name__ == "__main__":
    sys.exit(console.run(main))
