"""An Aliyun OSS protocol server for tests: signatures, objects, multipart uploads, faults."""

from .server import Fault, OssServer

__all__ = ["Fault", "OssServer"]
