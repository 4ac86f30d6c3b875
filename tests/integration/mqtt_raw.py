"""Raw MQTT 3.1.1 packet bytes, for tests and benchmarks that speak to a broker (or play one)
without a client library: the remaining-length varint, length-prefixed strings, a packet, and
CONNECT."""

import struct


def varint(n):
    """MQTT's Remaining Length: 7 bits a byte, least significant first."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(s):
    """A UTF-8 string field: two bytes of length, then the bytes."""
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def packet(first, body):
    """A whole packet: its first byte, the remaining length, the body."""
    return bytes([first]) + varint(len(body)) + body


def connect(client_id, keep_alive=60):
    """CONNECT, protocol level 4 (3.1.1), a clean session."""
    return packet(0x10, utf8("MQTT") + bytes([4, 0x02]) + struct.pack(">H", keep_alive) + utf8(client_id))
