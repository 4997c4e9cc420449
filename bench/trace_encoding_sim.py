#!/usr/bin/env python3
"""What a compact trace encoding would save, measured before building it.

Reads a heapscope trace (heapscope run --output), re-encodes its alloc and free records the
way a compact writer could, and prints bytes per event before and after zstd (level 3, the
collector's). Two encodings, both with a tag byte (kind, same thread as before, time changed,
api), varint thread id and time delta when they change, and varint size and stack id:
  addr:  addresses as zigzag deltas from the previous allocation's address;
  index: frees name their allocation by how many allocations ago it was (no address);
  info:  as index, and allocations carry no address: (size, stack, api) is numbered the first
         time it occurs (heaptrack's allocation-info dedup) and named by that number after.
usage: bench/trace_encoding_sim.py TRACE.trace.zst   (needs the zstd command)
"""
import struct
import subprocess
import sys
import tempfile

TRACE_HEADER = 24  # TraceFileHeader, then the zstd stream (docs/trace-format.md)
KIND_ALLOC, KIND_FREE = 5, 6


def records(raw):
    pos = 0
    while pos + 16 <= len(raw):
        kind, _flags, size, time = struct.unpack_from("<HHIQ", raw, pos)
        if size < 16:
            break
        if kind == KIND_ALLOC:
            address, length, stack, thread, _align, api = struct.unpack_from("<QQIIIB", raw, pos + 16)
            yield ("alloc", time, thread, api, address, length, stack)
        elif kind == KIND_FREE:
            address, thread, api = struct.unpack_from("<QIB", raw, pos + 16)
            yield ("free", time, thread, api, address, 0, 0)
        pos += size


def varint(value, out):
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def zigzag(value):
    return value * 2 if value >= 0 else -value * 2 - 1


def encode(events, mode):
    out = bytearray()
    last_time, last_thread, last_address, ordinal, live = 0, None, 0, 0, {}
    infos = {}
    for kind, time, thread, api, address, length, stack in events:
        tag = (kind == "free") | (thread == last_thread) << 1 | (time != last_time) << 2 | (api & 15) << 3
        out.append(tag)
        if thread != last_thread:
            varint(thread, out)
        if time != last_time:
            varint(max(0, time - last_time), out)
        last_time, last_thread = time, thread
        if kind == "alloc" and mode == "info":
            key = (length, stack, api)
            number = infos.get(key)
            if number is None:  # 0, then the definition; the reader numbers them in order
                infos[key] = number = len(infos) + 1
                varint(0, out)
                varint(length, out)
                varint(stack, out)
            else:
                varint(number, out)
            ordinal += 1
            live[address] = ordinal
        elif kind == "alloc":
            varint(zigzag(address - last_address), out)
            last_address = address
            varint(length, out)
            varint(stack, out)
            ordinal += 1
            live[address] = ordinal
        elif mode in ("index", "info"):
            born = live.pop(address, None)
            varint(ordinal - born if born else 0, out)
        else:
            varint(zigzag(address - last_address), out)
    return bytes(out)


def zstd_size(data):
    return len(subprocess.run(["zstd", "-q", "-c", "-3"], input=data, capture_output=True, check=True).stdout)


def main():
    with open(sys.argv[1], "rb") as trace:
        body = trace.read()[TRACE_HEADER:]
    raw = subprocess.run(["zstd", "-q", "-d", "-c"], input=body, capture_output=True, check=True).stdout
    events = list(records(raw))
    if not events:
        sys.exit("no alloc or free records in " + sys.argv[1])
    count = len(events)
    print(f"{count} alloc/free events; the trace as written: {len(body) / count:.2f} bytes per event (all records)")
    for mode in ("addr", "index", "info"):
        packed = encode(events, mode)
        print(f"{mode:>5}: {len(packed) / count:.2f} bytes per event raw, {zstd_size(packed) / count:.2f} after zstd")


if __name__ == "__main__":
    main()
