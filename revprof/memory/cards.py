"""What a card has: the device memory the caching allocator can draw on, by size or card name.

``total_bytes`` is what ``torch.cuda.get_device_properties(i).total_memory`` reports
(``cudaDeviceProp.totalGlobalMem``): less than the marketed size, because the driver keeps part of
the memory, and a little different between driver versions and ECC settings (the sources of the
figures below say so where it is known). ``per_process_memory_fraction`` is a share of it.

``usable_bytes`` is what ``cudaMalloc`` and ``cuMemCreate`` can actually obtain for this
process's caching allocator: the total less the CUDA context, other processes and memory taken
outside the caching allocator. revprof does not subtract anything on its own: the caller decides
(``revprof/memory/device.py`` gives the context allowances) and passes the result.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from revprof.errors import RevprofError, closest
from revprof.units import format_bytes, parse_bytes


@dataclass(frozen=True)
class DeviceCapacity:
    """Device memory as the caching allocator sees it (bytes).

    Attributes:
        total_bytes: ``torch.cuda.get_device_properties().total_memory``; the base of
            ``per_process_memory_fraction``.
        usable_bytes: what ``cudaMalloc``/``cuMemCreate`` can obtain for this allocator in all
            (``None``: all of ``total_bytes``).
        name: the card's name in :data:`CARDS`, or ``""`` for a plain size.
        source: where ``total_bytes`` comes from.
    """

    total_bytes: int
    usable_bytes: int | None = None
    name: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if self.total_bytes <= 0:
            raise RevprofError(f"device memory must be positive; got {self.total_bytes} bytes")
        if self.usable_bytes is not None and not 0 <= self.usable_bytes <= self.total_bytes:
            raise RevprofError(f"usable device memory must be between 0 and the total "
                               f"({self.total_bytes} B); got {self.usable_bytes} B")

    @property
    def usable(self) -> int:
        """Bytes the allocator can reserve before ``cudaMalloc`` fails."""
        return self.total_bytes if self.usable_bytes is None else self.usable_bytes

    def with_usable(self, usable_bytes: int) -> DeviceCapacity:
        """The same card with ``usable_bytes`` left for the allocator (e.g. total less context)."""
        return replace(self, usable_bytes=usable_bytes)

    def allowed_bytes(self, fraction: float) -> int | None:
        """``setMemoryFraction``: ``int(fraction * total)`` for a fraction below 1, else ``None``."""
        return int(fraction * self.total_bytes) if fraction < 1.0 else None

    def words(self) -> str:
        """``rtx3060: 11.76 GiB (12,622,168,064 B)``, with the usable part when it is less."""
        label = f"{self.name}: " if self.name else ""
        usable = (f", {format_bytes(self.usable)} usable by the allocator"
                  if self.usable_bytes is not None else "")
        return f"{label}{format_bytes(self.total_bytes)} ({self.total_bytes:,} B){usable}"


CARDS: dict[str, DeviceCapacity] = {card.name: card for card in (
    DeviceCapacity(12_622_168_064, name="rtx3060", source=(
        "GeForce RTX 3060 12 GB: total_gpu_memory of the xMem evaluation runs (Stone-ResearchLife/"
        "xMem, /work/shared/gpu-truth/README.md); the same 'Total VRAM' in a public qualification "
        "log (driver 550.163.01, CUDA 12.4)")),
    DeviceCapacity(8_318_222_336, name="rtx4060", source=(
        "GeForce RTX 4060 8 GB: total_gpu_memory of the xMem evaluation runs "
        "(/work/shared/gpu-truth/README.md); no second public source found")),
    DeviceCapacity(42_474_471_424, name="a100-40gb", source=(
        "A100 40 GB (SXM4): figure given with issue 24; less certain: published totalGlobalMem "
        "values of this card vary with driver and ECC (deviceQuery 42,298,834,944 B with driver "
        "12.2, 42,405,855,232 B elsewhere; Paddle's docs print 40536 MB)")),
    DeviceCapacity(85_197_848_576, name="a100-80gb", source=(
        "A100-SXM4-80GB: deviceQuery prints 81251 MBytes (MiB, rounded) of global memory; "
        "85,197,848,576 B is exactly 81251 MiB, the byte figure public GPU inventories record; "
        "less certain (within 0.5 MiB, and it varies with the driver; newer drivers' nvidia-smi "
        "shows 81920 MiB, which is not totalGlobalMem)")),
    DeviceCapacity(85_017_493_504, name="h100-80gb", source=(
        "H100 80GB HBM3 (SXM): 85,017,493,504 B as total_gpu_bytes / cudaMemGetInfo total in "
        "several public torch run logs; torch prints total_memory=81079-81090MB across drivers "
        "(the PCIe card's nvidia-smi total, 81559 MiB, is larger)")),
    DeviceCapacity(150_109_945_856, name="h200", source=(
        "H200 141 GB (SXM): torch prints total_memory=143156MB (a public Modal log), i.e. "
        "143156 MiB = 150,109,945,856 B; less certain: that print truncates to whole MiB, so the "
        "true figure may be up to 1 MiB higher, and it varies with the driver")),
)}
"""Named cards: ``total_memory`` as torch reports it, each with its source."""


def parse_device_memory(text: str) -> DeviceCapacity:
    """A device's memory from a size with a unit (``12GiB``, ``11.5GB``, ``8000MiB``) or a card name
    of :data:`CARDS` (``rtx3060``, ``a100-80gb``; case and ``_``/space for ``-`` do not matter).

    Raises:
        RevprofError: neither a size with a unit nor a known card (one line, listing the cards).
    """
    name = str(text).strip().lower().replace("_", "-").replace(" ", "-")
    if name in CARDS:
        return CARDS[name]
    if name and name[0].isdigit():
        try:
            size = parse_bytes(text)
        except RevprofError as error:
            raise RevprofError(f"device memory must be a size such as 12GiB or a card name "
                               f"({', '.join(CARDS)}); {error}") from None
        if size <= 0:
            raise RevprofError(f"device memory must be more than 0 bytes; got {text!r}")
        return DeviceCapacity(size, name="", source=f"given as {text.strip()!r}")
    prefixed = [card for card in CARDS if card.startswith(name)] if name else []
    hint = f" (did you mean {' or '.join(map(repr, prefixed))}?)" if prefixed else closest(name, CARDS)
    raise RevprofError(f"device memory must be a size such as 12GiB or a card name "
                       f"({', '.join(CARDS)}); got {text!r}{hint}")
