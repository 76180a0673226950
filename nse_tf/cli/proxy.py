"""The short stand-alone proxy of any network JSON on a search's held-out split.

    python tools/proxy.py --search_run=results/plane/search_a035 \
        --arch=configs/archs/family/mobilenetv2_style_fmnist_a035.json --seeds=0,1

The verification stage (``--verify_top``) trains its shortlist and ``--verify_archs`` references only from
the search's own space. A hand-designed network of another skeleton (the width family's member at the
budget, say) is compared here instead: same short recipe (``--epochs``, default the run's
``--verify_epochs``), same training images, scored on the same held-out split as the verification's (the
last finished round's, never the test split). Each training is its own resumable run directory under
``--out_dir``; ``proxy.json`` there collects every network's per-seed and mean held-out top-1.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from nse_tf.data.idx import DatasetError  # noqa: E402
from nse_tf.train.config import TrainError  # noqa: E402
from nse_tf.utils.cli import FlagError, flags_parser  # noqa: E402
from nse_tf.utils.output_paths import OutputError, check_dir, output_error_line  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("search_run", None, "A search run directory (config.json, round_XX/pareto.json).")
flags.DEFINE_list("arch", [], "Network JSONs to train (any skeleton with the search's input and classes).")
flags.DEFINE_list("seeds", ["0", "1"], "Training seeds, each a run of its own.")
flags.DEFINE_integer("epochs", 0, "Epochs of the short recipe (0: the search's --verify_epochs, else 3).")
flags.DEFINE_integer("round", 0, "Round whose held-out split scores (1-based); 0: the last finished round.")
flags.DEFINE_integer("threads", 0, "TensorFlow CPU threads (0: TensorFlow's default).")
flags.DEFINE_string("out_dir", None, "Output directory (default: <search_run>/proxy).")
flags.DEFINE_bool("allow_large", False, "Build networks beyond the size limits of nse_tf.space.limits (refused "
                  "without this flag before anything is allocated).")
flags.DEFINE_string("shard", "0/1", "i/n: run only trainings i, i + n, ... (processes share the list).")

RESULT_FILE = "proxy.json"


def run_label(spec_name: str, seed: int) -> str:
    """A run directory name from the network's own name (file-safe) and the seed."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in spec_name)
    return f"{safe}_seed{seed}"


def parse_seeds(values: list[str]) -> list[int]:
    try:
        seeds = [int(v) for v in values]
    except ValueError:
        raise FlagError("seeds", f"must be integers, got {','.join(values)}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise FlagError("seeds", f"must be distinct non-negative integers, got {','.join(values)}")
    return seeds


def load_specs(paths: list[str], info, check_size: bool = True) -> list:
    """Each --arch file as a NetworkSpec that takes the search's images and predicts its classes (one beyond the
    size limits refused unless ``check_size`` is False: --allow_large)."""
    from nse_tf.space.architecture import ArchitectureError, NetworkSpec
    from nse_tf.space.limits import error_line

    if not paths:
        raise FlagError("arch", "is required: one or more network JSONs")
    specs = []
    for path in paths:
        try:
            spec = NetworkSpec.load(path, check_size=check_size)
        except OSError as err:
            raise FlagError("arch", f"{path}: cannot read it ({err.strerror})") from None
        except ArchitectureError as err:
            raise FlagError("arch", error_line(err)) from None
        ours, theirs = info.space, spec.space
        for field in ("input_size", "input_channels", "num_classes"):
            if getattr(theirs, field) != getattr(ours, field):
                raise FlagError("arch", f"{path}: its {field} is {getattr(theirs, field)}, the search's "
                                        f"{getattr(ours, field)}")
        specs.append(spec)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        twice = sorted(n for n in names if names.count(n) > 1)[0]
        raise FlagError("arch", f"two files share the network name {twice!r}; run directories are named by it")
    return specs


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"proxy.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    import dataclasses

    from nse_tf.utils.memory import keep_freed_memory

    keep_freed_memory()
    out_dir = F.out_dir or (os.path.join(F.search_run, "proxy") if F.search_run else None)
    try:
        seeds = parse_seeds(F.seeds)
        if F.epochs < 0:
            raise FlagError("epochs", f"must be positive (or 0 for the search's), got {F.epochs}")
        from nse_tf.search import standalone

        try:
            shard = standalone.Shard.parse(F.shard)
        except ValueError as err:
            raise FlagError("shard", str(err)) from None
        info, round_index = standalone.open_round_for_tool(F.search_run, F.threads, F.round)
        specs = load_specs(F.arch, info, check_size=not F.allow_large)
        epochs = F.epochs or verify_epochs(F.search_run)
        try:  # an existing file, a read-only mount: refused now, not after the first training
            check_dir(out_dir, create=False)
        except OutputError as err:
            raise FlagError("out_dir", str(err)) from None
        recipe = dataclasses.replace(standalone.SHORT_RECIPE, epochs=epochs)
        result = train_all(info, round_index, specs, seeds, recipe, out_dir=out_dir, shard=shard)
    except FlagError as err:
        print(f"proxy.py: error: {err}", file=sys.stderr)
        return 2
    except DatasetError as err:
        print(f"proxy.py: error: --search_run: {err}", file=sys.stderr)
        return 2
    except TrainError as err:  # a run directory under --out_dir holds another network, recipe or split
        print(f"proxy.py: error: --out_dir: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a run directory under --out_dir in use, or its disk full: one line
        if out_dir is None or (line := output_error_line(err, "out_dir", out_dir)) is None:
            raise
        print(f"proxy.py: error: {line}", file=sys.stderr)
        return 2
    if result is None:
        print(f"shard {F.shard}: its trainings are done; others are still training (the last to finish "
              f"writes {out_dir}/{RESULT_FILE})")
        return 0
    for row in result["networks"]:
        per_seed = ", ".join(f"{v:.4f}" for v in row["top1"].values())
        print(f"{row['name']}: held-out top-1 {row['mean']:.4f} ({per_seed})")
    print(f"-> {out_dir}/{RESULT_FILE}")
    return 0


def verify_epochs(run_dir: str) -> int:
    """The search's own verification epochs, so that the figures sit beside its shortlist's."""
    from nse_tf.search import standalone

    saved = standalone.read_json(os.path.join(run_dir, "config.json"), f"is {run_dir} a search run directory?")
    verify = saved.get("verify") if isinstance(saved, dict) else None
    epochs = verify.get("epochs") if isinstance(verify, dict) else None
    return int(epochs) if isinstance(epochs, int) and epochs > 0 else standalone.SHORT_RECIPE.epochs


def train_all(info, round_index: int, specs, seeds: list[int], recipe, *, out_dir: str, shard) -> dict | None:
    import dataclasses

    import numpy as np

    from nse_tf.search import standalone
    from nse_tf.space.analytic import network_cost
    from nse_tf.utils.atomic import atomic_write_json

    heldout_seed = info.heldout_seed(round_index)
    jobs = [(spec, dataclasses.replace(recipe, seed=seed), os.path.join(out_dir, run_label(spec.name, seed)))
            for spec in specs for seed in seeds]
    done = standalone.run_share(jobs, shard, info.heldout_examples, heldout_seed,
                                log=lambda line: print(line, flush=True))
    if any(result is None for result in done):
        return None
    networks = []
    for k, (spec, path) in enumerate(zip(specs, F.arch)):
        top1 = {str(seed): float(done[k * len(seeds) + j]["top1"]) for j, seed in enumerate(seeds)}
        networks.append({"name": spec.name, "file": path, "macs": int(round(network_cost(spec).macs)), "top1": top1,
                         "mean": float(np.mean(list(top1.values())))})
    result = {"format": "nse_tf.proxy", "version": 1, "search_run": info.run_dir,
              "heldout": {"examples": info.heldout_examples, "seed": heldout_seed, "round": round_index + 1},
              "recipe": dataclasses.asdict(recipe), "networks": networks}
    atomic_write_json(os.path.join(out_dir, RESULT_FILE), result)
    return result


def run() -> None:
    """``python tools/proxy.py``."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("proxy.py"))
