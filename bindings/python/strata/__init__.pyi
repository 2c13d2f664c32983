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
    @property
    def tombstone(self) -> bool:
        """True for a delta file's record of a removed layer (only through
        a Region opened on a delta file; snapshots never return one)."""
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
    def info(self) -> dict[str, Any]:
        """path, id, name, metadata, layer_count, named_count, format,
        flags, dense_ids, file_size, data_offset, data_size, index_offset,
        data_align, header_checksum, index_checksum, and delta: None for a
        base file, for a delta file {depth, parent_checksum, base_checksum,
        tombstones}."""
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

# ---- Store (store.c) --------------------------------------------------------

from typing import Iterable
from typing_extensions import Buffer  # collections.abc.Buffer from 3.12

class Store:
    """A store: a directory of region files, read through snapshots and
    written through protos. Keyword arguments are strata_store_config's
    fields; None keeps a default, an unknown keyword is a TypeError."""
    def __init__(
        self,
        path: str | bytes | os.PathLike[str],
        *,
        memory_limit: int | None = ...,
        warn_pct: int | None = ...,
        evict_pct: int | None = ...,
        refuse_pct: int | None = ...,
        log_level: int | str | None = ...,
        max_readers: int | None = ...,
        snapshot_warn_ms: int | None = ...,
        open_threads: int | None = ...,
        shared_view: bool | None = ...,
        read_only: bool | None = ...,
        verify_at_open: bool | None = ...,
        create: bool | None = ...,
        no_deltas: bool | None = ...,
        background_compact: bool | None = ...,
        staging_bytes: int | None = ...,
        staging_block_size: int | None = ...,
        staging_streams: int | None = ...,
        staging_device: int | None = ...,
        staging_high_pct: int | None = ...,
        staging_evict_pct: int | None = ...,
        staging_hot_threshold: int | None = ...,
        staging_sample_period: int | None = ...,
        staging_hot_budget: int | None = ...,
        staging_pack_bytes: int | None = ...,
        staging_device_cache_bytes: int | None = ...,
        staging_host: bool | None = ...,
        staging_no_dedup: bool | None = ...,
        staging_direct: bool | None = ...,
    ) -> None: ...
    def close(self) -> None:
        """Ends snapshots without exports now, the others (and the store)
        when their last exported buffer is released. Never BufferError."""
    def __enter__(self) -> Store: ...
    def __exit__(self, *exc: object) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def path(self) -> str: ...
    def snapshot(self) -> Snapshot: ...
    def proto(
        self,
        region: int | str,
        *,
        create: bool = False,
        name: str | None = None,
        metadata: Any = None,
    ) -> Proto: ...
    def compact(self, region: int | str, /) -> None:
        """Rewrites the region's base and delta files into a new base,
        without holding the writer for the write."""
    def compact_wait(self) -> None:
        """Waits for the background compactor (background_compact=True)."""
    def crystallize(self, region: int | str, /) -> None:
        """Writes the region's proto as its file; releases the GIL."""
    def refresh(self) -> None:
        """Picks up region files other processes wrote; releases the GIL."""
    def dump_state(self, verbose: bool = False) -> dict[str, Any]: ...
    def metrics_text(self) -> str: ...
    def processes(self) -> list[dict[str, Any]]: ...

# ---- Snapshot (snapshot.c) --------------------------------------------------

class Snapshot:
    """One consistent, unchanging view of a Store (Store.snapshot()).
    Exported buffers of its layers keep it alive after close()."""
    def get(self, region: int | str, layer: int | str, /) -> Layer:
        """Raises NotFoundError (a KeyError) on a miss."""
    def get_many(
        self, refs: Iterable[tuple[int | str, int | str]], /
    ) -> list[Layer | None]:
        """One entry per pair; None where the region or layer is missing."""
    def get_many_in(
        self, region: int | str, ids: Iterable[int] | Buffer, /
    ) -> list[Layer | None]:
        """Many layers of one region: ids is a list or tuple of ints, a
        1-D uint64 buffer (numpy uint64 array, array('Q'); read in place)
        or an iterable of ints. One entry per id; None where the layer or
        the region is missing (as get_many). OverflowError for an id outside
        0 .. 2**64-1, TypeError for a non-int or a buffer of another type."""
    def regions(self) -> list[dict[str, Any]]:
        """id, name, file, layers, bytes, metadata, generation, has_proto,
        delta_depth, deltas (one dict per delta file, oldest first: file,
        depth, layers, bytes, header_checksum, parent_checksum,
        base_checksum)."""
    def layers(self, region: int | str, /) -> Iterator[Layer]:
        """The region's layers (proto changes included) in id order."""
    # Staging (staging.c): see Staged and docs/PYTHON.md, "Staging".
    def stage(self, region: int | str, layer: int | str, /) -> Staged: ...
    def stage_path_size(self, refs: Iterable[tuple[int | str, int | str]],
                        /) -> int: ...
    def stage_path_to_device(
            self, refs: Iterable[tuple[int | str, int | str]], dst: Any,
            stream: Any = None) -> list[tuple[int, int]]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Snapshot: ...
    def __exit__(self, *exc: object) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def store(self) -> Store: ...

# ---- Proto (proto.c) --------------------------------------------------------

class Proto:
    """A region's proto (Store.proto()). Leaving its `with` block does
    nothing: the changes stay until Store.crystallize() or Store.close()."""
    def put(
        self,
        layer_id: int,
        data: Buffer,
        name: str | None = None,
        metadata: Any = None,
    ) -> None: ...
    def remove(self, layer_id: int, /) -> None: ...
    def discard(self) -> None: ...
    def __enter__(self) -> Proto: ...
    def __exit__(self, *exc: object) -> None: ...
    @property
    def info(self) -> dict[str, int]:
        """region_id, layers, changed, bytes, age_ms."""
    @property
    def region_id(self) -> int: ...

# ---- Writer (writer.c) ------------------------------------------------------

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
        check_ids_at_commit: bool = False,
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

# ---- Staged (staging.c) -----------------------------------------------------

class Staged:
    """A layer's copy in the staging pool's pinned host memory
    (Snapshot.stage()); read-only buffer protocol and DLPack over it.
    Valid after its snapshot ends, until release() and the release of the
    buffers exported from it."""
    @property
    def size(self) -> int: ...
    @property
    def region_id(self) -> int: ...
    @property
    def layer_id(self) -> int: ...
    @property
    def segments(self) -> int:
        """Contiguous pieces of pinned memory the copy occupies (1: the
        buffer protocol shows them without a copy)."""
    @property
    def released(self) -> bool: ...
    def to_device(self, dst: Any, stream: Any = None) -> None:
        """Copies the bytes to the start of dst (a CUDA DLPack tensor; in
        host mode a writable host buffer or CPU DLPack tensor; or an int
        address), on stream (None, an int cudaStream_t, or an object with
        .cuda_stream), and returns once they are there."""
    def release(self) -> None: ...
    def __enter__(self) -> Staged: ...
    def __exit__(self, *exc: object) -> None: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __dlpack__(self, *, stream: Any = None,
                   max_version: tuple[int, int] | None = None,
                   dl_device: tuple[int, int] | None = None,
                   copy: bool | None = None) -> Any: ...
    def __dlpack_device__(self) -> tuple[int, int]: ...
