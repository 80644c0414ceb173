"""`new_id`: Stripe-style ids, `prefix_` and 24 base62 characters drawn from the OS."""

from __future__ import annotations

import re
from collections import Counter

from billing.models import ID_ALPHABET, new_id


def test_it_makes_a_prefixed_id_of_24_base62_characters():
    assert re.fullmatch(r"evt_[0-9A-Za-z]{24}", new_id("evt"))


def test_it_never_repeats_and_uses_every_character_evenly():
    ids = [new_id("cus") for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    counts = Counter(character for id in ids for character in id[len("cus_") :])
    expected = 5000 * 24 / len(ID_ALPHABET)  # about 1,935 each
    assert set(counts) == set(ID_ALPHABET)
    assert all(0.85 * expected < n < 1.15 * expected for n in counts.values()), counts
