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
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

from rlrepro.core import params
from rlrepro.core.errors import UserError


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


def _run_cached(stage: Any) -> bool:
    """Whether `dvc repro` saves the stage in DVC's run-cache once it ran (`Stage.run`): when
    every output is in DVC's cache but metrics and plots (those the run-cache copies in itself);
    DVC itself leaves out stages it cannot hash (`persist` outputs, always changed)."""
    return all(out.use_cache or out.is_metric or out.is_plot for out in stage.outs)


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
        from dvc.repo import Repo, lock_repo
        from dvc.repo.reproduce import collect_stages, get_active_graph, plan_repro

        logging.getLogger("dvc").setLevel(logging.WARNING)  # not its "Updating lock file" lines
        self._exit = ExitStack()
        try:
            self.repo = self._exit.enter_context(Repo())
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
        if _run_cached(stage):
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
        run's outputs fetched first). Without a remote, only the local run-cache serves.

        :return: the steps whose outputs came back, each with where from ("remote" or
            "run-cache"); each still to be committed (`commit`).
        """
        from dvc.exceptions import DvcException
        from dvc.stage.cache import RunCacheNotFoundError, RunCacheNotSupported

        remote, names = self.remote(), {step.name for step in steps}
        if remote:
            try:
                self.repo.stage_cache.pull(None)
            except RunCacheNotSupported:  # an HTTP remote: its outputs only
                pass
            except Exception as err:  # the first contact: an unreachable store, wrong keys...
                raise UserError(
                    f"DVC remote {remote}: cannot read it ({type(err).__name__}: {err}); fix its "
                    "URL or keys (dvc remote modify), or unset it (dvc remote default --unset)"
                ) from err
        back: list[tuple[Step, str]] = []
        for step in steps:
            if any(u in names and u not in {b.name for b, _ in back} for u in step.upstream):
                continue
            stage = self._stages[step.name]
            self._was[step.name] = self._entry(stage)  # as locked, before DVC saves its deps
            # (a run-cache look-up saves them: `commit` compares with this, as `prepare` keeps it)
            if remote and not stage.changed(allow_missing=True):
                with suppress(DvcException):  # not (all) on the remote: DVC said which
                    self.repo.pull(step.name)
                if not stage.changed():
                    back.append((step, "remote"))
                    continue
            try:
                self.repo.stage_cache.restore(stage, pull=bool(remote))
            except RunCacheNotFoundError:
                continue
            back.append((step, "run-cache"))
        return back

    def ignored(self, path: str) -> bool:
        """Whether DVC ignores the file at absolute `path` (.dvcignore)."""
        return bool(self.repo.dvcignore.is_ignored_file(path))

    def pipeline_outs(self) -> list[str]:
        """Every output of every stage DVC knows in the repository, relative to the root."""
        return sorted({self._relative(out.fs_path) for out in self.repo.index.outs})
