"""The LRU of saved KV states: longest shared prefix wins, redundant prefixes and old states go."""

from sc2lsp.backends.llama_cpp import StateCache, _common_prefix


def test_common_prefix():
    a = list(range(1000))
    assert _common_prefix(a, a) == 1000
    assert _common_prefix(a, a[:300] + [-1] + a[301:]) == 300
    assert _common_prefix([], a) == 0


def test_best_match_capacity_and_redundant_prefixes():
    c = StateCache(capacity_bytes=300)
    c.put((1, 2, 3), "s123", 100)
    c.put((1, 2, 3, 4, 5), "s12345", 100)  # extends (1, 2, 3): that one is redundant now
    assert len(c) == 1 and c.covers((1, 2, 3)) and not c.covers((1, 2, 9))
    c.put((7, 8), "s78", 100)
    c.put((9,), "s9", 100)
    assert c.best((1, 2, 3, 4, 0)) == ((1, 2, 3, 4, 5), 4)
    assert c.get((1, 2, 3, 4, 5)) == "s12345"  # now the most recently used
    c.put((5, 5), "s55", 100)  # over capacity: the least recently used, (7, 8), goes
    assert c.best((7, 8)) == (None, 0)
    assert c.best((9,))[1] == 1 and c.nbytes == 300
    c.put((6,), "big", 1000)  # larger than the whole cache: not kept
    assert c.best((6,)) == (None, 0)
