# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Saving and resuming training: checkpoints that survive a kill, and a
resume that never silently restarts.

mmengine 0.10.7 writes ``epoch_N.pth`` and ``last_checkpoint`` in place, so a
job killed while saving leaves a truncated file that ``torch.load`` rejects
with a bare miniz error; its ``CheckpointHook`` deletes the oldest kept
checkpoint *before* writing the new one; and auto-resume trusts
``last_checkpoint`` blindly, or trains from epoch 0 when it is missing.

Here a file is complete or absent: it is written beside its final name,
flushed to disk and renamed over it (``os.replace`` is atomic on POSIX and
Windows): :func:`save_atomically` for checkpoints (``SafeRunner``'s
``save_checkpoint``), :func:`atomic_write_text` for ``last_checkpoint``.
:class:`SafeCheckpointHook` saves, then points ``last_checkpoint`` at the
new file, and only then prunes; :func:`resume_target` checks that the
checkpoint it hands to ``Runner.resume`` loads.

Loading weights (ImageNet backbones, trained detectors) is
:mod:`mmghost.checkpoint`.
"""
import glob
import logging
import os
import os.path as osp
import re
from typing import Callable, List, Optional, Tuple

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = [
    'ResumeError', 'SafeCheckpointHook', 'atomic_write_text',
    'find_resume_checkpoint', 'fsync_path', 'resume_problem',
    'resume_target', 'save_atomically'
]

LAST_CHECKPOINT = 'last_checkpoint'
TMP_SUFFIX = '.tmp'
# what CheckpointHook's default filename_tmpl writes
RUN_CHECKPOINT = re.compile(r'^(epoch|iter)_\d+\.pth$')


class ResumeError(RuntimeError):
    """A resume was asked for and no checkpoint it could mean loads."""


def fsync_path(path: str) -> None:
    """Flush a file's (or a directory's entries') data to disk."""
    flags = os.O_RDONLY
    if osp.isdir(path):
        flags |= getattr(os, 'O_DIRECTORY', 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # a directory cannot be opened on Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _replace(tmp: str, path: str) -> None:
    """Flush the written ``tmp`` to disk and rename it over ``path``."""
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(osp.dirname(osp.abspath(path)))


def atomic_write_text(path: str, text: str) -> None:
    """Replace ``path`` by a file holding ``text``, all at once."""
    tmp = path + TMP_SUFFIX
    with open(tmp, 'w') as f:
        f.write(text)
    _replace(tmp, path)


def save_atomically(save: Callable[[str], None], out_dir: str,
                    filename: str) -> None:
    """Write ``out_dir/filename`` all at once: ``save(name)`` writes the
    file under ``filename + '.tmp'``, which then replaces ``filename``."""
    tmp_name = filename + TMP_SUFFIX
    save(tmp_name)
    _replace(osp.join(out_dir, tmp_name), osp.join(out_dir, filename))


def _is_local(path: str) -> bool:
    return '://' not in path


def _inspect(filename: str) -> Tuple[Optional[str], Optional[dict]]:
    """``(problem, meta)``: why ``filename`` cannot be resumed from (``None``
    if it can), and the checkpoint's ``meta`` when it can."""
    if _is_local(filename) and not osp.isfile(filename):
        return 'does not exist', None
    try:
        checkpoint = CheckpointLoader.load_checkpoint(filename, 'cpu')
    except Exception as e:  # a truncated zip, a bad pickle, ...
        # torch's miniz message runs on for three sentences: keep the first
        reason = str(e).strip().split('\n')[0].split('. ')[0].rstrip('.')
        return f'is unreadable ({reason or type(e).__name__})', None
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if (not isinstance(meta, dict) or 'epoch' not in meta
            or 'iter' not in meta or 'state_dict' not in checkpoint):
        return ('is not a training checkpoint (no meta.epoch, meta.iter '
                'or state_dict)'), None
    return None, meta


def resume_problem(filename: str) -> Optional[str]:
    """Why ``filename`` cannot be resumed from, or ``None`` if it can.

    The answer reads as the end of "checkpoint X ...".
    """
    return _inspect(filename)[0]


def _candidates(dirs: List[str],
                exclude: Optional[str]) -> Tuple[List[str], List[str]]:
    """``*.pth`` files in ``dirs``: those named as the checkpoint hook names
    them (``epoch_N.pth``, ``iter_N.pth``), and the others newest first."""
    found = {}
    for d in dirs:
        for path in glob.glob(osp.join(glob.escape(d), '*.pth')):
            if osp.isfile(path):
                found[osp.abspath(path)] = path
    if exclude is not None and _is_local(exclude):
        found.pop(osp.abspath(exclude), None)
    runs = [p for p in found.values() if RUN_CHECKPOINT.match(osp.basename(p))]
    others = sorted((p for p in found.values() if p not in runs),
                    key=lambda p: (osp.getmtime(p), osp.basename(p)),
                    reverse=True)
    return runs, others


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint auto-resume should continue from, or ``None``.

    * ``last_checkpoint`` names a checkpoint that loads: that one.
    * It names a missing or unreadable file, is empty, or is absent while
      ``*.pth`` files are there: the furthest trained checkpoint that the
      checkpoint hook wrote (``epoch_N.pth``/``iter_N.pth``, in ``work_dir``
      and the directory ``last_checkpoint`` points into) that loads, by the
      iteration its ``meta`` records; modification times are not trusted
      (a copy or a restore from backup changes them). Only when none of
      those loads: the newest other training checkpoint that loads
      (``best_*.pth``, a file copied in), by modification time. Either way
      with a warning that says which and why.
    * Nothing there at all: ``None`` (the caller starts from scratch).
    * Checkpoints are there but none loads: :class:`ResumeError`.
    """
    last_file = osp.join(work_dir, LAST_CHECKPOINT)
    named = None
    problem = None
    if osp.isfile(last_file):
        with open(last_file) as f:
            named = f.read().strip() or None
        if named is None:
            problem = f'{last_file} is empty'
        else:
            why = resume_problem(named)
            if why is None:
                return named
            problem = f'{last_file} names {named}, which {why}'
    reason = problem or f'there is no {last_file}'
    dirs = [work_dir]
    if named is not None and _is_local(named):
        dirs.append(osp.dirname(named) or '.')

    runs, others = _candidates(dirs, exclude=named)
    unreadable = []
    loadable = []
    for path in runs:
        why, meta = _inspect(path)
        if why is None:
            loadable.append((meta['iter'], meta['epoch'], path))
        elif not why.startswith('is not a training checkpoint'):
            unreadable.append(f'{osp.basename(path)} {why}')
    if loadable:
        step, _, path = max(loadable)
        print_log(
            f'{reason}; resuming from the furthest trained checkpoint of '
            f'this run that loads, {path} (iteration {step})',
            logger='current',
            level=logging.WARNING)
        return path
    for path in others:
        why = resume_problem(path)
        if why is None:
            print_log(
                f'{reason}, and no epoch_N.pth or iter_N.pth there loads; '
                f'resuming from the newest other checkpoint that loads, '
                f'{path}',
                logger='current',
                level=logging.WARNING)
            return path
        if not why.startswith('is not a training checkpoint'):
            unreadable.append(f'{osp.basename(path)} {why}')
    if problem is None and not unreadable:
        return None  # a fresh work dir
    others = ', '.join(unreadable) if unreadable else 'there is none'
    raise ResumeError(
        f'cannot resume in {work_dir}: {reason}, and no other checkpoint '
        f'there loads ({others}); rather than train from epoch 0, this run '
        'stops: pass --resume CKPT, or move the checkpoints away to start '
        'from scratch.')


def resume_target(work_dir: str, load_from: Optional[str]) -> Optional[str]:
    """The checkpoint a resume continues from: ``load_from`` if given (it
    must load, else :class:`ResumeError`), else
    :func:`find_resume_checkpoint` of ``work_dir``."""
    if load_from is None:
        return find_resume_checkpoint(work_dir)
    why = resume_problem(load_from)
    if why is not None:
        raise ResumeError(f'cannot resume from {load_from}: it {why}.')
    return load_from


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` that never leaves the work dir without a good
    checkpoint.

    The runner's ``save_checkpoint`` writes the new checkpoint atomically
    (see :class:`mmghost.engine.SafeRunner`); then ``last_checkpoint`` is
    replaced atomically; only then is the checkpoint beyond
    ``max_keep_ckpts`` removed (mmengine removes it first, so with
    ``max_keep_ckpts=1`` a kill during the save left no checkpoint at all).
    Disk use peaks at ``max_keep_ckpts + 1`` checkpoints for that moment.
    """

    def _save_checkpoint_with_step(self, runner, step, meta):
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)

        # Model parallel-like training pulls sharded states from all ranks,
        # but only the main process records and prunes.
        if not is_main_process():
            return
        atomic_write_text(
            osp.join(runner.work_dir, LAST_CHECKPOINT), self.last_ckpt)
        if outdated is not None and outdated != step:
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(outdated))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                # checkpoints saved by deepspeed are directories
                self.file_backend.rmtree(path)
