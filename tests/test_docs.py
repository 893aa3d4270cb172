"""The documentation works as written: every relative link and image path in README.md,
CHANGELOG.md and docs/*.md names a file of the repository (and a heading of it, for a link to
a Markdown page's `#anchor`), and the README's quick-tour commands run in a fresh clone.

The commands tested are those of the fenced code block that follows the line
`<!-- docs-test: fresh-clone -->` in README.md: one command a line, each run with bash in a git
clone of this repository whose `.venv` is this environment, and required to exit 0. They must
need no long run and no file outside git (checkpoints may live in DVC's cache only)."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, clone, run

PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = "<!-- docs-test: fresh-clone -->"

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+).+?\1", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_SRC = re.compile(r"<(?:img|a)\s[^>]*?(?:src|href)=\"([^\"]+)\"")


def _prose(text: str) -> str:
    """`text` without fenced code blocks and inline code, where a link is only an example."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the headings of `page`."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", FENCE.sub("", page.read_text()), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def _links(page: Path) -> list[str]:
    text = _prose(page.read_text())
    return LINK.findall(text) + HTML_SRC.findall(text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in _links(page):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not fetched
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        name = str(file.relative_to(ROOT)) if file.is_relative_to(ROOT) else str(file)
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {name}")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)


def _code(page: Path) -> str:
    """The code of `page`: fenced and indented blocks, and inline code."""
    text = page.read_text()
    indented = re.findall(r"^(?: {4}|\t)(.+)$", text, re.MULTILINE)
    spans = [m.group(0) for m in CODE_SPAN.finditer(FENCE.sub("", text))]
    return "\n".join([*FENCE.findall(text), *indented, *spans])


def test_every_make_target_and_module_named_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.MULTILINE))
    code = "\n".join(_code(page) for page in PAGES)
    named = set(re.findall(r"\bmake ([a-z][\w-]*)", code))
    assert named - targets == set(), "no such Makefile target"
    modules = {m.rstrip(".") for m in re.findall(r"python -m ([\w.]+)", code)}
    missing = {m for m in modules if importlib.util.find_spec(m) is None}
    assert not missing, f"no such module: {missing}"


def tour_commands() -> list[str]:
    """The commands of the README's block marked for the fresh-clone test."""
    readme = (ROOT / "README.md").read_text()
    assert MARKER in readme, f"README.md has no {MARKER} block"
    block = re.search(r"^```\w*\n(.*?)^```", readme.split(MARKER, 1)[1], re.MULTILINE | re.DOTALL)
    assert block, f"no fenced block after {MARKER}"
    return [line for line in block.group(1).splitlines() if line.strip()]


def _exp_show() -> str:
    """The README's recommended `dvc exp show` command line."""
    code = _code(ROOT / "README.md").splitlines()
    found = [c.strip() for c in code if c.strip().startswith("dvc exp show")]
    assert found, "the README has no `dvc exp show`"
    return found[0]


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git clone of this repository, with this environment as its `.venv`, and without
    checkpoints: they may live in DVC's cache only, which a fresh clone does not have."""
    repo = clone(ROOT, tmp_path_factory.mktemp("docs") / "rlrepro")
    for checkpoint in repo.glob("**/models/*.zip"):
        checkpoint.unlink()
    (repo / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return repo


@pytest.mark.parametrize("command", tour_commands())
def test_quick_tour_command_runs_in_a_fresh_clone(fresh_clone: Path, command: str) -> None:
    run(fresh_clone, "bash", "-ec", command, env={"COLUMNS": "120"})


def test_the_quick_tour_reads_in_under_40_lines(fresh_clone: Path) -> None:
    """The whole tour, run as one script in a fresh clone (no checkpoints), prints fewer than 40
    lines: `dvc status`'s hundreds of lines about missing outputs are summarised."""
    shown = run(fresh_clone, "bash", "-ec", "\n".join(tour_commands()), env={"COLUMNS": "120"})
    lines = (shown.stdout + shown.stderr).splitlines()
    assert len(lines) < 40, "\n".join(lines)
    assert any("without their outputs here" in line for line in lines), "\n".join(lines)


def test_the_readme_lists_every_make_target_as_make_help_does() -> None:
    """The README's copy of `make help` is the output of `make help`."""
    shown = run(ROOT, "make", "--no-print-directory", "-s", "help").stdout
    readme = (ROOT / "README.md").read_text()
    assert "".join(f"    {line}\n" for line in shown.splitlines()) in readme, shown


def test_exp_show_fits_120_columns(reproduced: Path, tmp_path: Path) -> None:
    """The README's `dvc exp show` after an experiment: every line fits, no column collapsed."""
    repo = clone(reproduced, tmp_path / "exp")
    run(repo, "dvc", "exp", "run", "-S", "experiments.cartpole-ppo.budget.steps=384")
    shown = run(repo, "bash", "-ec", _exp_show(), env={"COLUMNS": "120"}).stdout
    lines = shown.splitlines()
    assert max(len(line) for line in lines) <= 120, shown
    assert "…" not in shown, f"a column was collapsed:\n{shown}"
    header = next(line for line in lines if "Experiment" in line)
    assert "metrics/cartpole-ppo.json:iqm" in header, shown
    assert "experiments.cartpole-ppo.budget.steps" in header, shown
    assert len([line for line in lines if "384" in line]) >= 2, shown  # workspace, experiment
