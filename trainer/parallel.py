"""How the model meets the hardware: processes, devices, data parallelism, compilation, and the
full (unsharded) state that checkpoints hold.

Applied from outside trainer/model.py, as torchtitan does, so the model file stays a plain
single-device module. One process is the default; under `torchrun` every process trains a
replica (DDP) or, with --fsdp, a shard of the weights, gradients and optimizer state (FSDP2).
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.nn.parallel import DistributedDataParallel as DDP

from core.errors import UsageError


@dataclass
class Runtime:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_runtime(device: str) -> Runtime:
    """This process's place: torchrun's RANK / LOCAL_RANK / WORLD_SIZE, or a lone process."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    rank, local_rank = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("device=cuda but torch sees no CUDA device")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
        # TF32 for whatever is left in float32 under autocast: free speed, no visible loss change
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", device_id=dev if use_cuda else None)
    return Runtime(rank, local_rank, world_size, dev)


def shutdown(runtime: Runtime):
    if runtime.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()


_SDPA_BACKENDS = {"flash": "enable_flash_sdp", "cudnn": "enable_cudnn_sdp",
                  "efficient": "enable_mem_efficient_sdp", "math": "enable_math_sdp"}


def select_attention(runtime: Runtime, attention: str):
    """Leave only the chosen scaled_dot_product_attention kernel enabled on CUDA.

    torch picks flash attention first; on Hopper cuDNN's kernel can be faster, and which wins
    depends on the card and the shapes, so it is a setting, measured by bench/trainer_gpu.sh.
    """
    if attention == "auto" or runtime.device.type != "cuda":
        return
    for name, switch in _SDPA_BACKENDS.items():
        getattr(torch.backends.cuda, switch)(name == attention)


def parallelize(model, runtime: Runtime, fsdp: bool, compile: bool, param_dtype=None,
                compile_mode: str = "default"):
    """The module the loop calls. The model's own parameters stay reachable through `model`."""
    options = {} if compile_mode == "default" else {"mode": compile_mode}
    if fsdp:
        try:
            from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
        except ImportError:  # torch < 2.6 kept FSDP2 under a private name
            from torch.distributed._composable.fsdp import (
                MixedPrecisionPolicy,
                fully_shard,
            )
        # compute in param_dtype, reduce gradients in float32 (torchtitan's default policy)
        mp = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32 if param_dtype else None)
        # one unit per block: its weights are gathered just before it runs and freed after
        for block in model.transformer.h:
            if compile:
                block.compile(**options)
            fully_shard(block, mp_policy=mp)
        fully_shard(model, mp_policy=mp)
        return model
    if compile:
        model.compile(**options)  # in place: the state_dict keeps its names
    if runtime.world_size > 1:
        return DDP(model, device_ids=[runtime.local_rank] if runtime.device.type == "cuda" else None)
    return model


def set_grad_sync(wrapped, model, sync: bool):
    """Skip the gradient all-reduce on all but the last accumulation micro-step."""
    if isinstance(wrapped, DDP):
        wrapped.require_backward_grad_sync = sync
    elif hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(sync)


def all_reduce_sum(tensor: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    if runtime.world_size > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj, runtime: Runtime) -> list:
    if runtime.world_size == 1:
        return [obj]
    gathered = [None] * runtime.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


# full tensors on the CPU, whatever the sharding: a checkpoint loads under any number of processes
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_model_state(model) -> dict:
    return get_model_state_dict(model, options=_FULL)


def full_optimizer_state(model, optimizer) -> dict:
    return get_optimizer_state_dict(model, optimizer, options=_FULL)


def load_full_state(model, optimizer, model_state: dict, optimizer_state: dict):
    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, model_state, options=options)
    set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)
