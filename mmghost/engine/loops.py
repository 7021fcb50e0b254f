# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""An epoch loop that resumes inside an epoch where it stopped.

mmengine 0.10.7's ``EpochBasedTrainLoop`` restarts the epoch when it is
resumed from a checkpoint written inside one (an iteration checkpoint, or
the one :class:`~mmghost.engine.PreemptionHook` writes on SIGTERM): the
batches that epoch had trained are trained again, and the run ends with
more optimizer steps than an uninterrupted one. Only its
``IterBasedTrainLoop`` skips what was trained. The loop here does that
within the epoch; :class:`~mmghost.engine.SafeRunner` builds it in place of
``EpochBasedTrainLoop``.
"""
import logging
from typing import Optional

from mmengine.logging import print_log
from mmengine.registry import LOOPS
from mmengine.runner import EpochBasedTrainLoop

__all__ = ['ResumableEpochBasedTrainLoop']

# runtime info of the message hub, saved by every checkpoint
EPOCH_ITERS_DONE = 'epoch_iters_done'
SAMPLER_SEED = 'train_sampler_seed'


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that, resumed inside an epoch, trains only the
    batches that epoch had not trained yet.

    How many batches of the current epoch are done is runtime info of the
    message hub (``epoch_iters_done``), which checkpoints save and a resume
    restores: an iteration's hooks see ``batch_idx + 1``, the epoch's end
    hooks see 0. The shuffling sampler orders an epoch by its seed and the
    epoch number (``DefaultSampler.set_epoch``); its seed is kept the same
    way (``train_sampler_seed``) and given back to the sampler on resume,
    since without ``randomness.seed`` a new process draws a new one. So the
    resumed epoch meets its batches in the order of the interrupted run, and
    its first ones are drawn from the dataloader and dropped, as
    ``IterBasedTrainLoop`` drops the iterations it has trained.
    """

    def run(self):
        self._keep_sampler_seed()
        return super().run()

    def run_epoch(self) -> None:
        hub = self.runner.message_hub
        done = hub.get_info(EPOCH_ITERS_DONE, 0)
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        if done:
            print_log(
                f'Resuming inside epoch {self._epoch + 1}: its first {done} '
                'batches were trained before the stop and are skipped',
                logger='current',
                level=logging.INFO)
        if done < len(self.dataloader):
            for idx, data_batch in enumerate(self.dataloader):
                if idx < done:
                    continue
                # what a checkpoint saved by this iteration's hooks records
                hub.update_info(EPOCH_ITERS_DONE, idx + 1)
                self.run_iter(idx, data_batch)
        # the epoch checkpoint (meta.epoch = epoch + 1) starts the next one
        hub.update_info(EPOCH_ITERS_DONE, 0)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def _keep_sampler_seed(self) -> None:
        sampler = self._shuffling_sampler()
        if sampler is None or not isinstance(getattr(sampler, 'seed', None),
                                             int):
            return
        hub = self.runner.message_hub
        resumed = hub.get_info(SAMPLER_SEED)
        if resumed is not None:
            sampler.seed = resumed
        hub.update_info(SAMPLER_SEED, sampler.seed)

    def _shuffling_sampler(self) -> Optional[object]:
        """The sampler ``DistSamplerSeedHook`` sets the epoch of."""
        loader = self.dataloader
        batch_sampler = getattr(loader, 'batch_sampler', None)
        for sampler in (getattr(loader, 'sampler', None),
                        getattr(batch_sampler, 'sampler', None)):
            if hasattr(sampler, 'set_epoch'):
                return sampler
        return None
