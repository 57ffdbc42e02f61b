"""Which GPUs a session trains on: the ``N|all|0,2,5`` value of ``--gpus`` (the flag and
``gpus`` in cockpit.toml come with the fleet engine, issue 16; this is their parser).

Pure parsing and resolution, no device query: the caller passes what is there.

* ``N`` (a positive integer): N experiments in flight, one per GPU, wherever the
  scheduler (Ray) places them; ``1`` is the local path of a single-GPU session.
* ``all``: every GPU the cluster has (resolved once, at start-up).
* ``0,2,5``: these device indices of this node (CUDA_VISIBLE_DEVICES numbering),
  one experiment in flight on each; duplicates are refused; ``2,`` is device 2 alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


class GpuSpecError(ValueError):
    """A ``--gpus`` value that is not N, ``all`` or a list of device indices."""


@dataclass(frozen=True)
class GpuSpec:
    """A parsed ``--gpus``: ``count`` experiments in flight (None for ``all``: as many
    as the cluster has GPUs), or the device indices ``ids`` of this node (then
    ``count`` is their number)."""

    count: Optional[int]
    ids: tuple[int, ...] = ()

    @property
    def local(self) -> bool:
        """True for one GPU and no list: today's single-device path (no Ray)."""
        return self.count == 1 and not self.ids

    def resolve(self, available: int) -> int:
        """Experiments in flight given ``available`` GPUs in the cluster. Raises
        GpuSpecError when ``all`` finds none, or when more GPUs (or a higher
        index) are asked for than there are."""
        if self.ids:
            if max(self.ids) >= available:
                raise GpuSpecError(f"--gpus {self}: this node has {available} GPU(s), "
                                   f"indices 0..{available - 1}")
            return len(self.ids)
        if self.count is None:
            if available < 1:
                raise GpuSpecError("--gpus all: the cluster has no GPU")
            return available
        if self.count > available:
            raise GpuSpecError(f"--gpus {self.count}: the cluster has {available} GPU(s)")
        return self.count

    def __str__(self) -> str:
        if self.ids:
            return ",".join(map(str, self.ids))
        return "all" if self.count is None else str(self.count)


def parse_gpus(text: str) -> GpuSpec:
    """``"4"`` -> GpuSpec(4); ``"all"`` -> GpuSpec(None); ``"0,2,5"`` -> GpuSpec(3, (0, 2, 5)).
    Raises GpuSpecError with what is accepted."""
    value = str(text).strip().lower()
    if value == "all":
        return GpuSpec(None)
    if "," in value:
        parts = [p.strip() for p in value.split(",") if p.strip()]  # "2," lists one device
        if not parts or not all(p.isdigit() for p in parts):
            raise GpuSpecError(f"--gpus {text!r}: a list holds device indices (e.g. 0,2,5)")
        ids = tuple(int(p) for p in parts)
        if len(set(ids)) != len(ids):
            raise GpuSpecError(f"--gpus {text!r}: a device is listed twice")
        return GpuSpec(len(ids), ids)
    if value.isdigit() and int(value) >= 1:
        return GpuSpec(int(value))
    raise GpuSpecError(f"--gpus {text!r}: expected a number of GPUs (1 or more), all, or indices like 0,2,5")
