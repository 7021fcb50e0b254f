# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""The MMDetection backbone contract, tested once for every Ghost family.

A test class sets ``cfg`` (the registered type), ``fixture`` (the official
key/shape list), ``stage_channels`` (declared channels per width) and the
checkpoint extras the family's release carries; it inherits every test
here and adds its own.
"""
import gc
import json
import math
import os.path as osp
from copy import deepcopy

import pytest
import torch
import torch.distributed as torch_dist
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmdet.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

import mmghost  # noqa: F401  (registers the backbones)

DATA = osp.join(osp.dirname(__file__), '..', '..', 'data')
STAGE_STRIDES = (2, 4, 8, 16, 32, 32)
ALL_STAGES = (0, 1, 2, 3, 4, 5)
HEAD = ('conv_head.', 'classifier.')


def official_keys(fixture):
    with open(osp.join(DATA, fixture)) as f:
        return json.load(f)['keys']


def fake_checkpoint(path, fixture, drop=(), extra=None):
    """Random values under the fixture's keys and shapes, plus ``extra``."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in official_keys(fixture).items():
        if key in drop:
            continue
        if key.endswith('num_batches_tracked'):
            state[key] = torch.tensor(7)
        elif key.endswith('running_var'):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen)
    state.update(extra or {})
    if path.endswith('.safetensors'):
        from safetensors.torch import save_file
        save_file(state, path)
    else:
        torch.save(state, path)
    return state


def conv_linear_mflops(model, size=224):
    flops = FlopAnalyzer(model.eval(), torch.randn(1, 3, size, size))
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    by_op = flops.by_operator()
    total = sum(by_op.get(op, 0) for op in ('conv', 'linear', 'addmm'))
    return total / 1e6, flops


class GhostBackboneContract:
    cfg: dict = {}
    fixture: str = ''
    stage_channels: dict = {}
    # what the released checkpoint holds besides backbone and classifier
    checkpoint_extra = staticmethod(lambda: {})
    # a key that the release has and a renamed layer would lose
    a_released_key = ''
    # the stem's convolution and norm, by module name
    stem_conv, stem_norm = 'conv_stem', 'bn1'

    def build(self, **kwargs):
        cfg = deepcopy(self.cfg)
        cfg.update(kwargs)
        return MODELS.build(cfg)

    def test_stage_channels_and_strides(self):
        h, w = 64, 96
        for width, channels in self.stage_channels.items():
            model = self.build(widen_factor=width, out_indices=ALL_STAGES)
            model.eval()
            assert model.out_channels == channels
            assert model.out_strides == STAGE_STRIDES
            with torch.no_grad():
                outs = model(torch.randn(1, 3, h, w))
            assert isinstance(outs, tuple) and len(outs) == 6
            for out, ch, s in zip(outs, channels, STAGE_STRIDES):
                assert out.shape == (1, ch, h // s, w // s), width

    @pytest.mark.parametrize('size', [(33, 47), (65, 97), (101, 75)])
    def test_odd_input_sizes(self, size):
        model = self.build(out_indices=ALL_STAGES).eval()
        with torch.no_grad():
            outs = model(torch.randn(1, 3, *size))
        for out, s in zip(outs, STAGE_STRIDES):
            assert out.shape[-2:] == (math.ceil(size[0] / s),
                                      math.ceil(size[1] / s))

    def test_keys_match_official_release(self):
        official = official_keys(self.fixture)
        head = [k for k in official if k.startswith(HEAD)]
        assert head, 'fixture must include the classifier'
        ours = {k: list(v.shape) for k, v in
                self.build(widen_factor=1.0).state_dict().items()}
        expected = {k: v for k, v in official.items() if k not in head}
        assert sorted(ours) == sorted(expected)
        assert ours == expected

    @pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
    def test_pretrained_loads_official_checkpoint(self, tmp_path, suffix):
        path = str(tmp_path / f'official{suffix}')
        state = fake_checkpoint(
            path, self.fixture, extra=self.checkpoint_extra())
        model = self.build(init_cfg=dict(type='Pretrained', checkpoint=path))
        model.init_weights()
        for key, value in model.state_dict().items():
            if not key.endswith('num_batches_tracked'):
                assert torch.equal(value, state[key]), key

    def test_pretrained_missing_key_fails(self, tmp_path):
        path = str(tmp_path / 'broken.pth')
        fake_checkpoint(path, self.fixture, drop=(self.a_released_key, ),
                        extra=self.checkpoint_extra())
        model = self.build(init_cfg=dict(type='Pretrained', checkpoint=path))
        with pytest.raises(ValueError, match=r'1 missing keys: ' +
                           self.a_released_key.replace('.', r'\.')):
            model.init_weights()
        # all or nothing: not even the keys that were there got loaded
        assert not torch.equal(
            model.get_submodule(self.stem_conv).weight,
            torch.load(path, weights_only=True)[f'{self.stem_conv}.weight'])

    def test_pretrained_wrong_width_fails(self, tmp_path):
        path = str(tmp_path / 'official_1.0x.pth')
        fake_checkpoint(path, self.fixture)
        model = self.build(
            widen_factor=1.3,
            init_cfg=dict(type='Pretrained', checkpoint=path))
        name = self.cfg['type']
        with pytest.raises(ValueError,
                           match=rf'{name}\(widen_factor=1\.3\).*shape '
                           r'mismatches'):
            model.init_weights()

    def test_default_init(self):
        """Kaiming normal (fan_out, ReLU gain) for every conv, zero conv
        biases, weight 1 and bias 0 for every norm, whatever the tensors
        held before (torch's own defaults would pass a norm check)."""
        model = self.build()
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(0.5)
        model.init_weights()
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        assert convs
        large = []  # enough values to estimate a std within a few percent
        for conv in convs:
            weight = conv.weight
            assert not torch.any(weight == 0.5)
            if conv.bias is not None:
                assert torch.all(conv.bias == 0)
            fan_out = weight.shape[0] * weight[0, 0].numel()
            if weight.numel() >= 4000:
                large.append((weight, math.sqrt(2.0 / fan_out)))
        assert len(large) >= len(convs) // 4
        for weight, std in large:
            assert float(weight.std()) == pytest.approx(std, rel=0.1)
            assert abs(float(weight.mean())) < 0.1 * std
        norms = [m for m in model.modules()
                 if isinstance(m, (_BatchNorm, nn.GroupNorm))]
        assert norms
        for norm in norms:
            assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)

    @pytest.mark.parametrize('frozen', [-1, 0, 2, 5])
    @pytest.mark.parametrize('out_indices', [ALL_STAGES, (1, 2)])
    def test_frozen_stages(self, frozen, out_indices):
        # frozen: eval mode and no gradient; past the last tap: no gradient
        model = self.build(frozen_stages=frozen, out_indices=out_indices)
        last = out_indices[-1]
        assert model.train() is model
        for stage in range(6):
            for module in model.stage_modules(stage):
                params = list(module.parameters())
                assert params
                for p in params:
                    assert p.requires_grad == (frozen < stage <= last)
                for m in module.modules():
                    if isinstance(m, _BatchNorm):
                        assert m.training == (stage > frozen)
        stem_norm = model.get_submodule(self.stem_norm)
        stem_conv = model.get_submodule(self.stem_conv)
        assert stem_norm.training == (frozen < 0)
        assert stem_conv.weight.requires_grad == (frozen < 0)

    def test_untapped_stages_untrainable_from_construction(self):
        # before train(): an optimizer or DDP wrapper built on the fresh
        # model must already see the stages past the last tap as frozen
        model = self.build(out_indices=(1, 2, 3))
        trainable = {n for n, p in model.named_parameters()
                     if p.requires_grad}
        assert trainable == self.stage_parameter_names(model, range(4))
        # and train() puts it back if something switched them on
        model.requires_grad_(True)
        model.train()
        assert {n for n, p in model.named_parameters()
                if p.requires_grad} == trainable

    @staticmethod
    def stage_parameter_names(model, stages):
        modules = [m for s in stages for m in model.stage_modules(s)]
        ids = {id(p) for m in modules for p in m.parameters()}
        return {n for n, p in model.named_parameters() if id(p) in ids}

    @pytest.mark.parametrize('out_indices', [None, (0, ), (1, 2, 3),
                                             (2, 5)])
    def test_stages_past_last_tap_not_executed(self, out_indices):
        kwargs = {} if out_indices is None else dict(out_indices=out_indices)
        model = self.build(**kwargs).eval()
        last = model.out_indices[-1]
        calls = {stage: 0 for stage in range(6)}

        def count(stage):
            def hook(module, args, output):
                calls[stage] += 1
            return hook

        for stage in range(6):
            for module in model.stage_modules(stage):
                for m in module.modules():
                    m.register_forward_hook(count(stage))
        with torch.no_grad():
            outs = model(torch.randn(1, 3, 64, 64))
        assert len(outs) == len(model.out_indices)
        assert [s for s in range(6) if calls[s]] == list(range(last + 1))

    def test_norm_eval(self):
        model = self.build(norm_eval=True)
        model.train()
        bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        assert bns and not any(m.training for m in bns)
        assert model.training

    @pytest.mark.parametrize('out_indices', [None, (1, 2, 3)])
    def test_every_trainable_parameter_gets_gradient(self, out_indices):
        # trainable is exactly what runs: stages 0 up to the last tap (all
        # of it: attention branches and SE included)
        kwargs = {} if out_indices is None else dict(out_indices=out_indices)
        model = self.build(**kwargs).train()
        run = range(model.out_indices[-1] + 1)
        trainable = {n for n, p in model.named_parameters()
                     if p.requires_grad}
        assert trainable == self.stage_parameter_names(model, run)
        outs = model(torch.randn(2, 3, 64, 64))
        sum(o.mean() for o in outs).backward()
        with_grad = {n for n, p in model.named_parameters()
                     if p.grad is not None}
        assert with_grad == trainable

    def test_ddp_needs_no_find_unused_parameters(self, tmp_path):
        # DDP registers the parameters that require grad when it wraps the
        # model (mmengine wraps before train()) and, from the second
        # iteration on, fails if one of them got no gradient; one gloo
        # process is enough to see it
        torch_dist.init_process_group(
            'gloo', init_method=f'file://{tmp_path}/store', rank=0,
            world_size=1)
        model = outs = None
        try:
            model = DistributedDataParallel(
                self.build(frozen_stages=0, out_indices=(1, 2, 3)))
            model.train()
            for _ in range(2):
                outs = model(torch.randn(2, 3, 64, 64))
                sum(o.mean() for o in outs).backward()
        finally:
            # free DDP's reducer while its gloo group is alive: freed at the
            # function's exit, after destroy_process_group, gloo's destructor
            # once hung joining its threads and stopped a suite run
            del model, outs
            gc.collect()
            torch_dist.destroy_process_group()

    def test_with_cp_matches_plain(self):
        torch.manual_seed(0)
        plain = self.build().train()
        ckpt = self.build(with_cp=True).train()
        ckpt.load_state_dict(plain.state_dict())
        x = torch.randn(2, 3, 64, 64)  # does not require grad
        outs_plain, outs_cp = plain(x), ckpt(x)
        for a, b in zip(outs_plain, outs_cp):
            torch.testing.assert_close(a, b)
        sum(o.square().mean() for o in outs_plain).backward()
        sum(o.square().mean() for o in outs_cp).backward()
        grads_cp = dict(ckpt.named_parameters())
        for name, p in plain.named_parameters():
            if not p.requires_grad:  # a stage past the last tap
                assert grads_cp[name].grad is None, name
                continue
            assert grads_cp[name].grad is not None, name
            torch.testing.assert_close(
                p.grad, grads_cp[name].grad, rtol=1e-4, atol=1e-6)

    def test_with_cp_checkpoints(self):
        """with_cp recomputes the blocks in backward instead of keeping
        their activations: far fewer bytes are saved for backward (the
        same numbers come out, above)."""

        def saved_bytes(model):
            sizes = []

            def pack(tensor):
                sizes.append(tensor.numel() * tensor.element_size())
                return tensor

            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                outs = model(torch.randn(2, 3, 64, 64))
            sum(o.mean() for o in outs).backward()
            return sum(sizes)

        plain = saved_bytes(self.build().train())
        checkpointed = saved_bytes(self.build(with_cp=True).train())
        assert checkpointed < 0.2 * plain, (checkpointed, plain)

    @pytest.mark.parametrize('kwargs, match', [
        (dict(widen_factor=0), r'widen_factor must be a number > 0, but '
         r'got widen_factor=0'),
        (dict(widen_factor=-1.1), r'widen_factor=-1\.1'),
        (dict(out_indices=(1, 6)), r'range\(0, 6\).*out_indices=\(1, 6\)'),
        (dict(out_indices=(3, 1)), r'strictly increasing.*\(3, 1\)'),
        (dict(out_indices=(1, 1)), r'out_indices=\(1, 1\)'),
        (dict(out_indices=()), r'non-empty'),
        (dict(frozen_stages=6), r'range\(-1, 6\).*frozen_stages=6'),
        (dict(frozen_stages=-2), r'frozen_stages=-2'),
        (dict(norm_cfg=dict(type='LN')), r"one of \('BN'.*'LN'"),
    ])
    def test_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            self.build(**kwargs)

    def test_no_legacy_pretrained_argument(self):
        with pytest.raises(TypeError, match='pretrained'):
            self.build(pretrained='x.pth')
