"""Precompute the SAM masks of the training data into the mask cache (resumable; SAM runs once per image).

    python training/generate_masks.py --config training/configs/sage_vit_b.yaml sam.checkpoint=/models/sam_vit_b.pth

Uses the config's data.train folders, sam variant, checkpoint, generator settings and cache_dir, so
training finds every mask in the cache. Interrupt it at any time: the next run skips what is done.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from sage_core.cli.common import run_command
from sage_core.image_files import read_pair
from sage_core.train.config import load_config
from sage_core.train.data import mask_cache, training_pairs
from sage_core.train.sam_priors import sam_inputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="generate_masks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--allow-random-sam", action="store_true", help="accept the tiny random SAM (tests)")
    parser.add_argument("overrides", nargs="*", help="section.key=value")
    args = parser.parse_args(argv)

    def body() -> int:
        config = load_config(args.config, list(args.overrides) + (["sam.allow_random=true"]
                                                                   if args.allow_random_sam else []))
        cache = mask_cache(config)
        pairs = training_pairs(config)
        bar = tqdm(pairs, desc=f"SAM {cache.sam.variant} masks", unit="pair")
        for pair in bar:
            for image in sam_inputs(*read_pair(pair)):
                cache.masks(image)
            bar.set_postfix(cached=cache.hits, computed=cache.misses)
        print(f"{len(pairs)} pairs: {cache.hits} masks were cached, {cache.misses} computed, "
              f"in {config.sam.cache_dir}")
        return 0

    return run_command("generate_masks", body)


if __name__ == "__main__":
    sys.exit(main())
