"""An MD5 whose state can be saved between requests (OpenSSL's MD5_CTX through ctypes).

hashlib cannot export its state, so a whole-file MD5 over parts that arrive in separate
requests would need a re-read at completion. OpenSSL's MD5_CTX is a plain 92-byte struct we
can copy out and back in. ctypes releases the GIL during the call, so hashing runs in threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

CTX_SIZE = 92  # 4 state words, 2 length words, 16 block words, 1 count: unsigned ints


@cache
def _libcrypto() -> ctypes.CDLL | None:
    names = [ctypes.util.find_library("crypto"), "libcrypto.so.3", "libcrypto.so.1.1"]
    for name in names:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            lib.MD5_Init.argtypes = [ctypes.c_void_p]
            lib.MD5_Update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
            lib.MD5_Final.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
            return lib
        except (OSError, AttributeError):
            continue
    return None


def available() -> bool:
    """Whether resumable MD5 is available on this machine."""
    return _libcrypto() is not None


class ResumableMD5:
    """MD5 with save() / restore(): the state survives between processes."""

    def __init__(self, state: bytes | None = None) -> None:
        lib = _libcrypto()
        if lib is None:
            raise RuntimeError("libcrypto with MD5_Init is not available")
        self._lib = lib
        self._ctx = ctypes.create_string_buffer(CTX_SIZE)
        if state is None:
            lib.MD5_Init(self._ctx)
        else:
            if len(state) != CTX_SIZE:
                raise ValueError("bad MD5 state")
            ctypes.memmove(self._ctx, state, CTX_SIZE)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes."""
        if isinstance(data, memoryview):
            data = data.tobytes() if not data.readonly else bytes(data)
        self._lib.MD5_Update(
            self._ctx, bytes(data) if isinstance(data, bytearray) else data, len(data)
        )

    def save(self) -> bytes:
        """The current state, to store and restore later."""
        return self._ctx.raw

    def hexdigest(self) -> str:
        """Finish a copy of the state (this object can still be updated)."""
        copy = ctypes.create_string_buffer(CTX_SIZE)
        ctypes.memmove(copy, self._ctx, CTX_SIZE)
        out = ctypes.create_string_buffer(16)
        self._lib.MD5_Final(out, copy)
        return out.raw.hex()
