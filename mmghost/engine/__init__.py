# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""What mmengine 0.10.7 lacks: safe checkpoints, a checked resume, CPU DDP,
a stop on SIGTERM that loses nothing."""
from .checkpointing import (ResumeError, SafeCheckpointHook,
                            atomic_write_text, find_resume_checkpoint)
from .dist import CPUDistributedDataParallel, shutdown_dist
from .loops import ResumableEpochBasedTrainLoop
from .preemption import Preempted, PreemptionHook
from .runner import (SafeRunner, build_runner, config_from_args,
                     parse_tool_args)

__all__ = [
    'CPUDistributedDataParallel', 'Preempted', 'PreemptionHook',
    'ResumableEpochBasedTrainLoop', 'ResumeError', 'SafeCheckpointHook',
    'SafeRunner', 'atomic_write_text', 'build_runner', 'config_from_args',
    'find_resume_checkpoint', 'parse_tool_args', 'shutdown_dist'
]
