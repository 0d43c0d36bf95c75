"""The resumable SHA-256 gives hashlib's digest however the input is split and saved along the way."""

from __future__ import annotations

import hashlib
import itertools
import json
import random

import pytest

from handlers.acquisition.resumable_sha256 import (
    ResumableHashUnavailable,
    ResumableSha256,
    load_backend,
    parse_state,
)


def _random_splits(rng: random.Random, length: int, cuts: int) -> list[int]:
    return sorted({0, length, *(rng.randrange(length + 1) for _ in range(cuts))})


def test_digest_equals_hashlib_when_state_is_saved_and_restored_between_every_chunk() -> None:
    rng = random.Random(20240501)
    data = rng.randbytes(300_000)
    points = _random_splits(rng, len(data), 40)
    hasher = ResumableSha256()
    for begin, end in itertools.pairwise(points):
        hasher.update(data[begin:end])
        hasher = ResumableSha256(hasher.save())
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    assert hasher.bytes_hashed == len(data)


def test_many_random_splits_through_json_always_agree_with_hashlib() -> None:
    rng = random.Random(7)
    for _ in range(200):
        data = rng.randbytes(rng.choice([0, 1, 63, 64, 65, 127, 128, rng.randrange(1, 5000)]))
        points = _random_splits(rng, len(data), rng.randrange(0, 8))
        carried = json.dumps({"Hash": ResumableSha256().save()})
        for begin, end in itertools.pairwise(points):
            hasher = ResumableSha256(json.loads(carried)["Hash"])
            hasher.update(data[begin:end])
            carried = json.dumps({"Hash": hasher.save()})
        assert ResumableSha256(json.loads(carried)["Hash"]).hexdigest() == hashlib.sha256(data).hexdigest()


def test_bytearray_and_memoryview_input_hash_like_bytes() -> None:
    data = random.Random(3).randbytes(10_000)
    hasher = ResumableSha256()
    hasher.update(bytearray(data[:3000]))
    hasher.update(memoryview(data)[3000:7000])
    hasher.update(memoryview(bytearray(data[7000:])))
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


def test_hexdigest_does_not_end_the_hash() -> None:
    hasher = ResumableSha256()
    hasher.update(b"first")
    assert hasher.hexdigest() == hashlib.sha256(b"first").hexdigest()
    hasher.update(b" second")
    assert hasher.hexdigest() == hashlib.sha256(b"first second").hexdigest()


def test_saved_state_is_short_and_names_its_format() -> None:
    hasher = ResumableSha256()
    hasher.update(b"x" * 1_000_003)
    state = hasher.save()
    assert state.startswith("sha256-v1:")
    assert len(state) < 240
    words, bits, tail = parse_state(state)
    assert bits == 8 * 1_000_003 and len(tail) == 1_000_003 % 64 and len(words) == 8


@pytest.mark.parametrize("bad", ["", "md5:abc", "sha256-v1:" + "0" * 64 + ":8:", "sha256-v1:zz:0:"])
def test_a_damaged_state_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        ResumableSha256(bad)


def test_without_libcrypto_or_rehash_the_error_says_what_is_missing() -> None:
    with pytest.raises(ResumableHashUnavailable, match="libcrypto"):
        load_backend(libcrypto_names=("libcrypto-that-does-not-exist.so",), try_rehash=False)


def test_backend_in_this_environment_is_libcrypto() -> None:
    assert ResumableSha256().backend == "libcrypto"
