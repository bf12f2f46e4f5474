"""Data-parallel training across processes, GPUs and machines, on MPI (mpi4py) and NCCL
(CuPy's `cupy.cuda.nccl`), with PyTorch's names.

```python
import gpugrad.distributed as dist
from gpugrad.nn.parallel import DistributedDataParallel
dist.init_process_group()          # under `mpiexec -n 2 python train.py`
model = DistributedDataParallel(model)
dist.get_rank(), dist.get_world_size()
dist.all_reduce(t, op="mean")      # in place, on every rank
```

Without mpi4py, or in a single process, the world is one process and collectives do nothing.
"""

from .collectives import REDUCE_OPS, all_gather, all_gather_object, all_reduce, barrier, broadcast
from .group import (
    destroy_process_group,
    get_backend,
    get_local_rank,
    get_rank,
    get_world_size,
    init_process_group,
    is_initialized,
)

__all__ = [
    "REDUCE_OPS",
    "all_gather",
    "all_gather_object",
    "all_reduce",
    "barrier",
    "broadcast",
    "destroy_process_group",
    "get_backend",
    "get_local_rank",
    "get_rank",
    "get_world_size",
    "init_process_group",
    "is_initialized",
]
