"""WebDataset shards: the format and its reader (format), the writer (write) and what it writes
from (inputs), the streamed pool (pool) and the dataset the trainer reads (dataset)."""
from .format import ShardSet, decode_image, encode_image, expand, verify
from .write import write_shards
from . import dataset  # noqa: F401,E402  (registers --dataset shards)

__all__ = ["ShardSet", "decode_image", "encode_image", "expand", "verify", "write_shards"]
