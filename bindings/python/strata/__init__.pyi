# Type stubs of the strata package (the C extension strata._strata,
# re-exported by strata/__init__.py). One section per type, in the order of
# the extension's files.
import os
from typing import Any, Iterator, Literal, overload, TypeVar

__version__: str
_T = TypeVar("_T")

# ---- errors (errors.c) ------------------------------------------------------

class Error(Exception):
    """Every failure of a Strata call; the message is the library's detail."""
    code: int | None
    """The library's negative error code (e.g. -4005)."""
    name: str | None
    """Its symbolic name (e.g. 'STRATA_E_CORRUPT')."""

class NotFoundError(Error, KeyError):
    """No such layer or region."""

class CorruptError(Error):
    """A damaged or foreign file (magic, version, checksum, structure)."""

class LockedError(Error):
    """The store is locked by another writer."""

class LimitError(Error):
    """A configured or format limit was reached."""

class ConflictError(Error):
    """A region file changed on disk under the store."""

class StrataOSError(Error, OSError):
    """A system call failed; .errno is set."""

# ---- Layer (layer.c) --------------------------------------------------------

class Layer:
    """A layer read in place; the read-only buffer protocol, no copy."""
    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str | None: ...
    @property
    def metadata(self) -> Any: ...
    @property
    def size(self) -> int: ...
    @property
    def checksum(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __dlpack__(
        self,
        *,
        stream: Any = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: bool | None = None,
    ) -> Any:
        """A DLPack capsule over the content (1-D uint8, kDLCPU), no copy."""
    def __dlpack_device__(self) -> tuple[int, int]:
        """(1, 0): kDLCPU, device 0."""

# ---- Region (region.c) ------------------------------------------------------

class Region:
    """A region file, mapped read-only and validated at open."""
    def __init__(self, path: str | bytes | os.PathLike[str]) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Region: ...
    def __exit__(self, *exc: object) -> Literal[False]: ...
    @property
    def info(self) -> dict[str, Any]: ...
    @property
    def path(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: object) -> bool: ...
    def __getitem__(self, key: int | str) -> Layer: ...
    def __iter__(self) -> Iterator[Layer]: ...
    @overload
    def get(self, key: int | str) -> Layer | None: ...
    @overload
    def get(self, key: int | str, default: _T) -> Layer | _T: ...
    @overload
    def get_by_name(self, name: str) -> Layer | None: ...
    @overload
    def get_by_name(self, name: str, default: _T) -> Layer | _T: ...
    def verify(self) -> None: ...
