"""Block-hash prefix cache: chained hashes, LRU eviction, vLLM's last-token rule."""

from gpufleet_simulator.prefix_cache import BLOCK_SIZE, PrefixCache, block_hashes


def words(count, start=0):
    return [f"w{i}" for i in range(start, start + count)]


def test_only_full_blocks_are_hashed_and_hashes_chain():
    assert len(block_hashes(words(47))) == 2
    same_second_block = words(16) + words(16, 100)
    other_first_block = words(16, 50) + words(16, 100)
    assert block_hashes(same_second_block)[1] != block_hashes(other_first_block)[1]


def test_repeated_prefix_hits_whole_blocks():
    cache = PrefixCache(capacity_blocks=100)
    assert cache.lookup_and_insert(words(40)) == 0
    assert cache.lookup_and_insert(words(40) + words(30, 900)) == 2 * BLOCK_SIZE


def test_identical_prompt_still_computes_its_last_token():
    cache = PrefixCache(capacity_blocks=100)
    cache.lookup_and_insert(words(48))
    assert cache.lookup_and_insert(words(48)) == 2 * BLOCK_SIZE
    assert cache.lookup_and_insert(words(49)) == 3 * BLOCK_SIZE


def test_least_recently_used_blocks_are_evicted():
    cache = PrefixCache(capacity_blocks=4)
    cache.lookup_and_insert(words(33))            # blocks A1 A2
    cache.lookup_and_insert(words(33, 1000))      # blocks B1 B2
    cache.lookup_and_insert(words(33))            # touches A1 A2
    cache.lookup_and_insert(words(33, 2000))      # C1 C2 evict B1 B2
    assert len(cache) == 4
    assert cache.lookup_and_insert(words(33)) == 32
    assert cache.lookup_and_insert(words(33, 1000)) == 0
