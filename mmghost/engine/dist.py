# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Distributed training without CUDA: mmengine 0.10.7's two CUDA assumptions.

With ``--launcher pytorch`` (torchrun) on a machine without CUDA, mmengine

* initialises the process group through ``_init_dist_pytorch``, which calls
  ``torch.cuda.set_device(local_rank)`` whatever the backend, and with the
  ``dist_cfg=dict(backend='nccl')`` of MMDetection's default runtime, which
  needs CUDA; and
* wraps the model in ``MMDistributedDataParallel(device_ids=[LOCAL_RANK])``,
  which torch refuses for a module on the CPU.

Both fixes live here and are used by :class:`mmghost.engine.SafeRunner`
(``setup_env`` and ``wrap_model``). Where CUDA is available every function
below hands the call to mmengine unchanged.
"""
import datetime
import os
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.dist import init_dist as mmengine_init_dist
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS

__all__ = [
    'CPUDistributedDataParallel', 'cpu_model_wrapper_cfg', 'cuda_absent',
    'init_dist', 'shutdown_dist'
]


def cuda_absent() -> bool:
    """True where CUDA cannot be used (the only case the fixes act on)."""
    return not torch.cuda.is_available()


def init_dist(launcher: str, backend: str = 'nccl', **kwargs) -> None:
    """``mmengine.dist.init_dist``, and gloo on CPU for the pytorch launcher.

    Without CUDA, ``nccl`` (MMDetection's default) becomes ``gloo``; an
    explicit ``gloo`` or ``mpi`` backend is kept.
    """
    if not cuda_absent():
        return mmengine_init_dist(launcher, backend=backend, **kwargs)
    if launcher != 'pytorch':
        raise RuntimeError(
            f"--launcher {launcher} needs CUDA in mmengine 0.10.7 (it calls "
            'torch.cuda.set_device); on a machine without CUDA launch with '
            'tools/dist_train.sh or torchrun and --launcher pytorch')
    if backend == 'nccl':
        backend = 'gloo'
    if kwargs.get('timeout') is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
    kwargs.pop('init_backend', None)
    torch_dist.init_process_group(
        backend=backend,
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **kwargs)


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` for a module whose parameters are on the
    CPU: torch's DDP takes no ``device_ids``/``output_device`` there, and
    mmengine always passes ``device_ids=[LOCAL_RANK]``."""

    def __init__(self, module, detect_anomalous_params=False, **kwargs):
        param = next(module.parameters(), None)
        if param is None or param.device.type == 'cpu':
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        super().__init__(
            module=module,
            detect_anomalous_params=detect_anomalous_params,
            **kwargs)


def cpu_model_wrapper_cfg(model_wrapper_cfg: Optional[dict],
                          find_unused_parameters: bool = False
                          ) -> Optional[dict]:
    """The ``model_wrapper_cfg`` for ``Runner.wrap_model`` of a distributed
    run: unchanged with CUDA, or a wrapper with the DDP type replaced by
    :class:`CPUDistributedDataParallel` without it.

    ``None`` stands for mmengine's default wrapper, built here with the same
    arguments mmengine uses (``broadcast_buffers=False`` and the config's
    ``find_unused_parameters``).
    """
    if not cuda_absent():
        return model_wrapper_cfg
    if model_wrapper_cfg is None:
        return dict(
            type='CPUDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=find_unused_parameters)
    wrapper_type = model_wrapper_cfg.get('type', 'MMDistributedDataParallel')
    if wrapper_type in ('MMDistributedDataParallel',
                        MMDistributedDataParallel):
        model_wrapper_cfg = dict(
            model_wrapper_cfg, type='CPUDistributedDataParallel')
    return model_wrapper_cfg


def shutdown_dist() -> None:
    """Tear the process group down before the interpreter exits.

    mmengine never destroys it; with gloo on CPU, rank 0 then sometimes
    aborts at exit ("terminate called without an active exception") after
    a run that succeeded, and torchrun reports the whole job as failed.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
