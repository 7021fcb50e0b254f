# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Side-by-side speed and memory of GhostNet against mmdet's baselines.

    python benchmarks/bench.py [--device cpu|cuda] [--quick] [--compile]
                               [--onnxruntime] [--openvino] [--sizes ...]
                               [--detectors ...] [--sections ...]
                               [--out benchmarks/results]

Every model of a section is timed in the same process, interleaved (one
forward of each model per round, so drifts of the machine hit all alike),
after warm-up, and reported as medians with ratios to MobileNetV2 given the
same treatment. Deploy mode means GhostNet's ``switch_to_deploy()`` and, for
every other model, mmcv's ``fuse_conv_bn``; each deployed model runs in the
faster of the two memory formats (measured). ``--compile`` adds the
deployed backbones under ``torch.compile`` (inductor with weight freezing,
and on CPU its C++ wrapper); ``--onnxruntime`` (CPU only) adds them
exported to ONNX and run by onnxruntime with as many threads as torch,
GhostNet with its channels padded to the CPU's SIMD block
(``mmghost.deployment.pad_channels``; MobileNetV2's widths are multiples of 8
already). ``--openvino`` (CPU only) adds GhostNet 1.1x and MobileNetV2,
as backbones and in RetinaNet (GhostNet also with GhostConv FPN/head),
deployed and converted to OpenVINO IRs, FP32 and NNCF INT8 (calibrated on 8
shipped images), each runtime a timing group of its own, with each IR's
speed-up over the same model in PyTorch eager. Peak memory is measured
with each model in its own process. ``--sizes`` and ``--detectors`` pick
the input sizes and detectors timed.
Writes ``{device}.md``, ``{device}.json`` and ``{device}.png`` (latency
against FLOPs) under ``--out``.
"""
import argparse
import copy
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import time

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SIZES = {'1333x800': (800, 1333), '320x320': (320, 320)}

# name: (backbone cfg, FPN in_channels, deployable by switch_to_deploy)
BACKBONES = {
    'GhostNet 1.0x': (dict(type='GhostNet', widen_factor=1.0),
                      [24, 40, 112, 160]),
    'GhostNet 1.1x': (dict(type='GhostNet', widen_factor=1.1),
                      [28, 44, 124, 176]),
    'GhostNet 1.3x': (dict(type='GhostNet', widen_factor=1.3),
                      [32, 52, 144, 208]),
    'MobileNetV2 1.0x': (dict(type='MobileNetV2', out_indices=(1, 2, 4, 7)),
                         [24, 32, 96, 1280]),
    'ResNet-18': (dict(type='ResNet', depth=18, norm_eval=True,
                       out_indices=(0, 1, 2, 3)), [64, 128, 256, 512]),
    'ResNet-50': (dict(type='ResNet', depth=50, norm_eval=True,
                       out_indices=(0, 1, 2, 3)), [256, 512, 1024, 2048]),
}
BASELINE = 'MobileNetV2 1.0x'
SECTIONS = ['backbones', 'detectors', 'train', 'memory']
UNPADDED = 'onnxruntime (not padded)'
# what --openvino converts (backbones, and in RetinaNet)
OPENVINO_MODELS = ('GhostNet 1.1x', 'MobileNetV2 1.0x')
DETECTORS = {
    'RetinaNet': 'configs/retinanet_ghostnet_fpn.py',
    'Faster R-CNN': 'configs/faster-rcnn_ghostnet_fpn.py',
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument(
        '--quick', action='store_true', help='fewer rounds (smoke run)')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='also time the deployed backbones under torch.compile '
        '(inductor, frozen weights)')
    parser.add_argument(
        '--onnxruntime',
        action='store_true',
        help='also time the deployed backbones exported to ONNX and run by '
        'onnxruntime (needs the [onnx] extra)')
    parser.add_argument(
        '--openvino',
        action='store_true',
        help='also time GhostNet 1.1x and MobileNetV2 (backbones and '
        'RetinaNet) as OpenVINO IRs, FP32 and INT8 (needs the [openvino] '
        'extra)')
    parser.add_argument(
        '--sections',
        nargs='+',
        default=SECTIONS,
        choices=SECTIONS)
    parser.add_argument(
        '--sizes', nargs='+', default=list(SIZES), choices=list(SIZES))
    parser.add_argument(
        '--detectors',
        nargs='+',
        default=list(DETECTORS),
        choices=list(DETECTORS))
    parser.add_argument('--out', default=osp.join(ROOT, 'benchmarks',
                                                  'results'))
    # internal: one model's peak memory, in a fresh process
    parser.add_argument('--memory-of', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.onnxruntime and args.device != 'cpu':
        parser.error(f'--onnxruntime with --device {args.device}: it times '
                     "onnxruntime's CPU execution provider; use --device cpu")
    if args.openvino and args.device != 'cpu':
        parser.error(f'--openvino with --device {args.device}: it times '
                     "OpenVINO's CPU plugin; use --device cpu")
    return args


# --------------------------------------------------------------- building


def _setup():
    global TensorMode
    import mmghost  # noqa: F401
    from mmghost.analysis import TensorMode
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')


def build_backbone(name):
    from mmdet.registry import MODELS
    cfg, _ = BACKBONES[name]
    model = MODELS.build(copy.deepcopy(cfg))
    model.eval()
    return model


def build_detector(detector, backbone, ghostconv=False):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, DETECTORS[detector]))
    bb_cfg, in_channels = BACKBONES[backbone]
    cfg.model.backbone = copy.deepcopy(bb_cfg)
    cfg.model.neck.in_channels = in_channels
    if ghostconv:
        cfg.model.neck.conv_cfg = dict(type='GhostConv')
        if 'bbox_head' in cfg.model:
            cfg.model.bbox_head.conv_cfg = dict(type='GhostConv')
    model = MODELS.build(cfg.model)
    model.eval()
    return model


def deploy(model):
    """GhostNet's own deploy mode, mmcv's conv-BN fusion for the rest."""
    from mmcv.cnn import fuse_conv_bn
    backbone = getattr(model, 'backbone', model)
    if hasattr(backbone, 'switch_to_deploy'):
        backbone.switch_to_deploy()
    return fuse_conv_bn(model)


def conv_linear_macs(model, shape, device):
    from mmghost.analysis import complexity
    x = torch.randn(1, 3, *shape, device=device)
    with torch.no_grad():
        return complexity(model, (x, ))['conv_linear']


# ---------------------------------------------------------------- timing


def _sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def time_once(model, x, device):
    _sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        model(x)
    _sync(device)
    return time.perf_counter() - start


def pick_format(model, x, device, rounds=3):
    """Run ``model`` in whichever memory format is faster for it."""
    results = {}
    for fmt in (torch.contiguous_format, torch.channels_last):
        m = model.to(memory_format=fmt)
        xi = x.contiguous(memory_format=fmt)
        time_once(m, xi, device)
        results[fmt] = statistics.median(
            time_once(m, xi, device) for _ in range(rounds))
    best = min(results, key=results.get)
    return model.to(memory_format=best), best


def interleaved(cases, device, rounds, warmup):
    """cases: name -> (model, input). Median seconds per name."""
    for model, x in cases.values():
        for _ in range(warmup):
            time_once(model, x, device)
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (model, x) in cases.items():
            times[name].append(time_once(model, x, device))
    return {name: statistics.median(t) for name, t in times.items()}


def prepare(models, shape, device):
    """name -> (model, input, macs, note) with deployed ones format-tuned."""
    cases = {}
    for name, model in models.items():
        model = model.to(device)
        x = torch.randn(1, 3, *shape, device=device)
        macs = conv_linear_macs(model, shape, device)
        note = 'NCHW'
        if 'deploy' in name or 'compile' in name:
            model, fmt = pick_format(model, x, device)
            if fmt == torch.channels_last:
                x = x.contiguous(memory_format=fmt)
                note = 'NHWC'
        if 'compile' in name:
            model = compiled(model, device)
            time_once(model, x, device)  # compile outside the timing
        elif 'onnxruntime' in name:
            from mmghost.deployment import ChannelPadded
            padded = isinstance(model, ChannelPadded)
            model = OrtModel(model, x)
            note = f'ORT, padded to {channel_block()}' if padded else 'ORT'
        elif 'openvino' in name:
            int8 = name.endswith('int8')
            model = OvModel(model, x, int8)
            note = 'OV INT8' if int8 else 'OV FP32'
        cases[name] = (model, x, macs, note)
    return cases


def compiled(model, device):
    """``torch.compile`` for inference: weights frozen into the graph.

    Freezing lets inductor fold constants and pre-pack convolution weights
    for oneDNN (fusing bias, ReLU and residual adds into the conv call); on
    CPU the C++ wrapper also calls the kernels without Python in between.
    """
    import torch._inductor.config as inductor
    inductor.freezing = True
    inductor.cpp_wrapper = device == 'cpu'
    torch._dynamo.reset()
    return torch.compile(model)


class OrtModel:
    """A deployed model exported to ONNX and run by onnxruntime.

    Exported at the benchmark's input shape (static), every graph
    optimisation on, intra-op threads as many as torch's.
    """

    def __init__(self, model, x):
        import logging
        import tempfile

        import onnxruntime as ort

        from mmghost.deployment import BackboneForOnnx
        module = BackboneForOnnx(model).eval()
        # the exporter warns once per torchvision op it cannot register
        logging.getLogger('torch.onnx._internal.exporter._registration'
                          ).setLevel(logging.ERROR)
        with tempfile.TemporaryDirectory() as tmp:
            path = osp.join(tmp, 'model.onnx')
            torch.onnx.export(
                module, (x, ),
                path,
                dynamo=True,
                opset_version=18,
                external_data=False,
                verbose=False)
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            # its threads would otherwise spin after each run, taking the
            # cores from the torch models interleaved with it
            options.add_session_config_entry('session.intra_op.allow_spinning',
                                             '0')
            options.graph_optimization_level = (
                ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
            self.session = ort.InferenceSession(
                path, options, providers=['CPUExecutionProvider'])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x):
        return self.session.run(None, {self.input: x.numpy()})


class OvModel:
    """A deployed model converted to an OpenVINO IR, FP32 or INT8.

    Converted at the benchmark's input shape (static); INT8 is
    ``quantize_int8`` calibrated on real images (a backbone quantized
    whole, a detector with its output convolutions kept in FP32, as
    ``export_openvino.py --int8`` does); compiled as ``compile_ir`` does
    (FP32 where not quantized, LATENCY hint, torch's thread count).
    """

    def __init__(self, model, x, int8):
        import openvino as ov

        from mmghost.deployment import BackboneForOnnx, GroupedOutputs
        from mmghost.deployment.openvino import compile_ir, quantize_int8
        detector = isinstance(model, GroupedOutputs)
        module = (model if detector else BackboneForOnnx(model)).eval()
        with torch.no_grad():
            ov_model = ov.convert_model(
                module, example_input=x, input=[list(x.shape)])
        if int8:
            ov_model = quantize_int8(
                ov_model, calibration_data(tuple(x.shape[-2:])))
        self.compiled = compile_ir(ov_model)

    def __call__(self, x):
        return self.compiled(x.numpy())


def calibration_data(shape, count=8):
    """``count`` shipped images as RetinaNet's config preprocesses them,
    padded or cropped to ``shape`` exactly."""
    from types import SimpleNamespace

    from mmdet.registry import MODELS
    from mmengine.config import Config

    from mmghost.utils import list_images
    from mmghost.deployment.openvino import calibration_batches
    cfg = Config.fromfile(osp.join(ROOT, DETECTORS['RetinaNet']))
    preprocessing = SimpleNamespace(
        cfg=cfg, data_preprocessor=MODELS.build(cfg.model.data_preprocessor))
    files = list_images(osp.join(ROOT, 'data', 'tiny-coco', 'images'))
    batches = calibration_batches(preprocessing, files[:count], shape)
    return [b[..., :shape[0], :shape[1]].contiguous() for b in batches]


def speedups(title, results, reference_mode='eval'):
    """Each OpenVINO row's speed-up over the same model in PyTorch eager."""
    lines = [
        f'#### {title}: OpenVINO speed-up over PyTorch eager (same model)',
        '', '| model | mode | speed-up |', '|---|---|---:|'
    ]
    for key, sec in results.items():
        model, mode = key.rsplit(' | ', 1)
        reference = results.get(f'{model} | {reference_mode}')
        if 'openvino' in mode and reference:
            lines.append(f'| {model} | {mode} | {reference / sec:.2f}x |')
    return '\n'.join(lines) if len(lines) > 4 else ''


def table(title, results, cases, baseline_prefix):
    lines = [
        f'#### {title}', '',
        '| model | mode | format | latency (ms) | ratio to MobileNetV2 '
        '(same mode) | MAdds (G) | GMAC/s |',
        '|---|---|---|---:|---:|---:|---:|'
    ]
    for name, sec in results.items():
        model, mode = name.rsplit(' | ', 1)
        base = results.get(f'{baseline_prefix} | {mode.split(" (")[0]}')
        ratio = sec / base if base else float('nan')
        macs = cases[name][2]
        lines.append(f'| {model} | {mode} | {cases[name][3]} | '
                     f'{sec * 1e3:.1f} | {ratio:.2f} | {macs / 1e9:.2f} | '
                     f'{macs / sec / 1e9:.1f} |')
    return '\n'.join(lines)


def run_backbones(args, rounds, report, rows):
    # Each runtime is timed as a group of its own, compiled models last:
    # onnxruntime's thread pool, and the OpenMP runtime that inductor's
    # C++ kernels link, would otherwise compete with torch's for the cores.
    groups = [['eval', 'deploy']]
    if args.onnxruntime:
        groups.append(['onnxruntime'])
    if args.openvino:
        groups.append(['openvino', 'openvino int8'])
    if args.compile:
        groups.append(['compile'])
    modes = [mode for group in groups for mode in group]
    for size in args.sizes:
        shape = SIZES[size]
        results, cases = {}, {}
        for group_modes in groups:
            models = {}
            for name in BACKBONES:
                for mode in group_modes:
                    if mode != 'eval' and name.startswith('ResNet'):
                        continue
                    if 'openvino' in mode and name not in OPENVINO_MODELS:
                        continue
                    model = build_backbone(name)
                    if mode == 'onnxruntime' and name == 'GhostNet 1.1x':
                        # what the padding is worth
                        models[f'{name} | {UNPADDED}'] = deploy(
                            build_backbone(name))
                    if mode == 'onnxruntime' and name.startswith('GhostNet'):
                        from mmghost.deployment import pad_channels
                        model = pad_channels(model, channel_block())
                    elif mode != 'eval':
                        model = deploy(model)
                    models[f'{name} | {mode}'] = model
            group = prepare(models, shape, args.device)
            for key, (model, x, _, note) in group.items():
                if key.endswith('| onnxruntime'):
                    # the network's own MAdds, not the padded channels'
                    eval_key = key.replace('onnxruntime', 'eval')
                    group[key] = (model, x, cases[eval_key][2], note)
            results.update(
                interleaved({k: v[:2]
                             for k, v in group.items()}, args.device,
                            rounds, warmup=2))
            # keep what the table needs; let the group's models (and the
            # onnxruntime sessions' threads) go
            cases.update({k: (None, None, macs, note)
                          for k, (_, _, macs, note) in group.items()})
            del group, models
        results = {
            key: results[key]
            for key in (f'{name} | {mode}' for name in BACKBONES
                        for mode in modes + [UNPADDED]) if key in results
        }
        report.append(
            table(f'Backbones, {size}', results, cases, BASELINE))
        if args.openvino:
            report.append(speedups(f'Backbones, {size}', results))
        rows += [dict(section='backbone', size=size, name=k, seconds=v,
                      macs=cases[k][2]) for k, v in results.items()]


def channel_block() -> int:
    """Channels per SIMD block of this CPU: what GhostNet is padded to."""
    return 16 if 'AVX512' in torch.backends.cpu.get_cpu_capability() else 8


def run_detectors(args, rounds, report, rows):
    variants = [('GhostNet 1.1x', False), ('MobileNetV2 1.0x', False),
                ('ResNet-18', False), ('ResNet-50', False)]
    for detector in args.detectors:
        if detector == 'Faster R-CNN' and args.device == 'cuda':
            continue  # tensor mode runs NMS; see README
        for size in args.sizes:
            shape = SIZES[size]
            models = {}
            for backbone, _ in variants:
                for mode in ('eval', 'deploy'):
                    model = build_detector(detector, backbone)
                    if mode == 'deploy':
                        model = deploy(model)
                    models[f'{detector} {backbone} | {mode}'] = TensorMode(
                        model, shape)
                    if backbone == 'GhostNet 1.1x' and detector == \
                            'RetinaNet':
                        model = build_detector(detector, backbone, True)
                        if mode == 'deploy':
                            model = deploy(model)
                        models[f'{detector} {backbone} + GhostConv FPN/head'
                               f' | {mode}'] = TensorMode(model, shape)
            cases = prepare(models, shape, args.device)
            results = interleaved({k: v[:2]
                                   for k, v in cases.items()}, args.device,
                                  rounds, warmup=1)
            if args.openvino and detector == 'RetinaNet':
                # a timing group of its own, after the PyTorch models
                del models
                cases = {k: (None, None, macs, note)
                         for k, (_, _, macs, note) in cases.items()}
                group = prepare(openvino_detectors(detector, shape), shape,
                                args.device)
                results.update(
                    interleaved({k: v[:2]
                                 for k, v in group.items()}, args.device,
                                rounds, warmup=1))
                cases.update(group)
                del group
            report.append(
                table(f'{detector} (tensor mode), {size}', results, cases,
                      f'{detector} {BASELINE}'))
            if args.openvino and detector == 'RetinaNet':
                report.append(
                    speedups(f'{detector} (tensor mode), {size}', results))
            rows += [dict(section='detector', size=size, name=k,
                          seconds=v, macs=cases[k][2])
                     for k, v in results.items()]


def openvino_detectors(detector, shape):
    """The deployed detectors of OPENVINO_MODELS, FP32 and INT8, as the
    raw-output wrapper that the IR converts."""
    from mmghost.deployment import DetectorForOnnx
    models = {}
    for backbone in OPENVINO_MODELS:
        for ghostconv in ((False, True)
                          if backbone.startswith('GhostNet') else (False, )):
            label = f'{detector} {backbone}' + (
                ' + GhostConv FPN/head' if ghostconv else '')
            for mode in ('openvino', 'openvino int8'):
                model = deploy(build_detector(detector, backbone, ghostconv))
                models[f'{label} | {mode}'] = DetectorForOnnx(model).eval()
    return models


def run_train_step(args, rounds, report, rows):
    """s/iter of the demo's training step (batch 4, 320x320, real data)."""
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper
    from mmdet.registry import DATASETS, MODELS
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'retinanet_ghostnet_fpn_demo.py'))
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset.dataset)
    ds_cfg.data_root = osp.join(ROOT, ds_cfg.data_root)
    dataset = DATASETS.build(ds_cfg)
    batch = pseudo_collate([dataset[i] for i in range(4)])
    cases = {}
    for backbone in ('GhostNet 1.1x', 'MobileNetV2 1.0x', 'ResNet-18'):
        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.backbone = copy.deepcopy(BACKBONES[backbone][0])
        model_cfg.neck.in_channels = BACKBONES[backbone][1]
        model = MODELS.build(model_cfg).to(args.device)
        model.train()
        optim = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
        cases[f'demo RetinaNet {backbone}'] = (model, optim)

    def step(model, optim):
        _sync(args.device)
        start = time.perf_counter()
        model.train_step(copy.deepcopy(batch), optim)
        _sync(args.device)
        return time.perf_counter() - start

    for model, optim in cases.values():
        step(model, optim)
    times = {k: [] for k in cases}
    for _ in range(max(3, rounds // 2)):
        for name, (model, optim) in cases.items():
            times[name].append(step(model, optim))
    base = statistics.median(times['demo RetinaNet MobileNetV2 1.0x'])
    lines = [
        '#### Training step at the demo scale (batch 4, 320x320, AdamW, '
        'real tiny-coco batch)', '',
        '| model | s/iter | ratio to MobileNetV2 |', '|---|---:|---:|'
    ]
    for name, t in times.items():
        med = statistics.median(t)
        lines.append(f'| {name} | {med:.3f} | {med / base:.2f} |')
        rows.append(dict(section='train', size='320x320', name=name,
                         seconds=med))
    report.append('\n'.join(lines))


def _status_mb(field):
    """A ``/proc/self/status`` memory field in MB (None without /proc)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def memory_of(spec, device):
    """Peak memory of one model's forwards (called in a fresh process)."""
    import resource
    _setup()
    kind, name, mode = spec.split('::')
    model = (build_backbone(name) if kind == 'backbone' else
             build_detector('RetinaNet', name))
    if mode == 'deploy':
        model = deploy(model)
    if kind != 'backbone':
        model = TensorMode(model, SIZES['1333x800'])
    model = model.to(device)
    x = torch.randn(1, 3, *SIZES['1333x800'], device=device)
    # The process's peak RSS is mostly imports; reset the kernel's
    # high-water mark (Linux: clear_refs 5) so the peak is the forwards'.
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass
    before = _status_mb('VmRSS')
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        for _ in range(2):
            model(x)
    peak = _status_mb('VmHWM')
    if peak is None:  # no /proc: the whole process's peak
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = (torch.cuda.max_memory_allocated() / 2**20
           if device == 'cuda' else 0.0)
    print(json.dumps(dict(rss_before=before, rss_peak=peak, gpu_peak=gpu)))


def run_memory(args, report, rows):
    specs = [f'backbone::{n}::{m}' for n in BACKBONES
             for m in ('eval', 'deploy') if not (
                 m == 'deploy' and n.startswith('ResNet'))]
    specs += [f'detector::{n}::eval' for n in ('GhostNet 1.1x', BASELINE)]
    lines = [
        '#### Peak memory, one process per model, 1333x800, batch 1', '',
        '| model | mode | peak RSS during the forwards (MB) | growth over '
        'the RSS before them (MB) | GPU peak (MB) |', '|---|---|---:|---:|---:|'
    ]
    for spec in specs:
        proc = subprocess.run(
            [sys.executable, __file__, '--device', args.device,
             '--memory-of', spec],
            capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f'memory run {spec} failed:\n'
                               f'{proc.stderr[-2000:]}')
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        kind, name, mode = spec.split('::')
        label = name if kind == 'backbone' else f'RetinaNet {name}'
        lines.append(f"| {label} | {mode} | {res['rss_peak']:.0f} | "
                     f"{res['rss_peak'] - res['rss_before']:.0f} | "
                     f"{res['gpu_peak']:.0f} |")
        rows.append(dict(section='memory', name=f'{label} | {mode}', **res))
    report.append('\n'.join(lines))
    return lines


def plot(rows, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, size in zip(axes, SIZES):
        pts = [r for r in rows if r['section'] == 'backbone'
               and r['size'] == size]
        for r in pts:
            color = 'tab:green' if r['name'].startswith('Ghost') else (
                'tab:blue' if r['name'].startswith('Mobile') else 'tab:gray')
            marker = 'o' if r['name'].endswith('eval') else '^'
            ax.scatter(r['macs'] / 1e9, r['seconds'] * 1e3, c=color,
                       marker=marker)
            ax.annotate(r['name'].replace(' | ', ' '),
                        (r['macs'] / 1e9, r['seconds'] * 1e3), fontsize=6)
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel('conv+linear GMAdds')
        ax.set_ylabel('latency (ms)')
        ax.set_title(f'backbones, {size} (o eval, ^ deploy)')
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def machine(device):
    if device == 'cuda':
        return (f'{torch.cuda.get_device_name()}, torch {torch.__version__}')
    return (f'{cpu_model()}, {os.cpu_count()} cores, '
            f'{torch.get_num_threads()} torch threads, torch '
            f'{torch.__version__}')


def cpu_model() -> str:
    """The CPU's model name (as ``lscpu`` prints it), else the arch."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    args = parse_args()
    if args.memory_of:
        memory_of(args.memory_of, args.device)
        return
    _setup()
    if args.device == 'cuda':
        torch.backends.cudnn.benchmark = True
    rounds = 3 if args.quick else (15 if args.device == 'cuda' else 7)
    report, rows = [], []
    start = time.time()
    sections = [s for s in args.sections
                if not (s == 'train' and args.device == 'cuda')]
    # on a GPU the training step is benchmarks/train_throughput.py's, at
    # the paper's scale
    for section in sections:
        if section == 'backbones':
            run_backbones(args, rounds, report, rows)
        elif section == 'detectors':
            run_detectors(args, rounds, report, rows)
        elif section == 'train':
            run_train_step(args, rounds, report, rows)
        else:
            run_memory(args, report, rows)
        write(args, rounds, start, report, rows)


def write(args, rounds, start, report, rows):
    """(Re)write the report: what is measured so far survives a failure."""
    os.makedirs(args.out, exist_ok=True)
    sections = ('' if args.sections == SECTIONS else
                ' --sections ' + ' '.join(args.sections))
    sizes = ('' if args.sizes == list(SIZES) else
             ' --sizes ' + ' '.join(args.sizes))
    if args.detectors != list(DETECTORS):
        sizes += ' --detectors ' + ' '.join(f"'{d}'" for d in args.detectors)
    header = (f'### {args.device.upper()}: {machine(args.device)}\n\n'
              f'`python benchmarks/bench.py --device {args.device}'
              f"{' --compile' if args.compile else ''}"
              f"{' --onnxruntime' if args.onnxruntime else ''}"
              f"{' --openvino' if args.openvino else ''}"
              f'{sizes}'
              f'{sections}'
              f"{' --quick' if args.quick else ''}`, batch 1, medians of "
              f'{rounds} interleaved rounds after warm-up, '
              f'{(time.time() - start) / 60:.1f} min in all.\n')
    text = header + '\n' + '\n\n'.join(report) + '\n'
    stem = osp.join(args.out, args.device)
    with open(stem + '.md', 'w') as f:
        f.write(text)
    with open(stem + '.json', 'w') as f:
        json.dump(rows, f, indent=1)
    if any(r['section'] == 'backbone' for r in rows):
        plot(rows, stem + '.png')
    print(text)


if __name__ == '__main__':
    main()
