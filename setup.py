# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
import os.path as osp

from setuptools import find_packages, setup


def readme():
    with open(osp.join(osp.dirname(__file__), 'README.md'),
              encoding='utf-8') as f:
        return f.read()


def version():
    namespace = {}
    with open(osp.join('mmghost', 'version.py'), encoding='utf-8') as f:
        exec(f.read(), namespace)
    return namespace['__version__']


setup(
    name='mmghost',
    version=version(),
    description='GhostNet backbones for MMDetection 3.x',
    long_description=readme(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['mmghost', 'mmghost.*']),
    python_requires='>=3.8',
    # What a user with an existing OpenMMLab 3.x environment can live with;
    # the exact stack `make` installs is pinned in requirements/stack.txt.
    install_requires=[
        'torch>=1.8',
        'mmengine>=0.7.1,<1.0.0',
        'mmcv>=2.0.0rc4,<2.2.0',
        'mmdet>=3.0.0,<4.0.0',
        'pycocotools',
        'safetensors',
    ],
    extras_require={
        'tests': ['pytest'],
        # ONNX export (tools/deployment/export_onnx.py): torch's default
        # (dynamo) exporter needs onnxscript; checked with onnxruntime.
        'onnx': [
            'onnx==1.23.2', 'onnxruntime==1.32.0', 'onnxscript==0.7.2',
            'onnx-ir==1.1.0'
        ],
        # OpenVINO runtime and NNCF's INT8 post-training quantization
        # (tools/deployment/export_openvino.py, tools/infer.py --runtime
        # openvino).
        'openvino': ['openvino==2026.4.1', 'nncf==3.4.0'],
    },
    zip_safe=False,
)
