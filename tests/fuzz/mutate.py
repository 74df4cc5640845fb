"""Mutations for fuzzing cnnlab's file formats, all driven by a seeded numpy Generator.

Byte-level (flip, set to an interesting value, truncate, insert, delete, duplicate, overwrite a
32-bit field), JSON-level (delete a key, replace a value by an interesting one, nest deeply)
and zip-level (mutate one member's bytes or the metadata's JSON and re-zip, so that the CRCs are
right and the mutant reaches past the zip layer).
"""

from __future__ import annotations

import io
import json
import struct
import zipfile

import numpy as np

INTERESTING_BYTES = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x20, 0x0A]
INTERESTING_INTS = [0, 1, -1, -5, 2**31 - 1, -(2**31), 2**16, 10**9, 255, 3]
INTERESTING_JSON = [None, -1, -5, 0, 0.5, 1, 1e308, -1e308, 2**63, True, False, "", "x",
                    "lenet5", [], {}, [1, 2], {"a": 1}, 3.5, "9" * 300]


def mutate_bytes(data: bytes, rng: np.random.Generator) -> bytes:
    """One to four random byte-level mutations of ``data``."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        kind = int(rng.integers(0, 8))
        n = len(out)
        at = int(rng.integers(0, max(n, 1)))
        if kind == 0 and n:  # flip one bit
            out[at] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1 and n:  # an interesting byte
            out[at] = INTERESTING_BYTES[int(rng.integers(0, len(INTERESTING_BYTES)))]
        elif kind == 2:  # truncate
            del out[at:]
        elif kind == 3:  # insert random bytes
            out[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        elif kind == 4:  # delete a range
            del out[at : at + int(rng.integers(1, 64))]
        elif kind == 5 and n:  # duplicate a range
            piece = out[at : at + int(rng.integers(1, 256))]
            out[at:at] = piece
        elif kind == 6 and n >= 4:  # a 32-bit field (big- or little-endian) set to an edge value
            at = min(at, n - 4)
            value = INTERESTING_INTS[int(rng.integers(0, len(INTERESTING_INTS)))]
            fmt = ">i" if rng.integers(0, 2) else "<i"
            out[at : at + 4] = struct.pack(fmt, value)
        else:  # append junk
            out += rng.integers(0, 256, int(rng.integers(1, 32)), dtype=np.uint8).tobytes()
    return bytes(out)


def _paths(value, prefix=()):
    """Every path (tuple of keys/indices) into a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def mutate_json(value, rng: np.random.Generator):
    """One structural mutation of a JSON value (a deep copy is changed and returned)."""
    value = json.loads(json.dumps(value))
    paths = [p for p in _paths(value) if p]
    if not paths:
        return INTERESTING_JSON[int(rng.integers(0, len(INTERESTING_JSON)))]
    path = paths[int(rng.integers(0, len(paths)))]
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    kind = int(rng.integers(0, 5))
    if kind == 0 and isinstance(parent, dict):  # delete a key
        del parent[last]
    elif kind == 1:  # nest deeply
        deep = parent[last]
        for _ in range(int(rng.choice([5, 40, 3000]))):
            deep = [deep]
        parent[last] = deep
    elif kind == 2 and isinstance(parent, dict):  # an unknown key beside it
        parent[f"{last}_x"] = 1
    else:  # an interesting value
        parent[last] = INTERESTING_JSON[int(rng.integers(0, len(INTERESTING_JSON)))]
    return value


def json_bytes(value) -> bytes:
    """JSON text of ``value``; deep nesting is written by hand (json.dumps would recurse)."""
    try:
        return json.dumps(value).encode()
    except RecursionError:
        return b"[" * 5000 + b"]" * 5000


def mutate_json_text(value, rng: np.random.Generator) -> bytes:
    """A mutant of a JSON document: structural (most) or on its bytes."""
    if rng.random() < 0.7:
        return json_bytes(mutate_json(value, rng))
    return mutate_bytes(json.dumps(value).encode(), rng)


def zip_members(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {info.filename: z.read(info) for info in z.infolist()}


def rezip(members: dict, compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, blob in members.items():
            z.writestr(name, blob)
    return buf.getvalue()


def _npy_of_bytes(blob: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.frombuffer(blob, np.uint8), allow_pickle=False)
    return buf.getvalue()


def mutate_npz(data: bytes, rng: np.random.Generator) -> bytes:
    """A mutant of an .npz checkpoint: its metadata's JSON (a third), one member's bytes (a
    third: header or data, re-zipped with good CRCs), or the archive's raw bytes."""
    members = zip_members(data)
    kind = rng.random()
    if kind < 1 / 3:
        meta = json.loads(np.load(io.BytesIO(members["__meta__.npy"])).tobytes())
        members["__meta__.npy"] = _npy_of_bytes(mutate_json_text(meta, rng))
        return rezip(members)
    if kind < 2 / 3:
        names = list(members)
        name = names[int(rng.integers(0, len(names)))]
        blob = members[name]
        if rng.random() < 0.6:  # the .npy header (the first 128 bytes) is where sizes live
            head = mutate_bytes(blob[:128], rng)
            members[name] = head + blob[128:]
        else:
            members[name] = mutate_bytes(blob, rng)
        if rng.random() < 0.1:  # and sometimes a member under another name
            members[f"extra_{int(rng.integers(0, 9))}.npy"] = members[name]
        return rezip(members, zipfile.ZIP_DEFLATED if rng.random() < 0.3 else zipfile.ZIP_STORED)
    return mutate_bytes(data, rng)
