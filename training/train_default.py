"""Train the shipped default model (LiteFuse) on unsupervised fusion losses.

    python training/train_default.py --data ../shared/datasets/msrs180 \
        --out sage_core/weights/lite_fuse_default.pt

Minutes on two CPU cores. The loop lives in ``sage_core.training``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from sage_core.checkpoint import save_checkpoint  # noqa: E402
from sage_core.losses import FusionLossWeights  # noqa: E402
from sage_core.models import LiteFuse  # noqa: E402
from sage_core.training import TrainConfig, load_luma_pairs, train_fusion  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults, loss_defaults = TrainConfig(), FusionLossWeights()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", required=True, help="dataset folder with ir/ and vis/ (repeatable)")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint to write (our format)")
    parser.add_argument("--width", type=int, default=16, help="LiteFuse channel width")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--crop", type=int, default=defaults.crop)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    for name in ("mse_vis", "mse_ir", "max_intensity", "grad"):
        parser.add_argument(f"--w-{name.replace('_', '-')}", type=float, default=getattr(loss_defaults, name),
                            help=f"weight of the {name} loss term")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, crop=args.crop, lr=args.lr, seed=args.seed,
        loss=FusionLossWeights(args.w_mse_vis, args.w_mse_ir, args.w_max_intensity, args.w_grad),
    )
    pairs = load_luma_pairs(args.data)
    print(f"{len(pairs)} training pairs from {', '.join(args.data)}")
    model = LiteFuse(width=args.width)
    result = train_fusion(model, pairs, config)
    meta = {
        "trained_on": [Path(d).name for d in args.data],
        "train_config": config.to_dict(),
        "train_seconds": round(result["seconds"], 1),
        "final_loss": result["final_loss"],
        "command": "python training/train_default.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
    }
    save_checkpoint(model, args.out, meta=meta)
    print(json.dumps({"out": str(args.out), **{k: meta[k] for k in ("train_seconds", "final_loss")}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
