"""Per-cell seeds: a function of the root seed and the cell's own coordinates, nothing else.

So a cell gets the same random numbers whichever worker, executor or order runs it, and adding
values to a grid leaves the cells already there unchanged.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np


def _words(name: str, value: float) -> tuple[int, int, int]:
    (bits,) = struct.unpack("<Q", struct.pack("<d", float(value) + 0.0))  # -0.0 -> 0.0
    return zlib.crc32(name.encode()), bits >> 32, bits & 0xFFFFFFFF


def cell_seed(root_seed: int, cell: dict) -> np.random.SeedSequence:
    """The seed sequence of one cell.

    Parameters
    ----------
    root_seed : int
        The sweep's root seed (>= 0).
    cell : dict of str to float
        The cell's coordinates. Order does not matter; values are taken as float64, exactly.

    Returns
    -------
    numpy.random.SeedSequence
        With entropy ``root_seed`` and a spawn key made of each axis's name (CRC-32) and the
        two 32-bit halves of its value's IEEE-754 bits, axes sorted by name.
    """
    key = []
    for name in sorted(cell):
        key.extend(_words(name, cell[name]))
    return np.random.SeedSequence(int(root_seed), spawn_key=tuple(key))
