# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Latency of GhostNet against mmdet's baselines: one table, model x runtime
x shape, plus the training step and peak memory.

    python benchmarks/bench.py [--device cpu|cuda] [--runtimes R ...]
                               [--models M ...] [--shapes S ...]
                               [--sections latency train memory]
                               [--quick] [--out benchmarks/results]

Every row of the latency table is one model on one runtime at one input
shape, batch 1. The network is the one the export tools write
(``mmghost.deployment.wrap_for_onnx``: a backbone's feature maps; a
detector's raw per-level outputs, MMDetection's ``tensor`` mode, which for
Faster R-CNN stops at the RPN outputs) and each runtime gets it the way
the tools give it:

========================  ==================================================
``pytorch``               eager, eval mode, NCHW
``pytorch-deploy``        ``switch_to_deploy()`` for GhostNet, mmcv's
                          ``fuse_conv_bn`` for the rest, in the faster of the
                          two memory formats (measured)
``torch-compile``         the deployed backbone under ``torch.compile``
                          (inductor, frozen weights; C++ wrapper on CPU)
``onnxruntime``           ``export_onnx`` of the deployed backbone (GhostNet
                          channel-padded by ``pad_channels``, as
                          ``export_onnx.py --pad-channels``), run by
                          ``ort_session``
``openvino-fp32``         ``convert_to_openvino`` of the deployed model
                          (dynamic batch, height, width, as exported), run
                          by ``compile_ir``
``openvino-int8``         the same IR through ``quantize_int8`` (NNCF,
                          8 shipped images, box convolutions kept in FP32)
========================  ==================================================

The rows of one runtime at one shape are timed together, interleaved (one
forward of each model per round, so the machine's drifts hit all alike),
medians of ``--rounds`` after warm-up; the runtimes follow one another in
the same process. Each row reports its ratio to MobileNetV2 on the same
runtime and shape (the same detector with MobileNetV2 for a detector) and
its speed-up over the same model in ``pytorch`` at that shape.

``train`` times the demo's training step (real tiny-coco batch); ``memory``
the peak RSS of each model's forwards, each model in a fresh process.
Writes ``{device}.md``, ``{device}.json`` and ``{device}.png`` (backbone
latency against conv+linear MAdds) under ``--out``.
"""
import argparse
import copy
import importlib.util
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHAPES = {'320x320': (320, 320), '1333x800': (800, 1333)}

# backbone name: (backbone cfg, its FPN in_channels)
BACKBONES = {
    'GhostNet 1.0x': (dict(type='GhostNet', widen_factor=1.0),
                      [24, 40, 112, 160]),
    'GhostNet 1.1x': (dict(type='GhostNet', widen_factor=1.1),
                      [28, 44, 124, 176]),
    'GhostNet 1.3x': (dict(type='GhostNet', widen_factor=1.3),
                      [32, 52, 144, 208]),
    'MobileNetV2 1.0x': (dict(type='MobileNetV2', out_indices=(1, 2, 4, 7)),
                         [24, 32, 96, 1280]),
    'MobileNetV3 1.0x': (dict(type='MobileNetV3', arch='large'),
                         [24, 40, 112, 160]),
    'ResNet-18': (dict(type='ResNet', depth=18, norm_eval=True,
                       out_indices=(0, 1, 2, 3)), [64, 128, 256, 512]),
    'ResNet-50': (dict(type='ResNet', depth=50, norm_eval=True,
                       out_indices=(0, 1, 2, 3)), [256, 512, 1024, 2048]),
}
BASELINE = 'MobileNetV2 1.0x'
DETECTORS = {
    'RetinaNet': 'configs/retinanet_ghostnet_fpn.py',
    'Faster R-CNN': 'configs/faster-rcnn_ghostnet_fpn.py',
}
GHOSTCONV = ' + GhostConv'
# what the runtimes beyond PyTorch convert: the paper's backbone (also
# with GhostConv in the detector) and the two MobileNets; torch-compile and
# onnxruntime take the backbones alone, OpenVINO the detectors too
CONVERTED = ('GhostNet 1.1x', 'MobileNetV2 1.0x', 'MobileNetV3 1.0x')
RUNTIMES = ('pytorch', 'pytorch-deploy', 'torch-compile', 'onnxruntime',
            'openvino-fp32', 'openvino-int8')
CPU_ONLY = ('onnxruntime', 'openvino-fp32', 'openvino-int8')
# the Python package each runtime needs beyond torch
NEEDS = {'onnxruntime': 'onnxruntime', 'openvino-fp32': 'openvino',
         'openvino-int8': 'nncf'}
SECTIONS = ('latency', 'train', 'memory')
CALIBRATION_IMAGES = 8


@dataclass(frozen=True)
class Model:
    """A row's model: a backbone alone, or a detector with a backbone."""
    backbone: str
    detector: str = ''  # '' for the backbone alone
    ghostconv: bool = False  # GhostConv in the FPN (and RetinaNet's head)

    @property
    def name(self) -> str:
        if not self.detector:
            return self.backbone
        return (f'{self.detector} {self.backbone}' +
                (GHOSTCONV if self.ghostconv else ''))

    @property
    def baseline(self) -> 'Model':
        return Model(BASELINE, self.detector)

    def runs_on(self, runtime: str) -> bool:
        if runtime in ('pytorch', 'pytorch-deploy'):
            return True
        if runtime in ('torch-compile', 'onnxruntime') and self.detector:
            return False  # backbones only: the runtimes of the comparison
        return self.backbone in CONVERTED

    def build(self) -> torch.nn.Module:
        """The network, random init, eval mode, on CPU."""
        from mmdet.registry import MODELS
        from mmengine.config import Config
        bb_cfg, in_channels = BACKBONES[self.backbone]
        if not self.detector:
            # not ``.eval()`` chained: mmdet's MobileNetV2.train returns None
            model = MODELS.build(copy.deepcopy(bb_cfg))
            model.eval()
            return model
        cfg = Config.fromfile(osp.join(ROOT, DETECTORS[self.detector]))
        cfg.model.backbone = copy.deepcopy(bb_cfg)
        cfg.model.neck.in_channels = in_channels
        if self.ghostconv:  # as configs/*_ghostconv.py
            cfg.model.neck.conv_cfg = dict(type='GhostConv')
            if 'bbox_head' in cfg.model:
                cfg.model.bbox_head.conv_cfg = dict(type='GhostConv')
        model = MODELS.build(cfg.model).eval()
        model.cfg = cfg
        return model


def all_models():
    models = [Model(name) for name in BACKBONES]
    for detector in DETECTORS:
        for name in ('GhostNet 1.1x', 'MobileNetV2 1.0x', 'MobileNetV3 1.0x',
                     'ResNet-18', 'ResNet-50'):
            models.append(Model(name, detector))
            if name == 'GhostNet 1.1x':
                models.append(Model(name, detector, ghostconv=True))
    return models


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument(
        '--runtimes',
        nargs='+',
        choices=RUNTIMES,
        help='default: pytorch and pytorch-deploy, and on CPU onnxruntime '
        'and openvino-fp32/int8 where installed')
    names = [m.name for m in all_models()]
    parser.add_argument(
        '--models', nargs='+', choices=names, metavar='MODEL',
        help=f'default: all of {", ".join(names)}')
    parser.add_argument(
        '--shapes', nargs='+', default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument(
        '--sections', nargs='+', default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument(
        '--rounds', type=int, help='timed rounds (default 7; 15 on cuda)')
    parser.add_argument(
        '--quick', action='store_true', help='3 rounds (smoke run)')
    parser.add_argument(
        '--out', default=osp.join(ROOT, 'benchmarks', 'results'))
    # internal: one model's peak memory, in a fresh process
    parser.add_argument('--memory-of', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runtimes is None:
        args.runtimes = ['pytorch', 'pytorch-deploy']
        if args.device == 'cpu':
            args.runtimes += [r for r in CPU_ONLY if installed(r)]
    for runtime in args.runtimes:
        if runtime in CPU_ONLY and args.device != 'cpu':
            parser.error(f'--runtimes {runtime} with --device '
                         f'{args.device}: it runs on the CPU only')
        if not installed(runtime):
            parser.error(f'--runtimes {runtime} needs {NEEDS[runtime]}: pip '
                         'install -e ".[onnx,openvino]"')
    if args.models is None:
        args.models = names
    if args.rounds is None:
        args.rounds = 3 if args.quick else (
            15 if args.device == 'cuda' else 7)
    if args.rounds < 1:
        parser.error(f'--rounds {args.rounds}: expected at least 1')
    return args


def installed(runtime: str) -> bool:
    need = NEEDS.get(runtime)
    return need is None or importlib.util.find_spec(need) is not None


def setup():
    import mmghost  # noqa: F401  (registers mmghost, applies its fixes)
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')


# --------------------------------------------------------------- runtimes


def deploy(model):
    """GhostNet's own deploy mode, mmcv's conv-BN fusion for the rest."""
    from mmcv.cnn import fuse_conv_bn
    backbone = getattr(model, 'backbone', model)
    if hasattr(backbone, 'switch_to_deploy'):
        backbone.switch_to_deploy()
    return fuse_conv_bn(model)


def exported_network(model, spec: Model):
    """What the export tools export of ``model``."""
    from mmghost.deployment import BackboneForOnnx, wrap_for_onnx
    if spec.detector:
        return wrap_for_onnx(model, 'detector')
    return BackboneForOnnx(model).eval()


def channel_block() -> int:
    """Channels per SIMD block of this CPU: what GhostNet is padded to."""
    return 16 if 'AVX512' in torch.backends.cpu.get_cpu_capability() else 8


def faster_format(module, x, device):
    """``(module, x, label)`` in whichever memory format runs faster."""
    times = {}
    for fmt in (torch.contiguous_format, torch.channels_last):
        m, xi = module.to(memory_format=fmt), x.contiguous(memory_format=fmt)
        run_once(m, xi, device)
        times[fmt] = statistics.median(
            run_once(m, xi, device) for _ in range(3))
    fmt = min(times, key=times.get)
    return (module.to(memory_format=fmt), x.contiguous(memory_format=fmt),
            'NHWC' if fmt == torch.channels_last else 'NCHW')


def prepare(spec: Model, runtime: str, shape, device):
    """``(run, x, label)``: ``run(x)`` is one forward of ``spec`` on
    ``runtime`` at ``shape``; ``label`` says how it runs."""
    model = spec.build()
    x = torch.randn(1, 3, *shape, device=device)
    if runtime == 'pytorch':
        return exported_network(model, spec).to(device), x, 'NCHW'
    model = deploy(model)
    # as export_onnx.py --pad-channels: onnxruntime blocks channels
    padded = (runtime == 'onnxruntime' and not spec.detector
              and spec.backbone.startswith('GhostNet'))
    if padded:
        from mmghost.deployment import pad_channels
        model = pad_channels(model, channel_block())
    module = exported_network(model, spec).to(device).eval()
    if runtime == 'pytorch-deploy':
        return faster_format(module, x, device)
    if runtime == 'torch-compile':
        module, x, label = faster_format(module, x, device)
        compiled = compiled_module(module, device)
        run_once(compiled, x, device)  # compile outside the timing
        return compiled, x, f'{label}, inductor'
    example = torch.randn(2, 3, *shape)  # the exporters want a batch of 2
    if runtime == 'onnxruntime':
        from mmghost.deployment import export_onnx
        from mmghost.deployment.onnx import ort_session
        with tempfile.TemporaryDirectory() as tmp:
            path = osp.join(tmp, 'model.onnx')
            export_onnx(module, example, path)
            session = ort_session(path)
        name = session.get_inputs()[0].name
        label = f'padded to {channel_block()}' if padded else ''
        return (lambda t: session.run(None, {name: t.numpy()})), x, label
    from mmghost.deployment.openvino import (compile_ir, convert_to_openvino,
                                             quantize_int8, run_ir)
    ov_model = convert_to_openvino(module, example)
    label = 'FP32'
    if runtime == 'openvino-int8':
        ov_model = quantize_int8(ov_model, calibration_batches(shape))
        label = 'INT8, box convs FP32' if spec.detector else 'INT8'
    compiled = compile_ir(ov_model)
    return (lambda t: run_ir(compiled, t)), x, label


def compiled_module(module, device):
    """``torch.compile`` for inference: weights frozen into the graph.

    Freezing lets inductor fold constants and pre-pack convolution weights
    for oneDNN (fusing bias, ReLU and residual adds into the conv call); on
    CPU the C++ wrapper also calls the kernels without Python in between.
    """
    import torch._inductor.config as inductor
    inductor.freezing = True
    inductor.cpp_wrapper = device == 'cpu'
    torch._dynamo.reset()
    return torch.compile(module)


def calibration_batches(shape, count=CALIBRATION_IMAGES):
    """The first ``count`` shipped images as RetinaNet's config
    preprocesses them, padded or cropped to ``shape`` exactly."""
    from types import SimpleNamespace

    from mmdet.registry import MODELS
    from mmengine.config import Config

    from mmghost.deployment.openvino import calibration_batches as batches
    from mmghost.utils import list_images
    cfg = Config.fromfile(osp.join(ROOT, DETECTORS['RetinaNet']))
    preprocessing = SimpleNamespace(
        cfg=cfg, data_preprocessor=MODELS.build(cfg.model.data_preprocessor))
    files = list_images(osp.join(ROOT, 'data', 'tiny-coco', 'images'))
    return [
        b[..., :shape[0], :shape[1]].contiguous()
        for b in batches(preprocessing, files[:count], shape)
    ]


# ---------------------------------------------------------------- timing


def run_once(run, x, device, grad=False) -> float:
    if device == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.set_grad_enabled(grad):
        run(x)
    if device == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - start


def interleaved(cases, device, rounds, warmup=2, grad=False):
    """cases: key -> (run, x). Median seconds per key."""
    for run, x in cases.values():
        for _ in range(warmup):
            run_once(run, x, device, grad)
    times = {key: [] for key in cases}
    for _ in range(rounds):
        for key, (run, x) in cases.items():
            times[key].append(run_once(run, x, device, grad))
    return {key: statistics.median(t) for key, t in times.items()}


def conv_linear_macs(spec: Model, shape) -> float:
    from mmghost.analysis import complexity
    module = exported_network(spec.build(), spec)
    with torch.no_grad():
        return complexity(module, (torch.randn(1, 3, *shape), ))['conv_linear']


def run_latency(args, report, rows):
    models = [m for m in all_models() if m.name in args.models]
    report.append('')
    for size in args.shapes:
        shape = SHAPES[size]
        macs = {m: conv_linear_macs(m, shape) for m in models}
        for runtime in args.runtimes:
            group = [m for m in models if m.runs_on(runtime)]
            if not group:
                continue
            print(f'{size} {runtime}: preparing {len(group)} models',
                  flush=True)
            cases, labels = {}, {}
            for spec in group:
                run, x, labels[spec] = prepare(spec, runtime, shape,
                                               args.device)
                cases[spec] = (run, x)
            seconds = interleaved(cases, args.device, args.rounds)
            # let the group's models (and runtime thread pools) go before
            # the next runtime is timed
            del cases
            rows += [
                dict(section='latency', shape=size, model=spec.name,
                     kind=spec.detector or 'backbone', runtime=runtime,
                     note=labels[spec], seconds=seconds[spec],
                     macs=macs[spec]) for spec in group
            ]
            report[-1] = latency_table(rows)
            write(args, report, rows)


def latency_table(rows) -> str:
    latency = [r for r in rows if r['section'] == 'latency']
    by_key = {(r['shape'], r['model'], r['runtime']): r['seconds']
              for r in latency}
    lines = [
        '#### Latency, batch 1 (model x runtime x shape)', '',
        'Detectors as exported: the raw per-level outputs (Faster R-CNN: '
        'to the RPN outputs). Ratio: to MobileNetV2 on the same runtime '
        'and shape (for a detector, the same detector with MobileNetV2). '
        'Speed-up: over the same model in `pytorch`, same shape.', '',
        '| shape | model | runtime | how | latency (ms) | ratio to '
        'MobileNetV2 | speed-up over pytorch | conv+linear GMAdds |',
        '|---|---|---|---|---:|---:|---:|---:|'
    ]
    for r in latency:
        detector = '' if r['kind'] == 'backbone' else r['kind'] + ' '
        base = by_key.get((r['shape'], f'{detector}{BASELINE}',
                           r['runtime']))
        eager = by_key.get((r['shape'], r['model'], 'pytorch'))
        ratio = f"{r['seconds'] / base:.2f}" if base else '-'
        speedup = f"{eager / r['seconds']:.2f}x" if eager else '-'
        lines.append(f"| {r['shape']} | {r['model']} | {r['runtime']} | "
                     f"{r['note']} | {r['seconds'] * 1e3:.1f} | {ratio} | "
                     f"{speedup} | {r['macs'] / 1e9:.2f} |")
    return '\n'.join(lines)


# --------------------------------------------------------- training step


def run_train_step(args, report, rows):
    """s/iter of the demo's training step (batch 4, 320x320, real data)."""
    from mmdet.registry import DATASETS, MODELS
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper
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
        model = MODELS.build(model_cfg).to(args.device).train()
        optim = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
        cases[f'demo RetinaNet {backbone}'] = (
            lambda _, m=model, o=optim: m.train_step(copy.deepcopy(batch), o),
            None)
    seconds = interleaved(cases, args.device, max(3, args.rounds // 2),
                          warmup=1, grad=True)
    base = seconds[f'demo RetinaNet {BASELINE}']
    lines = [
        '#### Training step at the demo scale (batch 4, 320x320, AdamW, '
        'real tiny-coco batch)', '',
        '| model | s/iter | ratio to MobileNetV2 |', '|---|---:|---:|'
    ]
    for name, sec in seconds.items():
        lines.append(f'| {name} | {sec:.3f} | {sec / base:.2f} |')
        rows.append(dict(section='train', shape='320x320', model=name,
                         seconds=sec))
    report.append('\n'.join(lines))


# ---------------------------------------------------------------- memory


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


def memory_of(spec_text: str, device: str):
    """Peak memory of one model's forwards (called in a fresh process)."""
    import resource
    setup()
    name, runtime = spec_text.split('::')
    spec = next(m for m in all_models() if m.name == name)
    model = spec.build()
    if runtime == 'pytorch-deploy':
        model = deploy(model)
    module = exported_network(model, spec).to(device)
    x = torch.randn(1, 3, *SHAPES['1333x800'], device=device)
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
            module(x)
    peak = _status_mb('VmHWM')
    if peak is None:  # no /proc: the whole process's peak
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = (torch.cuda.max_memory_allocated() / 2**20
           if device == 'cuda' else 0.0)
    print(json.dumps(dict(rss_before=before, rss_peak=peak, gpu_peak=gpu)))


def run_memory(args, report, rows):
    specs = [(m.name, r) for m in all_models() if not m.detector
             for r in ('pytorch', 'pytorch-deploy')
             if m.runs_on(r) and m.name in args.models]
    specs += [(f'RetinaNet {name}', 'pytorch')
              for name in ('GhostNet 1.1x', BASELINE)
              if f'RetinaNet {name}' in args.models]
    lines = [
        '#### Peak memory, one process per model, 1333x800, batch 1', '',
        '| model | runtime | peak RSS during the forwards (MB) | growth '
        'over the RSS before them (MB) | GPU peak (MB) |',
        '|---|---|---:|---:|---:|'
    ]
    for name, runtime in specs:
        proc = subprocess.run(
            [sys.executable, __file__, '--device', args.device,
             '--memory-of', f'{name}::{runtime}'],
            capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f'memory run {name} {runtime} failed:\n'
                               f'{proc.stderr[-2000:]}')
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        lines.append(f"| {name} | {runtime} | {res['rss_peak']:.0f} | "
                     f"{res['rss_peak'] - res['rss_before']:.0f} | "
                     f"{res['gpu_peak']:.0f} |")
        rows.append(dict(section='memory', model=name, runtime=runtime,
                         **res))
    report.append('\n'.join(lines))


# ---------------------------------------------------------------- report


def plot(rows, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    shapes = [s for s in SHAPES if any(
        r['section'] == 'latency' and r['kind'] == 'backbone'
        and r['shape'] == s for r in rows)]
    fig, axes = plt.subplots(1, len(shapes), figsize=(6 * len(shapes), 4.5),
                             squeeze=False)
    markers = dict(zip(RUNTIMES, 'o^sDvP'))
    for ax, size in zip(axes[0], shapes):
        for r in rows:
            if r['section'] != 'latency' or r['kind'] != 'backbone' or \
                    r['shape'] != size:
                continue
            color = 'tab:green' if r['model'].startswith('Ghost') else (
                'tab:blue' if r['model'].startswith('Mobile') else 'tab:gray')
            point = (r['macs'] / 1e9, r['seconds'] * 1e3)
            ax.scatter(*point, c=color, marker=markers[r['runtime']])
            ax.annotate(f"{r['model']} {r['runtime']}", point, fontsize=5)
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel('conv+linear GMAdds')
        ax.set_ylabel('latency (ms)')
        ax.set_title(f'backbones, {size}')
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def machine(device: str) -> str:
    if device == 'cuda':
        return f'{torch.cuda.get_device_name()}, torch {torch.__version__}'
    name = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            name = next(line.split(':', 1)[1].strip() for line in f
                        if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    versions = ''.join(
        f', {pkg} {importlib.import_module(pkg).__version__}'
        for pkg in ('onnxruntime', 'openvino', 'nncf')
        if importlib.util.find_spec(pkg) is not None)
    return (f'{name}, {os.cpu_count()} cores, {torch.get_num_threads()} '
            f'threads, torch {torch.__version__}{versions}')


def write(args, report, rows):
    """(Re)write the report: what is measured so far survives a failure."""
    os.makedirs(args.out, exist_ok=True)
    command = ' '.join(['python benchmarks/bench.py'] + [
        f"'{a}'" if ' ' in a else a for a in sys.argv[1:]])
    header = (f'### {args.device.upper()}: {machine(args.device)}\n\n'
              f'`{command}`: medians of {args.rounds} interleaved rounds '
              f'after warm-up, {(time.time() - args.start) / 60:.1f} min in '
              'all.\n')
    text = header + '\n' + '\n\n'.join(report) + '\n'
    stem = osp.join(args.out, args.device)
    with open(stem + '.md', 'w') as f:
        f.write(text)
    with open(stem + '.json', 'w') as f:
        json.dump(rows, f, indent=1)
    if any(r['section'] == 'latency' and r['kind'] == 'backbone'
           for r in rows):
        plot(rows, stem + '.png')
    print(text)


def main():
    args = parse_args()
    if args.memory_of:
        memory_of(args.memory_of, args.device)
        return
    setup()
    if args.device == 'cuda':
        torch.backends.cudnn.benchmark = True
    report, rows = [], []
    args.start = time.time()
    run = dict(latency=run_latency, train=run_train_step, memory=run_memory)
    for section in args.sections:
        if section == 'train' and args.device == 'cuda':
            continue  # benchmarks/train_throughput.py, at the paper's scale
        run[section](args, report, rows)
        write(args, report, rows)


if __name__ == '__main__':
    main()
