"""Reads a PyTorch state dict in the legacy file format, without torch and without running its code.

A `.pth` file is a pickle, and unpickling runs whatever the file asks for.
This reader is a security boundary: its unpickler resolves only the three
kinds of global a state dict needs (`collections.OrderedDict`,
`torch._utils._rebuild_tensor_v2` and the `torch.*Storage` types), each to a
stand-in defined here, and refuses every other. The tensor bytes are read as
plain data and checked against what the pickle declared.

The legacy format (`torch.save(..., _use_new_zipfile_serialization=False)`,
the format of PyTorch before 1.6):

1. pickles of the magic number, the protocol version (1001) and a dict of
   system information (byte order, type sizes);
2. the pickled object, whose storages are persistent ids
   `("storage", StorageType, key, location, numel, view_metadata)`;
3. a pickle of the storage keys, in the order their data follows;
4. per storage: the element count as an 8-byte little-endian integer, then
   the raw elements.

Tensors are views `(storage, offset, size, stride)` into those storages and
may be non-contiguous (the EfficientNet-Lite checkpoints store most
convolution kernels transposed), so each is rebuilt with its strides.
"""

import collections
import dataclasses
import os
import pickle
import struct

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
ZIP_SIGNATURE = b"PK\x03\x04"

_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class CheckpointError(ValueError):
    """A checkpoint file that is not a plain legacy state dict, or is damaged."""


@dataclasses.dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self):
        return _STORAGE_DTYPES[self.name]


@dataclasses.dataclass
class _Storage:
    key: str
    dtype: np.dtype
    numel: int
    data: object = None


@dataclasses.dataclass(frozen=True)
class _TensorView:
    storage: _Storage
    offset: int
    size: tuple
    stride: tuple


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    """Stand-in for `torch._utils._rebuild_tensor_v2`: records the view, builds nothing."""
    if not isinstance(storage, _Storage):
        raise CheckpointError(f"a tensor refers to {type(storage).__name__}, not to a storage")
    if not (_is_int(storage_offset) and _int_tuple(size) and _int_tuple(stride)
            and len(size) == len(stride)):
        raise CheckpointError(
            f"a tensor has a malformed view: offset={storage_offset!r}, size={size!r}, "
            f"stride={stride!r}")
    return _TensorView(storage, int(storage_offset), tuple(size), tuple(stride))


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _int_tuple(values):
    return isinstance(values, tuple) and all(_is_int(v) for v in values)


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _Unpickler(pickle.Unpickler):
    """Resolves only the globals of a state dict; storages become `_Storage` records."""

    def __init__(self, file, storages=None):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"the file asks to load {module}.{name}, which a state dict of tensors does "
                "not need; it was refused (loading it could run code from the file)"
            ) from None

    def persistent_load(self, pid):
        if self.storages is None:
            raise CheckpointError("a storage reference outside the state dict")
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise CheckpointError(f"an unknown persistent reference {str(pid)[:80]}")
        storage_type, key, _, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not _is_int(numel) \
                or numel < 0:
            raise CheckpointError(f"a malformed storage reference {str(pid)[:80]}")
        if len(pid) == 6 and pid[5] is not None:
            raise CheckpointError("storage views (from PyTorch before 0.4) are not supported")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(key, storage_type.dtype, numel)
        elif (storage.dtype, storage.numel) != (storage_type.dtype, numel):
            raise CheckpointError(f"storage {key} is declared twice with different types or sizes")
        return storage


def read_state_dict(path):
    """Reads a legacy-format PyTorch state dict into NumPy arrays.

    Args:
        path: str or path. A `.pth` file written by `torch.save(state_dict)`
            in the legacy (non-zip) format.

    Returns:
        dict from parameter name to a C-contiguous `numpy.ndarray`, in file
        order.

    Raises:
        CheckpointError: if the file is in the zip format, is not a pickled
            state dict of tensors, asks for any other Python object (which
            could run code), is truncated, declares element counts its data
            does not have, or holds a tensor reaching outside its storage.
        FileNotFoundError: if there is no file at `path`.
    """
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        try:
            return _read(file, size)
        except CheckpointError as error:
            raise CheckpointError(f"{path}: {error}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
                KeyError, AttributeError, struct.error, MemoryError, RecursionError) as error:
            raise CheckpointError(
                f"{path}: not a readable legacy PyTorch state dict "
                f"({type(error).__name__}: {str(error)[:200]})"
            ) from None


def _read(file, size):
    start = file.read(len(ZIP_SIGNATURE))
    if start == ZIP_SIGNATURE:
        raise CheckpointError(
            "this is a zip-format checkpoint (torch.save since PyTorch 1.6); only the legacy "
            "format is read. Re-save it with torch.save(state_dict, path, "
            "_use_new_zipfile_serialization=False)")
    if not start.startswith(b"\x80"):
        raise CheckpointError("not a pickle file (it does not start with a pickle protocol byte)")
    file.seek(0)
    if _Unpickler(file).load() != MAGIC_NUMBER:
        raise CheckpointError("not a PyTorch checkpoint (wrong magic number)")
    protocol = _Unpickler(file).load()
    if protocol != PROTOCOL_VERSION:
        raise CheckpointError(f"unsupported checkpoint protocol {protocol!r}")
    info = _Unpickler(file).load()
    if not isinstance(info, dict) or info.get("little_endian") is not True:
        raise CheckpointError("only little-endian checkpoints are supported")

    storages = {}
    state = _Unpickler(file, storages).load()
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, _TensorView) for k, v in state.items()):
        raise CheckpointError("the file holds something other than a state dict of tensors")
    keys = _Unpickler(file).load()
    if not isinstance(keys, list) or sorted(keys) != sorted(storages):
        raise CheckpointError("the list of storages does not match the storages the tensors use")
    for key in keys:
        _read_storage(file, storages[key], size)
    if file.read(1):
        raise CheckpointError("unexpected bytes after the last storage")
    return {name: _materialise(name, view) for name, view in state.items()}


def _read_storage(file, storage, file_size):
    header = file.read(8)
    if len(header) < 8:
        raise CheckpointError(f"the file is truncated before storage {storage.key}")
    (count,) = struct.unpack("<q", header)
    if count != storage.numel:
        raise CheckpointError(
            f"storage {storage.key} declares {storage.numel} elements but its data holds {count}")
    nbytes = count * storage.dtype.itemsize
    if nbytes > file_size - file.tell():  # checked before reading: a huge count allocates nothing
        raise CheckpointError(f"the file is truncated inside storage {storage.key}")
    storage.data = np.frombuffer(file.read(nbytes), dtype=storage.dtype)


def _materialise(name, view):
    if any(s < 0 for s in view.size) or any(s < 0 for s in view.stride) or view.offset < 0:
        raise CheckpointError(f"tensor {name} has a negative size, stride or offset")
    storage = view.storage
    if 0 in view.size:
        return np.zeros(view.size, storage.dtype)
    last = view.offset + sum((n - 1) * s for n, s in zip(view.size, view.stride))
    if last >= storage.numel:
        raise CheckpointError(
            f"tensor {name} reaches element {last} of storage {storage.key}, which holds "
            f"{storage.numel}")
    itemsize = storage.dtype.itemsize
    strided = np.lib.stride_tricks.as_strided(
        storage.data[view.offset:], shape=view.size,
        strides=[s * itemsize for s in view.stride], writeable=False)
    return np.ascontiguousarray(strided, dtype=storage.dtype.newbyteorder("="))
