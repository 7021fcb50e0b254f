#!/usr/bin/env bash
# Test on GPUS processes with torchrun, results gathered on rank 0:
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options]
# On a machine without CUDA the processes run on CPU over gloo. PORT,
# NNODES, NODE_RANK and MASTER_ADDR as in MMDetection; PYTHON picks the
# interpreter.
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

${PYTHON:-python} -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "$(dirname "$0")/test.py" \
    $CONFIG \
    $CHECKPOINT \
    --launcher pytorch "${@:4}"
