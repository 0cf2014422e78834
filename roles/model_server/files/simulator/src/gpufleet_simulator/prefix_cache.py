"""Per-instance LRU of prompt blocks, hashed in a chain like vLLM's automatic prefix caching."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

BLOCK_SIZE = 16


def block_hashes(tokens: Sequence[str], block_size: int = BLOCK_SIZE) -> list[int]:
    """One hash per full block; each covers its parent's hash, so equal hashes mean equal prefixes."""
    hashes = []
    parent = 0
    for start in range(0, len(tokens) - block_size + 1, block_size):
        parent = hash((parent, tuple(tokens[start:start + block_size])))
        hashes.append(parent)
    return hashes


class PrefixCache:
    def __init__(self, capacity_blocks: int, block_size: int = BLOCK_SIZE) -> None:
        self.capacity_blocks = capacity_blocks
        self.block_size = block_size
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def lookup_and_insert(self, tokens: Sequence[str]) -> int:
        """Number of leading prompt tokens already cached; then caches every full block of the prompt.

        As in vLLM the last prompt token is always computed, so a fully cached prompt still misses one block.
        """
        hashes = block_hashes(tokens, self.block_size)
        max_hit_blocks = (len(tokens) - 1) // self.block_size
        hits = 0
        for block_hash in hashes[:max_hit_blocks]:
            if block_hash not in self._blocks:
                break
            hits += 1
        for block_hash in hashes:
            self._blocks[block_hash] = None
            self._blocks.move_to_end(block_hash)
        while len(self._blocks) > self.capacity_blocks:
            self._blocks.popitem(last=False)
        return hits * self.block_size
