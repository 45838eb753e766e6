"""Elements block bytes made by hand around given transactions, for the offline chain tests."""

from __future__ import annotations


def block(txs: list[bytes], *, dynafed: bool, prev: bytes = b"\x11" * 32, time: int = 1_700_000_000) -> bytes:
    def var(b: bytes) -> bytes:
        return bytes([len(b)]) + b

    header = (-0x7FFFFFFF if dynafed else 0x20000000).to_bytes(4, "little", signed=True) + prev + b"\x22" * 32
    header += time.to_bytes(4, "little") + (7).to_bytes(4, "little")
    if dynafed:  # current entry (full params), proposed entry (null), one-item signblock witness
        header += (
            b"\x02"
            + var(b"\x51")
            + (74).to_bytes(4, "little")
            + var(b"\x51")
            + var(b"\x51")
            + b"\x01"
            + var(b"\x00" * 3)
        )
        header += b"\x00" + b"\x01" + var(b"\xab")
    else:  # signed-block proof: challenge and solution scripts
        header += var(b"\x51") + var(b"")
    return header + bytes([len(txs)]) + b"".join(txs)
