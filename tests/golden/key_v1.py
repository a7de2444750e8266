#!/usr/bin/env python3
"""Independent reimplementation of cgloop's key encoding v1 (src/workflow/key.rs), from
its documentation, to produce the golden values in tests/suite/keys.rs. Needs `pip install
blake3`; not part of the test suite.

    python3 tests/golden/key_v1.py
"""
import struct
from blake3 import blake3


def u64(n):
    return struct.pack("<Q", n)


def string(s):
    b = s.encode()
    return b"s" + u64(len(b)) + b


def value(v):
    if v is None:
        return b"n"
    if isinstance(v, bool):
        return b"b" + bytes([int(v)])
    if isinstance(v, int):
        return (b"u" + u64(v)) if v >= 0 else (b"i" + struct.pack("<q", v))
    if isinstance(v, float):
        return b"f" + struct.pack("<d", 0.0 if v == 0.0 else v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, list):
        return b"l" + u64(len(v)) + b"".join(value(x) for x in v)
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: kv[0].encode())
        return b"m" + u64(len(items)) + b"".join(string(k) + value(x) for k, x in items)
    raise TypeError(v)


def node_seed(seed, node_id):
    return blake3(u64(seed) + node_id.encode(), derive_key_context="cgloop node seed v1").hexdigest()


def key(stage, version, params, inputs, seed_hex):
    out = b"cgloop key v1\0" + string(stage) + b"u" + u64(version) + value(params)
    out += b"m" + u64(len(inputs))
    for name in sorted(inputs, key=str.encode):
        k, output = inputs[name]
        out += string(name) + string(k) + string(output)
    out += string(seed_hex)
    return blake3(out).hexdigest()


seed = node_seed(20260101, "fg")
print("node seed", seed)
print("key", key("fg_sample", 3, {
    "steps": 5000000, "temperature_k": 300.0, "offset": -2, "solvent": "obc2",
    "ladder": [300.0, 330.5, 363.0], "constraints": None, "minimize": True,
    "topology": "blake3:" + "0" * 64,
}, {"trajectory": ("ab" * 32, "trajectory")}, seed))
