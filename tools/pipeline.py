"""The pipeline as DVC plans it, for `tools.run`: its stages in DVC's own order, which are stale,
what each reads and writes, and recording a finished stage in its dvc.lock.

Everything comes from DVC's Python API (`dvc.repo.Repo`): the stages of the targets and their
upstream (`collect_stages`, `plan_repro`, the graph `dvc repro` walks), each stage's resolved
`cmd`, `wdir`, deps, params and outs, whether it changed (`Stage.changed`), and the commit
(the steps of `dvc commit --force`: `Stage.save`, `Stage.commit`, the lock's `dump_stages`). No
second reading of `dvc.yaml`.
"""

import copy
import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

from rlrepro.core import params
from rlrepro.core.errors import UserError
from tools import dvcremote, integrity


@dataclasses.dataclass(frozen=True)
class Step:
    """One stage as the runner sees it. Paths are relative to the repository's root, in POSIX
    form.

    :param name: DVC's address, e.g. `train@cartpole-ppo-0` or
        `studies/network/dvc.yaml:train@...`.
    :param cmd: the command, `${...}` resolved by DVC.
    :param wdir: the folder the command runs in.
    :param check: a machine check (`always_changed`): run by the driver, before anything else.
    :param upstream: the names of the stages in the plan whose outputs it reads.
    :param inputs: its deps and params files (a dep may be a folder).
    :param outs: its outputs (a file or a folder each).
    :param threads: the CPUs it uses: `numerics.torch_threads` of its params file, else 1.
    :param locked: whether its dvc.lock already has an entry for it.
    """

    name: str
    cmd: str
    wdir: str
    check: bool
    upstream: tuple[str, ...]
    inputs: tuple[str, ...]
    outs: tuple[str, ...]
    threads: int
    locked: bool


def no_remote(missing: list[str]) -> str:
    """The one line that says which outputs a workspace without a DVC remote lacks (`missing`,
    not empty) and the two ways to get them."""
    return (
        f"no DVC remote: {len(missing)} outputs are missing ({missing[0]}, ...); add the remote "
        "that holds them (dvc remote add -d NAME URL, then make pull), or regenerate them with "
        "make repro: the same bytes"
    )


def to_run(steps: list[Step], changed: set[str]) -> list[Step]:
    """The steps to run, in plan order: those DVC reports changed and those with anything
    upstream to run. Machine checks are never counted: the driver runs them first anyway.

    :param steps: in DVC's plan order (upstream first).
    :param changed: the names of the changed steps.
    """
    chosen: set[str] = set()
    for step in steps:
        if not step.check and (step.name in changed or chosen.intersection(step.upstream)):
            chosen.add(step.name)
    return [step for step in steps if step.name in chosen]


def ready(
    pending: list[Step], done: set[str], names: set[str], expected: Callable[[Step], float]
) -> list[Step]:
    """The steps of `pending` whose upstream steps among `names` are all `done`, the longest
    `expected` first (ties in plan order): what the runner starts next, and what
    `tools.estimate` replays."""
    waiting = [s for s in pending if all(u in done for u in s.upstream if u in names)]
    return sorted(waiting, key=lambda step: -expected(step))


def files(root: Path, paths: Iterable[str], ignored: Any = None) -> Iterator[str]:
    """The files at or under each of `paths` (relative to `root`), relative and sorted per path;
    `ignored(absolute path) -> bool` leaves out what DVC ignores (`__pycache__`)."""
    for path in paths:
        full = root / path
        if full.is_file():
            yield path
        elif full.is_dir():
            for file in sorted(p for p in full.rglob("*") if p.is_file()):
                if ignored is None or not ignored(str(file)):
                    yield file.relative_to(root).as_posix()


def remove_outputs(root: Path, dvcfile: Path) -> list[Path]:
    """Delete every output of the stages of `dvcfile` (as DVC lists them) in the repository at
    `root`, so that each of them is stale and reruns from nothing; dvc.lock is left as it is.

    :return: the outputs that were there.
    :raises UserError: when DVC gives an output outside `root`.
    """
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        stages = repo.stage.collect(str(dvcfile.resolve()))
        outs = [Path(out.fs_path) for stage in stages for out in stage.outs]
    outside = [out for out in outs if not out.is_relative_to(root.resolve())]
    if outside:
        raise UserError(f"{dvcfile}: DVC gave an output outside {root}: {outside[0]}")
    removed = [out for out in outs if out.exists()]
    for out in removed:
        if out.is_dir():
            shutil.rmtree(out)
        else:
            out.unlink()
    return removed


def missing(root: Path, outs: Iterable[Any]) -> list[str]:
    """Those of DVC's outputs `outs` in DVC's cache that their dvc.lock records but the
    workspace at `root` lacks, relative to `root`, sorted."""
    return sorted(
        Path(os.path.relpath(out.fs_path, root)).as_posix()
        for out in outs
        if out.use_cache and out.hash_info and not out.exists
    )


def _work(stage: Any) -> float:
    """The env steps of the budget of the experiment among the stage's params (0 for none), an
    episode counted as the env's time limit (`gymnasium.spec(env).max_episode_steps`)."""
    from dvc.dependency.param import ParamsDependency

    for dep in stage.deps:
        if not isinstance(dep, ParamsDependency) or not Path(dep.fs_path).is_file():
            continue
        for value in dep.read_params().values():
            if isinstance(value, dict) and isinstance(value.get("budget"), dict):
                budget = value["budget"]
                if "episodes" not in budget:
                    return float(budget.get("steps", 0))
                import gymnasium

                longest = gymnasium.spec(value["env"]).max_episode_steps or 1000
                return float(budget["episodes"]) * longest
    return 0.0


def _locked(stage: Any) -> bool:
    """Whether the stage has an entry in its dvc.lock, as loaded by DVC: a locked stage's outputs
    and file deps carry the lock's hashes (no second reading of the lock)."""
    from dvc.dependency.param import ParamsDependency

    files = [d for d in stage.deps if not isinstance(d, ParamsDependency)]
    return any(bool(item.hash_info) for item in [*stage.outs, *files])


def _threads(stage: Any) -> int:
    """`numerics.torch_threads` of the stage's params file (1 when it has none or no such key)."""
    from dvc.dependency.param import ParamsDependency

    for dep in stage.deps:
        if isinstance(dep, ParamsDependency) and Path(dep.fs_path).is_file():
            raw = params.read(Path(dep.fs_path))
            if "numerics" in raw:
                return params.section(raw, params.Numerics, "numerics").torch_threads
    return 1


def writable(repo: Any, workspace: bool = True) -> None:
    """Check that DVC's cache (its object and run folders), `.dvc/tmp` and, with `workspace`,
    the workspace of DVC's `repo` can be written, by writing a file in each: a finished stage
    or a pulled output is recorded only if they can.

    :raises UserError: one line naming the first folder that cannot be written.
    """
    root = Path(repo.root_dir)
    folders = [
        (Path(repo.cache.local.path), "DVC's cache: outputs are recorded there"),
        (Path(repo.cache.legacy.path) / "runs", "DVC's run-cache"),
        (Path(repo.tmp_dir), "DVC's scratch folder: its locks and the runner's logs"),
    ]
    if workspace:
        folders.append((root, "the workspace: the stages write their outputs there"))
    for folder, what in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(dir=folder, prefix=".rlrepro-writable-")
            os.close(handle)
            Path(name).unlink()
        except OSError as err:
            raise UserError(
                f"{Path(os.path.relpath(folder, root)).as_posix()}: cannot write in it "
                f"({err.strerror}); it is {what}, so nothing could be recorded: fix its "
                "permissions or mount (or move DVC's cache: dvc cache dir PATH), then rerun"
            ) from None


def _keep_in_cache(stage: Any) -> None:
    """Put the workspace's bytes of `stage`'s outputs kept in git (`cache: false`: metrics,
    plots) into DVC's cache too, as `Output.commit` does for cached ones: DVC's checkout replaces
    only a file its cache holds, so a restore from the run-cache may then replace them."""
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.transfer import transfer

    for out in stage.outs:
        if not out.use_cache and out.exists:
            staging, _, obj = build(
                out.cache, out.fs_path, out.fs, out.hash_name, ignore=out.dvcignore
            )
            transfer(staging, out.cache, {obj.hash_info}, shallow=False, hardlink=False)


class InputsChangedError(UserError):
    """A stage's deps or params changed between its start and its commit."""


def _dep_hashes(stage: Any) -> list[tuple[str, Any]]:
    """Each dep of `stage` (a file, a folder, a params file's values) with its hash as last
    saved, copied."""
    return [(str(dep), copy.deepcopy(dep.hash_info)) for dep in stage.deps]


class Pipeline:
    """The repository around the working folder, locked as `dvc repro` locks it, and the plan
    of `targets` (dvc.yaml files or stage names, as `dvc repro` takes them; default: the root
    dvc.yaml). Use it as a context manager: the lock is released on exit."""

    def __init__(self, targets: list[str]) -> None:
        from dvc.lock import LockError
        from dvc.repo import lock_repo
        from dvc.repo.reproduce import collect_stages, get_active_graph, plan_repro

        logging.getLogger("dvc").setLevel(logging.WARNING)  # not its "Updating lock file" lines
        self._exit = ExitStack()
        try:
            self.repo = self._exit.enter_context(dvcremote.open_repo())
            self._exit.enter_context(lock_repo(self.repo))
            self.root = Path(self.repo.root_dir)
            graph = get_active_graph(self.repo.index.graph)
            plan = plan_repro(graph, collect_stages(self.repo, targets or ["dvc.yaml"]))
        except LockError:
            self._exit.close()
            raise UserError(
                ".dvc/tmp/lock: another DVC command holds this repository (a `dvc repro` or "
                "`make repro` still running?); wait for it to end, or give every pipeline to "
                "one run: python -m tools.run dvc.yaml studies/<name>/dvc.yaml"
            ) from None
        except BaseException:  # DVC's error for a bad target or file: the lock released first
            self._exit.close()
            raise
        names = {stage.addressing for stage in plan}
        self._stages = {stage.addressing: stage for stage in plan}
        self._work: dict[str, float] = {}
        self._read: dict[str, list[tuple[str, Any]]] = {}  # deps' hashes when a stage started
        self._was: dict[str, Any] = {}  # its lock entry then, before `prepare` saved its deps
        self._prepared: set[str] = set()  # outputs removed to run, not yet committed
        self.steps = [self._step(stage, graph, names) for stage in plan]

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    def _relative(self, path: str) -> str:
        return Path(os.path.relpath(path, self.root)).as_posix()

    def _step(self, stage: Any, graph: Any, names: set[str]) -> Step:
        upstream = sorted(s.addressing for s in graph.successors(stage) if s.addressing in names)
        return Step(
            name=stage.addressing,
            cmd=stage.cmd,
            wdir=self._relative(stage.wdir),
            check=bool(stage.always_changed),
            upstream=tuple(upstream),
            inputs=tuple(self._relative(dep.fs_path) for dep in stage.deps),
            outs=tuple(self._relative(out.fs_path) for out in stage.outs),
            threads=_threads(stage),
            locked=_locked(stage),
        )

    def work(self, step: Step) -> float:
        """A rough size of `step`, to start the longest stages first when there is no measured
        time: the env steps of a training's budget (episodes count as the env's longest
        episode); 0 for other stages. Read only when a stage is to run: it imports gymnasium."""
        if step.name not in self._work:
            stage = self._stages[step.name]
            self._work[step.name] = 0.0 if stage.always_changed else _work(stage)
        return self._work[step.name]

    def changed(self) -> set[str]:
        """The names of the stages DVC reports changed now (as `dvc status` would)."""
        return {name for name, stage in self._stages.items() if stage.changed()}

    def prepare(self, name: str) -> None:
        """What `dvc repro` does before running a stage: remove its outputs, but persistent ones;
        and take the hashes of what it reads (its deps and params), to record those and no
        later ones (`commit`)."""
        stage = self._stages[name]
        stage.remove_outs(ignore_remove=False, force=False)
        self._prepared.add(name)
        self._was.setdefault(name, self._entry(stage))  # as locked, before its deps are saved
        stage.save_deps()
        self._read[name] = _dep_hashes(stage)

    def commit(self, name: str) -> bool:
        """Record stage `name`'s deps and outputs, as they are now, in its dvc.lock and its
        outputs in DVC's cache and run-cache: what `dvc repro` does once a stage ran (`Stage.run`:
        `Stage.save`, `Stage.commit`), on the stage already loaded.

        :return: whether its entry changed; an unchanged one is not rewritten (a machine check
            that passed again: its outputs' bytes are the same).
        :raises InputsChangedError: when a dep or param changed since the stage started (`prepare`):
            its outputs were made from the older inputs, so nothing is recorded.
        """
        from dvc.stage.serialize import to_lockfile

        stage = self._stages[name]
        self._prepared.discard(name)
        was = self._was.pop(name) if name in self._was else self._entry(stage)
        stage.save(run_cache=False)
        read, now = self._read.pop(name, None), _dep_hashes(stage)
        if read is not None and now != read:
            changed = [
                dep for (dep, then), (_, hashed) in zip(read, now, strict=True) if then != hashed
            ]
            raise InputsChangedError(
                f"{name}: {', '.join(changed)} changed while it ran, so its outputs are of the "
                "older inputs; not recorded in dvc.lock: rerun `make repro`"
            )
        # Into the run-cache as `dvc repro` saves a stage, and the results page's too (DVC skips
        # a stage with an uncached output that is no metric or plot; its restore takes it): a
        # clone given the run-cache (make push) restores every stage. DVC leaves out what it
        # cannot hash (always changed, `persist` outputs).
        self.repo.stage_cache.save(stage)
        stage.commit()
        if to_lockfile(stage) == was:
            return False
        stage.dvcfile.dump_stages([stage], update_pipeline=False)
        return True

    @staticmethod
    def _entry(stage: Any) -> Any:
        """The stage's dvc.lock entry as its loaded hashes give it (None when it has none)."""
        from dvc.stage.serialize import to_lockfile

        return to_lockfile(stage) if _locked(stage) else None

    def remote(self) -> str | None:
        """The name of DVC's default remote (`dvc remote add -d`), if one is configured."""
        return self.repo.config["core"].get("remote") or None

    def missing(self) -> list[str]:
        """The outputs of the plan in DVC's cache that dvc.lock records but the workspace lacks
        (a fresh clone's, before `dvc pull`), relative to the root."""
        outs = [out for stage in self._stages.values() for out in stage.outs]
        return missing(self.root, outs)

    def bring_back(self, steps: list[Step]) -> list[tuple[Step, str]]:
        """What `dvc repro --pull` does before it runs each of `steps` (stale, in plan order)
        whose upstream among them came back too: a stage changed only by missing outputs gets
        them from the default remote (`dvc pull`); another gets them from DVC's run-cache when
        a run of the same command, deps and params is there (the remote's run-cache and the
        run's outputs fetched first). Without a remote, only the local run-cache serves. What
        comes back is hashed against dvc.lock or the run-cache entry before it is taken
        (`restored`): bad bytes are set aside and the stage runs.

        :return: the steps whose outputs came back, each with where from ("remote" or
            "run-cache"); each still to be committed (`commit`).
        :raises UserError: in one line when the remote cannot be used (`tools.dvcremote`).
        """
        from dvc.exceptions import DvcException
        from dvc.stage.cache import RunCacheNotFoundError

        remote, names = self.remote(), {step.name for step in steps}
        if remote:
            holds = dvcremote.probe(self.repo, remote)  # bounded: before anything waits on it
            with (
                dvcremote.faults(self.repo, remote, "pull its run-cache"),
                suppress(
                    DvcException  # an HTTP remote has no run-cache: its outputs only
                ),
            ):
                self.repo.stage_cache.pull(None)
        back: list[tuple[Step, str]] = []
        absent: list[str] = []  # stages changed only by missing outputs, not on the remote
        for step in steps:
            if any(u in names and u not in {b.name for b, _ in back} for u in step.upstream):
                continue
            stage = self._stages[step.name]
            self._was[step.name] = self._entry(stage)  # as locked, before DVC saves its deps
            # (a run-cache look-up saves them: `commit` compares with this, as `prepare` keeps it)
            if remote and not stage.changed(allow_missing=True):
                asked = f"pull the outputs of {step.name}"
                with dvcremote.faults(self.repo, remote, asked):
                    try:
                        self.repo.pull(step.name)
                    except DvcException:  # not (all) on it, or it stopped answering
                        dvcremote.probe(self.repo, remote)
                if not stage.changed() and self.restored(stage.outs):
                    back.append((step, "remote"))
                    continue
                absent.append(step.name)
            try:
                with dvcremote.faults(self.repo, remote or "", f"restore {step.name}"):
                    _keep_in_cache(stage)
                    self.repo.stage_cache.restore(stage, pull=bool(remote))
            except RunCacheNotFoundError:
                continue
            if self.restored(self._run_cache_outs(stage)):
                back.append((step, "run-cache"))
        if remote and (absent or not holds):
            said = dvcremote.describe(self.repo, remote)
            left = [n for n in absent if n not in {b.name for b, _ in back}]
            if left or not holds:
                why = "holds nothing at its URL" if not holds else "did not give the outputs"
                print(
                    f"DVC remote {said} {why} of {len(left or steps)} stale stages "
                    f"({(left or [s.name for s in steps])[0]}, ...; not on it, or other bytes "
                    "than dvc.lock's): they run now; check its URL if they were pushed",
                    flush=True,
                )
        return back

    def _run_cache_outs(self, stage: Any) -> list[Any]:
        """The outputs, with their hashes, of the run-cache entry DVC restores for `stage`
        (`StageCache.restore`: the newest run of its command, deps and params); its own outputs
        when it has none (restored from its dvc.lock entry)."""
        cache = self.repo.stage_cache
        entry = cache._load(stage)
        return list(cache._create_stage(entry, wdir=stage.wdir).outs) if entry else stage.outs

    def restored(self, outs: list[Any]) -> bool:
        """Whether the outputs `outs` just restored hold, in the workspace and in DVC's cache,
        the bytes their hashes name; each file or object that does not is set aside, with one
        line (`tools.integrity`)."""
        report = integrity.check(self.root, outs)
        self._set_aside(report)
        return not report.mismatches and not report.absent_workspace

    def sweep(self) -> int:
        """Hash, before anything reads them, the workspace's files and DVC's cache objects of
        every output of the plan in DVC's cache (but the machine checks', rerun anyway) against
        dvc.lock, and set aside each bad object, and each file that differs while DVC's state
        database takes it for dvc.lock's, with one line: DVC then sees it missing and restores
        or reruns its stage (a file DVC sees changed is left to DVC: its stage reruns).
        :return: how many were set aside."""
        outs = [o for s in self._stages.values() if not s.always_changed for o in s.outs]
        report = integrity.check(self.root, outs, uncached=False)
        report.mismatches = [
            m for m in report.mismatches if m.where == "cache" or not self._seen(m, outs)
        ]
        self._set_aside(report)
        return len(report.mismatches)

    def _set_aside(self, report: integrity.Report) -> None:
        """Move each bad file or object of `report` aside, one line each."""
        for mismatch in report.mismatches:
            where = integrity.set_aside(self.root, mismatch)
            print(f"{mismatch.line()}: set aside to {self._relative(str(where))}", flush=True)

    def _seen(self, mismatch: integrity.Mismatch, outs: list[Any]) -> bool:
        """Whether DVC itself sees the workspace file of `mismatch` changed (its stage then
        reruns or is restored, as DVC would): not when its state database, which trusts a
        file's size and time, says the file has dvc.lock's hash (a checkout of a bad object)."""
        for out in outs:
            path = self._relative(out.fs_path)
            if mismatch.path == path or mismatch.path.startswith(f"{path}/"):
                return bool(out.changed_checksum())
        return False

    def writable(self) -> None:
        """`writable` of this repository (`make repro`: the workspace too)."""
        writable(self.repo)

    def put_back(self) -> list[str]:
        """Give back, from DVC's cache, the outputs dvc.lock records of every stage whose outputs
        were removed to run it (`prepare`) and that was not committed: one that failed or was
        stopped leaves the previous outputs in place, checked against dvc.lock (`restored`).

        :return: the names of the stages whose outputs were put back.
        """
        from dvc.exceptions import DvcException

        done = []
        for name in sorted(self._prepared):
            stage = self._stages[name]
            # Outputs that dvc.lock never recorded (a first run stopped) have nothing to give back.
            if stage.always_changed or not all(out.hash_info for out in stage.outs):
                continue
            with suppress(DvcException):  # not in the cache: the rerun regenerates them
                stage.checkout(force=True, allow_missing=True)
            if self.restored(stage.outs):
                done.append(name)
        self._prepared.clear()
        return done

    def ignored(self, path: str) -> bool:
        """Whether DVC ignores the file at absolute `path` (.dvcignore)."""
        return bool(self.repo.dvcignore.is_ignored_file(path))

    def pipeline_outs(self) -> list[str]:
        """Every output of every stage DVC knows in the repository, relative to the root."""
        return sorted({self._relative(out.fs_path) for out in self.repo.index.outs})
