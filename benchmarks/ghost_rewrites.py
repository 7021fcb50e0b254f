# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Which graph rewrites of GhostNet 1.1x make it faster in OpenVINO (CPU)?

Measures, in one process, the backbone alone (``BackboneForOnnx``) converted
by ``openvino.convert_model`` at a static input shape and compiled by
``mmghost.deployment.openvino.compile_ir`` (LATENCY hint, FP32 arithmetic,
torch's thread count), in FP32 and NNCF INT8 (``quantize_int8`` calibrated
on 8 shipped images preprocessed as RetinaNet's config does, as
``benchmarks/bench.py`` does; every convolution quantized):

* ``shipped``: ``switch_to_deploy()`` as the package does it (norms folded,
  ``SplitGhostBottleneck`` on maps of >= 100x100 pixels, F.hardsigmoid SE);
* ``plain``: norms folded only (every Ghost module concatenates);
* ``A``: ``plain`` with each Ghost module's cheap depthwise conv + concat
  replaced by ONE depthwise conv of channel multiplier 2 (output 2c is the
  identity of intrinsic channel c, 2c+1 its cheap conv), then ReLU where the
  module has one. Its outputs are the module's up to an interleaving of
  channels; a real rewrite would fold that permutation into the next
  layers' weights, which changes no op shape, so the timing graph keeps the
  weights as they are (the numbers differ, the op structure is the one a
  real rewrite would have). ``check_rewrite_a`` verifies on real weights
  that the op computes the module's output up to that permutation;
* ``B-relu6``: ``shipped`` with the SE gate as ``relu6(g + 3) / 6``;
* ``B-clamp``: ``shipped`` with hard-sigmoid's ``/6`` and ``+0.5`` folded
  into ``conv_expand`` (same outputs): gate = ``clamp(conv'(..), 0, 1)``;
* ``A+B-clamp``: both;
* ``MobileNetV2`` (``out_indices=(1, 2, 4, 7)``, ``fuse_conv_bn``), the
  reference row.

Each round runs one inference of every variant and precision in turn
(interleaved), after 2 warm-up runs each; medians are reported with ratios
to ``shipped`` and to MobileNetV2 of the same precision. It then profiles
``shipped`` with ``PERF_COUNT`` at every shape and aggregates the per-node
``real_time`` by node type and by exec type.

Run (about 6 minutes on 2 cores; nothing else should run meanwhile)::

    python benchmarks/ghost_rewrites.py --shapes 320x320 1333x800 \
        --rounds 20 9 --out benchmarks/results/openvino/rewrites.md

``--shapes`` are WxH; ``--rounds`` one count per shape.
"""
import argparse
import collections
import copy
import platform
import statistics
import subprocess
import time
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

import mmghost  # noqa: F401  (registers the backbones)
from mmghost.deployment import BackboneForOnnx
from mmghost.deployment.openvino import compile_ir, quantize_int8
from mmghost.models.backbones.base import GhostBackboneBase
from mmghost.models.backbones.ghostnet import SqueezeExcite
from mmghost.models.layers import GhostModule

# this script's folder is on sys.path when it runs
from bench import calibration_batches  # noqa: E402

# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


def build(cfg):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.eval()  # MobileNetV2.train returns None
    return model


def ghostnet(split=True):
    """GhostNet 1.1x, deployed as the package does (``split``) or with the
    norms folded only."""
    m = build(dict(type='GhostNet', widen_factor=1.1))
    if split:
        m.switch_to_deploy()
    else:
        GhostBackboneBase.switch_to_deploy(m)
    return m


def mobilenetv2():
    from mmcv.cnn import fuse_conv_bn
    return fuse_conv_bn(build(dict(type='MobileNetV2',
                                   out_indices=(1, 2, 4, 7))))


def interleaved_dw(module: GhostModule) -> nn.Conv2d:
    """The channel-multiplier-2 depthwise conv of rewrite A for a deployed
    ``module``: output 2c is intrinsic channel c, 2c+1 its cheap conv."""
    cheap = module.cheap_operation[0]
    init = cheap.in_channels
    if cheap.out_channels != init:
        raise ValueError('rewrite A needs ratio=2 Ghost modules')
    k = cheap.kernel_size[0]
    conv = nn.Conv2d(init, 2 * init, k, 1, k // 2, groups=init, bias=True)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[0::2, 0, k // 2, k // 2] = 1.
        conv.weight[1::2] = cheap.weight
        conv.bias[1::2] = cheap.bias
    return conv


def _forward_a(self, x):
    y = self.dw2(self.primary_conv(x))
    if self.act_a:
        y = F.relu(y)
    if y.shape[1] != self.out_channels:  # odd out: the last ghost channel
        y = y[:, :self.out_channels]
    return y


def rewrite_a(backbone: nn.Module) -> int:
    """Rewrite A on every Ghost module of a deployed ``backbone``, in place
    (forward swapped per instance); the number rewritten."""
    n = 0
    for mod in backbone.modules():
        if type(mod) is GhostModule:
            if not mod.deploy:
                raise ValueError('rewrite A needs deployed Ghost modules')
            mod.dw2 = interleaved_dw(mod)
            mod.act_a = isinstance(mod.cheap_operation[-1], nn.ReLU)
            mod.forward = types.MethodType(_forward_a, mod)
            n += 1
    return n


def _gate_relu6(self, pooled):
    return F.relu6(self.conv_expand(self.act1(self.conv_reduce(pooled))) +
                   3.) / 6.


def _gate_clamp(self, pooled):
    return torch.clamp(self.conv_folded(self.act1(self.conv_reduce(pooled))),
                       0., 1.)


def rewrite_b(backbone: nn.Module, form: str) -> int:
    """The SE gate of every ``SqueezeExcite`` as ``form`` ('relu6' or
    'clamp', the latter with /6 and +0.5 folded into ``conv_expand``)."""
    n = 0
    for mod in backbone.modules():
        if isinstance(mod, SqueezeExcite):
            if form == 'relu6':
                mod.gate = types.MethodType(_gate_relu6, mod)
            elif form == 'clamp':
                c = mod.conv_expand
                folded = copy.deepcopy(c)
                with torch.no_grad():
                    folded.weight.copy_(c.weight / 6.)
                    folded.bias.copy_(c.bias / 6. + 0.5)
                mod.conv_folded = folded
                mod.gate = types.MethodType(_gate_clamp, mod)
            else:
                raise ValueError(f'form {form!r}: relu6 or clamp')
            # forward reads self.gate, so the instance method applies there
            n += 1
    return n


def variants():
    out = collections.OrderedDict()
    out['shipped'] = ghostnet()
    out['plain'] = ghostnet(split=False)
    m = ghostnet(split=False)
    rewrite_a(m)
    out['A'] = m
    m = ghostnet()
    rewrite_b(m, 'relu6')
    out['B-relu6'] = m
    m = ghostnet()
    rewrite_b(m, 'clamp')
    out['B-clamp'] = m
    m = ghostnet(split=False)
    rewrite_a(m)
    rewrite_b(m, 'clamp')
    out['A+B-clamp'] = m
    out['MobileNetV2'] = mobilenetv2()
    return out


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


def check_rewrite_a():
    """Rewrite A against the module on real (random, BN-folded) weights:
    equal up to the channel interleaving, with and without ReLU."""
    lines = []
    torch.manual_seed(0)
    for act in (True, False):
        mod = GhostModule(24, 72, act=act)
        for bn in (mod.primary_conv[1], mod.cheap_operation[1]):
            with torch.no_grad():
                bn.running_mean.uniform_(-1, 1)
                bn.running_var.uniform_(0.5, 2)
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-1, 1)
        mod.eval()
        x = torch.randn(2, 24, 17, 23)
        with torch.no_grad():
            ref = mod(x)
            mod.switch_to_deploy()
            rewrite_a(mod)
            got = mod(x)
        init = 36
        perm = [i for c in range(init) for i in (c, init + c)]
        err = (got - ref[:, perm]).abs().max().item()
        lines.append(f'GhostModule(24, 72, act={act}): max |A - permuted '
                     f'original| = {err:.2e} (max |original| '
                     f'{ref.abs().max().item():.2f})')
        assert err < 1e-4, lines[-1]
    return lines


def check_rewrite_b():
    lines = []
    for form in ('relu6', 'clamp'):
        torch.manual_seed(0)
        se = SqueezeExcite(72).eval()
        x = torch.randn(2, 72, 9, 9)
        with torch.no_grad():
            ref = se(x)
            rewrite_b(nn.Sequential(se), form)
            err = (se(x) - ref).abs().max().item()
        lines.append(f'SE gate {form}: max |B - original| = {err:.2e}')
        assert err < 1e-5, lines[-1]
    return lines


# ---------------------------------------------------------------------------
# OpenVINO
# ---------------------------------------------------------------------------


def convert(module, x):
    import openvino as ov
    with torch.no_grad():
        return ov.convert_model(
            BackboneForOnnx(module).eval(),
            example_input=x,
            input=[list(x.shape)])


def profile(compiled, x, runs=5):
    """Per node type and per exec type: total ms per inference, over
    ``runs`` inferences (after one warm-up)."""
    req = compiled.create_infer_request()
    req.infer({0: x})
    by_type = collections.Counter()
    by_exec = collections.Counter()
    counts = collections.Counter()
    for _ in range(runs):
        req.infer({0: x})
        for p in req.get_profiling_info():
            if p.status != p.Status.EXECUTED:
                continue
            ms = p.real_time.total_seconds() * 1e3 / runs
            by_type[p.node_type] += ms
            by_exec[p.exec_type] += ms
            counts[p.node_type] += 1
    for k in counts:
        counts[k] //= runs
    return by_type, by_exec, counts


def runtime_ops(compiled):
    """(type, original layer names) of the compiled graph's nodes."""
    ops = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        layer_type = rt['layerType'].astype(str) if 'layerType' in rt else ''
        names = (rt['originalLayersNames'].astype(str)
                 if 'originalLayersNames' in rt else '')
        ops.append((layer_type, names))
    return ops


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shapes', nargs='+', default=['320x320', '1333x800'],
                   help='input sizes, WxH')
    p.add_argument('--rounds', nargs='+', type=int, default=[15, 7],
                   help='timed rounds, one per shape')
    p.add_argument('--out', help='write the report (markdown) here too')
    args = p.parse_args()
    if len(args.rounds) != len(args.shapes):
        p.error('--rounds needs one count per --shapes entry')
    import openvino as ov
    report = []

    def say(line=''):
        print(line, flush=True)
        report.append(line)

    cpu = [l.split(':', 1)[1].strip() for l in subprocess.run(
        ['lscpu'], capture_output=True, text=True).stdout.splitlines()
           if l.startswith('Model name')]
    say('# GhostNet 1.1x graph rewrites in OpenVINO (CPU plugin)')
    say()
    say(f'Command: `python benchmarks/ghost_rewrites.py --shapes '
        f'{" ".join(args.shapes)} --rounds '
        f'{" ".join(map(str, args.rounds))}`')
    say(f'Machine: {cpu[0] if cpu else platform.processor()}, '
        f'{torch.get_num_threads()} threads; OpenVINO {ov.__version__}, '
        f'torch {torch.__version__}, Python {platform.python_version()}')
    say()
    say('Checks (PyTorch):')
    for line in check_rewrite_a() + check_rewrite_b():
        say(f'- {line}')

    models = variants()
    for shape, rounds in zip(args.shapes, args.rounds):
        w, h = map(int, shape.split('x'))
        x = torch.randn(1, 3, h, w)
        xn = x.numpy()
        t0 = time.time()
        batches = calibration_batches((h, w))
        compiled = collections.OrderedDict()
        ir, quantized = {}, {}
        for name, m in models.items():
            ir[name] = convert(m, x)
            quantized[name] = quantize_int8(ir[name], batches,
                                            keep_fp32='none')
            compiled[(name, 'FP32')] = compile_ir(ir[name])
            compiled[(name, 'INT8')] = compile_ir(quantized[name])
        print(f'{shape}: converted and quantized in {time.time() - t0:.0f} s',
              flush=True)
        reqs = {k: c.create_infer_request() for k, c in compiled.items()}
        for r in reqs.values():
            for _ in range(2):
                r.infer({0: xn})
        times = collections.defaultdict(list)
        for _ in range(rounds):
            for k, r in reqs.items():
                t = time.perf_counter()
                r.infer({0: xn})
                times[k].append(time.perf_counter() - t)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        say()
        say(f'## {w}x{h} (input (1, 3, {h}, {w})), {rounds} interleaved '
            'rounds, medians')
        say()
        say('| model | precision | latency (ms) | / shipped | '
            '/ MobileNetV2 |')
        say('|---|---|---:|---:|---:|')
        for prec in ('FP32', 'INT8'):
            for name in models:
                ms = med[(name, prec)]
                say(f'| {name} | {prec} | {ms:.2f} | '
                    f'{ms / med[("shipped", prec)]:.3f} | '
                    f'{ms / med[("MobileNetV2", prec)]:.2f} |')

        # PERF_COUNT profiles: every variant compactly, shipped in full
        core = ov.Core()
        profiles = {}
        for (name, prec) in compiled:
            src = ir[name] if prec == 'FP32' else quantized[name]
            pc = core.compile_model(src, 'CPU', {
                'INFERENCE_PRECISION_HINT': 'f32',
                'PERFORMANCE_HINT': 'LATENCY',
                'INFERENCE_NUM_THREADS': torch.get_num_threads(),
                'PERF_COUNT': 'YES'})
            profiles[(name, prec)] = profile(pc, xn) + (pc, )
        cols = ['Convolution', 'GroupConvolution', 'Concat', 'Subgraph',
                'Reorder', 'ReduceMean', 'Eltwise', 'StridedSlice']
        say()
        say(f'### PERF_COUNT per node type, every variant, {w}x{h} '
            '(ms per inference, mean of 5; sum of node real_time)')
        say()
        say('| model | precision | ' + ' | '.join(cols) +
            ' | other | sum |')
        say('|---|---|' + '---:|' * (len(cols) + 2))
        for (name, prec), (by_type, _, _, _) in profiles.items():
            other = sum(v for k, v in by_type.items() if k not in cols)
            say(f'| {name} | {prec} | ' +
                ' | '.join(f'{by_type.get(k, 0.):.2f}' for k in cols) +
                f' | {other:.2f} | {sum(by_type.values()):.2f} |')
        for name in ('A', 'B-relu6'):
            for prec in ('FP32', 'INT8'):
                pc = profiles[(name, prec)][3]
                req = pc.create_infer_request()
                req.infer({0: xn})
                ex = collections.Counter()
                for q in req.get_profiling_info():
                    if q.status == q.Status.EXECUTED and q.node_type in (
                            'GroupConvolution', 'Subgraph', 'Eltwise'):
                        ex[f'{q.node_type}/{q.exec_type}'] += (
                            q.real_time.total_seconds() * 1e3)
                say()
                say(f'{name} {prec}: GroupConvolution/Subgraph/Eltwise ms '
                    'by exec type (one inference): ' + ', '.join(
                        f'{k} {v:.2f}' for k, v in ex.most_common()))

        for prec in ('FP32', 'INT8'):
            by_type, by_exec, counts, c = profiles[('shipped', prec)]
            total = sum(by_type.values())
            say()
            say(f'### PERF_COUNT profile, shipped GhostNet 1.1x {prec}, '
                f'{w}x{h} (sum of node real_time {total:.2f} ms per '
                'inference, mean of 5)')
            say()
            say('| node type | nodes | ms | share |')
            say('|---|---:|---:|---:|')
            for t, ms in by_type.most_common():
                say(f'| {t} | {counts[t]} | {ms:.2f} | {ms / total:.1%} |')
            say()
            say('| exec type | ms | share |')
            say('|---|---:|---:|')
            for t, ms in by_exec.most_common(12):
                say(f'| {t} | {ms:.2f} | {ms / total:.1%} |')
            # is the SE multiply fused?
            ops = runtime_ops(c)
            se_mul = [o for o in ops if '.se/aten::mul' in o[1]]
            say()
            say(f'Runtime-graph nodes whose original layers include an SE '
                f'Multiply: {len(se_mul)}; their types: '
                f'{dict(collections.Counter(o[0] for o in se_mul))}')
            req = c.create_infer_request()
            req.infer({0: xn})
            reorders = [(q.node_name, q.real_time.total_seconds() * 1e3)
                        for q in req.get_profiling_info()
                        if q.node_type == 'Reorder'
                        and q.status == q.Status.EXECUTED]
            say()
            say(f'Executed Reorder nodes ({len(reorders)}, one inference): ' +
                '; '.join(f'`{n[:90]}` {ms:.2f} ms' for n, ms in reorders))
            if se_mul:
                say(f'(e.g. a {se_mul[0][0]} node made of: '
                    f'`{se_mul[0][1][:400]}`)')
    if args.out:
        with open(args.out, 'w') as f:
            f.write('\n'.join(report) + '\n')


if __name__ == '__main__':
    main()
