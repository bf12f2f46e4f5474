"""Devices: where a tensor's memory lives, parsed from strings like "cpu", "cuda" and "cuda:1"."""

from __future__ import annotations

from typing import ClassVar

from ..errors import DeviceError

DEVICE_TYPES = ("cpu", "cuda")


class Device:
    """A device: its type ("cpu" or "cuda") and, for CUDA, its index.

    Devices are interned, so `is` and `==` agree, and compare equal to their string form
    (`gg.device("cuda:0") == "cuda:0"`).
    """

    __slots__ = ("index", "type")
    _interned: ClassVar[dict[tuple[str, int | None], Device]] = {}

    def __new__(cls, type: str, index: int | None = None) -> Device:
        key = (type, index)
        dev = cls._interned.get(key)
        if dev is None:
            dev = object.__new__(cls)
            dev.type, dev.index = type, index
            cls._interned[key] = dev
        return dev

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device('{self}')"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                other = device(other)
            except DeviceError:
                return False
        return self is other

    def __hash__(self) -> int:
        return hash(str(self))

    def __reduce__(self):
        return (Device, (self.type, self.index))


def device(spec: str | Device | None = None) -> Device:
    """Parse a device: `None` or "cpu" → cpu; "cuda" → cuda:0; "cuda:N" → cuda:N."""
    if spec is None:
        return Device("cpu")
    if isinstance(spec, Device):
        return spec
    if not isinstance(spec, str):
        raise DeviceError(f"a device is a string like 'cpu' or 'cuda:0', got {spec!r}")
    kind, _, index = spec.strip().lower().partition(":")
    if kind not in DEVICE_TYPES:
        raise DeviceError(f"unknown device {spec!r}: expected 'cpu', 'cuda' or 'cuda:N'")
    if kind == "cpu":
        if index not in ("", "0"):
            raise DeviceError(f"unknown device {spec!r}: the cpu device takes no index")
        return Device("cpu")
    if index == "":
        return Device("cuda", 0)
    if not index.isdigit():
        raise DeviceError(f"bad device index in {spec!r}: expected 'cuda:N' with N >= 0")
    return Device("cuda", int(index))
