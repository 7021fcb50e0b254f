# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""The MMDetection backbone contract shared by the Ghost network families.

A family module builds ``conv_stem``/``bn1``/``act1`` and ``blocks`` with the
upstream parameter names and declares ``stage_ends``; this base turns that
into stages with ``out_indices``, ``frozen_stages``, ``norm_eval``,
``with_cp`` and a checkpoint load that refuses to silently skip weights.
``forward`` runs the stages up to the highest of ``out_indices`` only; the
later stages stay built (checkpoints load strictly) but are not trainable.
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from mmghost.checkpoint import load_backbone_checkpoint
from ..layers import NORM_TYPES

__all__ = ['GhostBackboneBase']


class GhostBackboneBase(BaseModule):
    """Stages, freezing and strict pretrained loading for Ghost backbones.

    Subclasses set ``stage_ends`` (the last ``blocks.{i}`` of each stage),
    ``ignored_checkpoint_prefixes`` (classifier parts of the ImageNet
    checkpoint) and, while building, ``stage_channels``/``stage_strides``;
    they call ``_freeze_stages()`` once every module is built, so that the
    parameters that get no gradient are marked before an optimizer or a
    DDP wrapper sees them.

    ``forward`` executes :attr:`run_stages` only, the stages up to the
    highest of ``out_indices``. The stages after it stay built, so a full
    checkpoint loads strictly and ``frozen_stages``/``norm_eval`` keep their
    meaning, but they never run: their parameters get
    ``requires_grad=False`` (re-applied by ``train()``), so that every
    trainable parameter receives a gradient and DDP needs no
    ``find_unused_parameters``.

    The registered backbones take these arguments, with the defaults given
    here, and document their own (and where they differ) themselves.

    Args:
        widen_factor (float): Width multiplier; each family rounds the scaled
            widths as its published weights were made. Default: 1.0.
        out_indices (Sequence[int]): Stages whose outputs ``forward``
            returns, strictly increasing. ``forward`` stops after the
            highest stage listed: the stages after it are built (a full
            checkpoint loads) but never run, and their parameters are not
            trainable (``requires_grad=False``, re-applied by ``train()``).
        frozen_stages (int): Freeze stages 0..k (-1: none): eval mode and
            no gradient, the stem included. Default: -1.
        norm_cfg (dict): Norm layers: BN, SyncBN or GN (whose ``num_groups``
            must divide every norm layer's channels). Default: BN.
        norm_eval (bool): Keep BN layers in eval mode during training.
            Default: False.
        with_cp (bool): Gradient checkpointing per block. Default: False.
        deploy (bool): Build the inference structure that
            :meth:`switch_to_deploy` makes (every norm folded into its conv),
            to load a converted checkpoint. Default: False.
        init_cfg (dict | list[dict], optional): Default: Kaiming for convs,
            constant 1 for norms. ``dict(type='Pretrained', checkpoint=...)``
            loads ImageNet weights strictly (see :meth:`init_weights`).
    """

    stage_ends: Tuple[int, ...] = ()
    ignored_checkpoint_prefixes: Tuple[str, ...] = ('conv_head.',
                                                    'classifier.')
    ignored_checkpoint_suffixes: Tuple[str, ...] = ()

    def __init__(self,
                 widen_factor: float,
                 out_indices: Sequence[int],
                 frozen_stages: int,
                 norm_cfg: dict,
                 norm_eval: bool,
                 with_cp: bool,
                 deploy: bool = False,
                 init_cfg=None):
        if init_cfg is None:
            init_cfg = [
                dict(type='Kaiming', layer='Conv2d'),
                dict(
                    type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
            ]
        super().__init__(init_cfg)
        num_stages = len(self.stage_ends)
        if isinstance(widen_factor, bool) or not isinstance(
                widen_factor, (int, float)) or widen_factor <= 0:
            raise ValueError('widen_factor must be a number > 0, '
                             f'but got widen_factor={widen_factor!r}')
        out_indices = tuple(out_indices) if isinstance(
            out_indices, (list, tuple)) else out_indices
        if (not isinstance(out_indices, tuple) or not out_indices
                or not all(isinstance(i, int) for i in out_indices)
                or not all(0 <= i < num_stages for i in out_indices)
                or list(out_indices) != sorted(set(out_indices))):
            raise ValueError(
                'out_indices must be a non-empty, strictly increasing '
                f'sequence of stage indices in range(0, {num_stages}), '
                f'but got out_indices={out_indices!r}')
        if (isinstance(frozen_stages, bool)
                or not isinstance(frozen_stages, int)
                or not -1 <= frozen_stages < num_stages):
            raise ValueError(
                f'frozen_stages must be an int in range(-1, {num_stages}) '
                '(-1 freezes nothing, k freezes stages 0..k), '
                f'but got frozen_stages={frozen_stages!r}')
        if not isinstance(norm_cfg, dict) or norm_cfg.get(
                'type') not in NORM_TYPES:
            raise ValueError(f'norm_cfg type must be one of {NORM_TYPES}, '
                             f'but got norm_cfg={norm_cfg!r}')
        self.widen_factor = widen_factor
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_cfg = norm_cfg
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.deploy = deploy
        self.stage_channels: List[int] = []
        self.stage_strides: List[int] = []

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """Channels of the tensors ``forward`` returns, in order."""
        return tuple(self.stage_channels[i] for i in self.out_indices)

    @property
    def out_strides(self) -> Tuple[int, ...]:
        """Strides of the tensors ``forward`` returns, in order."""
        return tuple(self.stage_strides[i] for i in self.out_indices)

    @property
    def run_stages(self) -> range:
        """The stages ``forward`` executes: 0 up to the highest tap."""
        return range(max(self.out_indices) + 1)

    def stage_blocks(self, stage: int) -> range:
        """Indices ``i`` of the ``blocks.{i}`` that make up ``stage``."""
        start = 0 if stage == 0 else self.stage_ends[stage - 1] + 1
        return range(start, self.stage_ends[stage] + 1)

    def stage_modules(self, stage: int) -> List[nn.Module]:
        modules = [self.blocks[i] for i in self.stage_blocks(stage)]
        if stage == 0:
            modules = [self.conv_stem, self.bn1] + modules
        return modules

    def _run(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and self.training and torch.is_grad_enabled():
            # Non-reentrant checkpointing: the reentrant variant returns no
            # gradient for the block's parameters when ``x`` itself does not
            # require grad (e.g. right after a frozen stage or the image).
            return cp.checkpoint(block, x, use_reentrant=False)
        return block(x)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        # Stem
        x = self.act1(self.bn1(self.conv_stem(x)))
        # Stages
        outs = []
        for stage in self.run_stages:
            for i in self.stage_blocks(stage):
                for block in self.blocks[i]:
                    x = self._run(block, x)
            if stage in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def switch_to_deploy(self):
        """Fold every norm into its convolution, in place, irreversibly.

        The outputs equal eval mode's (up to float rounding); the structure
        is then the one ``deploy=True`` builds, so a converted checkpoint
        loads into a model built from its config with ``deploy=True``.
        Needs BatchNorm (GN/SyncBN in training mode cannot be folded).
        """
        if self.deploy:
            return
        self.eval()
        self._fold_norms()
        self.deploy = True
        self._freeze_stages()  # the fused convs are new parameters

    def _fold_norms(self):
        """Fold each norm into its conv (the family's ``switch_to_deploy``
        of its blocks)."""
        raise NotImplementedError

    def _freeze_stages(self):
        """Frozen stages: eval mode, no gradient. Stages that never run: no
        gradient (their norms are never called, so their mode is moot)."""
        for stage in range(len(self.stage_ends)):
            frozen = stage <= self.frozen_stages
            if not frozen and stage in self.run_stages:
                continue
            for module in self.stage_modules(stage):
                if frozen:
                    module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def init_weights(self):
        """Default init, or a strict load of a ``Pretrained`` init_cfg.

        mmengine's own ``Pretrained`` init loads with ``strict=False`` and
        only logs missing keys, so a renamed layer or a checkpoint of another
        width would train from scratch unnoticed. Here every backbone
        parameter and buffer must be found with the right shape, else
        ``ValueError``; as the checkpoint then sets every weight, the other
        entries of ``init_cfg`` have nothing left to initialise.
        """
        cfgs = self.init_cfg
        cfgs = [cfgs] if isinstance(cfgs, dict) else list(cfgs or [])
        pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
        if not pretrained:
            super().init_weights()
            return
        pretrained = pretrained[-1]
        load_backbone_checkpoint(
            self,
            pretrained['checkpoint'],
            prefix=pretrained.get('prefix'),
            map_location=pretrained.get('map_location', 'cpu'),
            ignored_prefixes=self.ignored_checkpoint_prefixes,
            ignored_suffixes=self.ignored_checkpoint_suffixes)
