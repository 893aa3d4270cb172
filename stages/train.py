"""Stage `train`: one agent for one experiment and seed.

Reads `numerics` and `experiments.<exp>` from params; writes the canonical checkpoint
(`--model`, a zip that SB3's `load` opens for SB3 agents), the learning curve (`--curve`, CSV:
one row per finished episode with the global env step, the episode return and its length), the
training trace (`--trace`, CSV: after every `trace.every`-th update, short hashes of the policy
parameters and the latest observations, to find where two runs part), and the progress curve
(`--progress`, CSV: the deterministic evaluations during training, `periodic_eval`). The
wall-clock seconds go to `--timing` (JSON), which is not tracked: they differ on every run.
"""

import sys
from pathlib import Path

from rlrepro import agents, checkpoint, cli, numerics, params
from rlrepro.episodes import CURVE_HEADER
from rlrepro.files import write_csv, write_json
from rlrepro.periodic import PROGRESS_HEADER
from rlrepro.trace import TRACE_HEADER, Trace


def main(argv: list[str] | None = None) -> int:
    """Train experiment `--exp` with seed `--seed`; write the checkpoint, curves and trace."""
    parser = cli.parser(__doc__.splitlines()[0])
    parser.add_argument("--exp", required=True, help="experiment name in params.yaml")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--model", type=Path, required=True, help="checkpoint to write (.zip)")
    parser.add_argument("--curve", type=Path, required=True, help="learning curve to write (.csv)")
    parser.add_argument("--trace", type=Path, required=True, help="training trace to write (.csv)")
    parser.add_argument("--progress", type=Path, required=True, help="evaluations during training")
    parser.add_argument("--timing", type=Path, required=True, help="wall-clock record (untracked)")
    args = parser.parse_args(argv)

    def work() -> None:
        raw = params.read(args.params)
        exp = params.experiment(raw, args.exp)
        pins = params.section(raw, params.Numerics, "numerics")
        tracing = params.section(raw, params.Tracing, "trace")
        agents.check_hyperparams(exp, args.exp)
        if args.seed < 0:
            raise params.ParamsError(f"--seed: expected an integer >= 0, got {args.seed}")
        numerics.configure_torch(pins.torch_threads)
        numerics.seed_everything(args.seed)
        trace = Trace(tracing.every)
        meta, entries, episodes, evaluator = agents.train(exp, args.exp, args.seed, trace)
        checkpoint.write(args.model, meta, entries)
        write_csv(args.curve, CURVE_HEADER, episodes)
        write_csv(args.trace, TRACE_HEADER, trace.points)
        write_csv(args.progress, PROGRESS_HEADER, evaluator.rows)
        write_json(args.timing, {"experiment": args.exp, "seed": args.seed, **evaluator.timing()})

    return cli.run(work)


if __name__ == "__main__":
    sys.exit(main())
