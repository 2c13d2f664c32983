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

# ---- Writer (writer.c) ------------------------------------------------------

# Any object with the buffer protocol (collections.abc.Buffer from 3.12).
from typing_extensions import Buffer

class Writer:
    """A region file being written: published by commit(), or nothing."""
    def __init__(
        self,
        path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
        region_id: int,
        name: str,
        metadata: Any = None,
        *,
        align: int | None = None,
        lock_store: bool = False,
    ) -> None: ...
    def add(
        self,
        id: int,
        data: Buffer,
        name: str | None = None,
        metadata: Any = None,
    ) -> None: ...
    def begin_layer(
        self, id: int, name: str | None = None, metadata: Any = None
    ) -> None: ...
    def append(self, data: Buffer, /) -> None: ...
    def append_zeros(self, size: int, /) -> None: ...
    def end_layer(self) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...
    def __enter__(self) -> Writer: ...
    def __exit__(self, *exc: object) -> Literal[False]: ...
    @property
    def path(self) -> str | bytes | os.PathLike[str] | os.PathLike[bytes]: ...
    @property
    def region_id(self) -> int: ...
    @property
    def state(
        self,
    ) -> Literal["open", "committing", "committed", "aborted",
                 "failed to commit"]: ...
