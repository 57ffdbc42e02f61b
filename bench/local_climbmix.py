"""Write climbmix-named parquet shards made of the embedded KJV text, for a machine
with no internet (bench/gpu_check.sh): `python bench/local_climbmix.py DIR`.

DIR gets shard_00000.parquet ... shard_00009.parquet (the KJV training documents in
ten near-equal parts), shard_06541.parquet (the holdout books) and shard_06542.parquet
(the validation books): the names the h100 profile's prepare.py downloads, so that
COCKPIT_DATA_URL=file://DIR prepares the h100 profile from local disk. The text is
not climbmix: val_bpb from it compares only with runs on the same local corpus.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from substrate import prepare

TRAIN_SHARDS = 10  # the h100 profile's NUM_TRAIN_SHARDS


def write_local_climbmix(out_dir: Path) -> dict:
    """Write the 12 shards into out_dir (created); returns {"train_docs", "val_docs",
    "holdout_docs"}. Raises prepare.PrepareError when the KJV package is missing."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepare.build_kjv(tmp, progress=False)
        texts = lambda paths: [t for p in paths for t in pq.read_table(p).column("text").to_pylist()]  # noqa: E731
        train = texts(sorted(Path(tmp).glob("shard_0*.parquet")))
        val = texts([Path(tmp) / prepare.KJV_VAL_SHARD])
        holdout = texts([Path(tmp) / prepare.HOLDOUT_SHARD])
    size = -(-len(train) // TRAIN_SHARDS)
    for i in range(TRAIN_SHARDS):
        prepare.write_parquet(out_dir / f"shard_{i:05d}.parquet", train[i * size:(i + 1) * size])
    prepare.write_parquet(out_dir / f"shard_{prepare.CLIMBMIX_HOLDOUT_SHARD:05d}.parquet", holdout)
    prepare.write_parquet(out_dir / f"shard_{prepare.CLIMBMIX_VAL_SHARD:05d}.parquet", val)
    return {"train_docs": len(train), "val_docs": len(val), "holdout_docs": len(holdout)}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python bench/local_climbmix.py DIR")
    counts = write_local_climbmix(Path(sys.argv[1]))
    print(f"local corpus: {counts['train_docs']:,} training, {counts['val_docs']:,} validation and "
          f"{counts['holdout_docs']:,} holdout documents of the KJV, as climbmix shards in {sys.argv[1]}")
