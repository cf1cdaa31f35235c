"""The PyTorch hook: smdebug's `smdebug.pytorch.Hook` API and on-disk output, without smdebug.

Lifecycle (as smdebug's, spec §1.3): the top module's forward pre-hook closes the previous step's
files, advances the step counters, writes the state store if the checkpoint dir changed, and saves
the parameters if a collection is due; submodule forward hooks save inputs/outputs; parameter
hooks save gradients during backward. Step N's files appear when step N+1 starts or at close().

Thread safety: one hook per process, driven from the training thread (autograd may run the
gradient hooks on its own thread, but never concurrently with the forward of the same step).
"""
import atexit
import logging
import os
import re
import sys
import time

import numpy as np
import torch

from . import config as _config
from .collections import (CollectionKeys, CollectionManager, DEFAULT_PYTORCH_COLLECTIONS,
                          NON_REDUCTION_COLLECTIONS, SCALAR_COLLECTIONS, _IMPLICIT_REGEX)
from .config import ReductionConfig, SaveConfig
from .modes import ALLOWED_MODES, ModeKeys
from .state_store import MODE_STEP, SAVED, SEEN, TRAINING_RUN, StateStore
from .writer import StepWriter

logger = logging.getLogger("trainyard_debugger")
DEFAULT_INCLUDE_COLLECTIONS = [CollectionKeys.LOSSES]
GRADIENT_PREFIX = "gradient/"
SCALAR_PREFIX = "scalar/"
REDUCTIONS_PREFIX = "smdebug/reductions/"
END_FILE = "training_job_end.ts"
CLAIM_FILE = "claim.smd"


def _flatten(x):
    out = []
    for i in x:
        out.extend(_flatten(i)) if isinstance(i, list) else out.append(i)
    return out


def _match(name, regexes):
    return any(re.search(r, name) for r in regexes)


def to_numpy(value):
    """torch tensors through the CPU (bf16 upcast to float32: numpy has no bfloat16); Python
    scalars become shape [1], as smdebug makes them."""
    if isinstance(value, torch.Tensor):
        t = value.detach()
        if t.dtype == torch.bfloat16:
            t = t.float()
        return t.cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    if np.isscalar(value):
        return np.array([value])
    if isinstance(value, (tuple, list)):
        return np.asarray(value)
    raise TypeError("cannot save a value of type %s" % type(value).__name__)


def reduction_of(name, value, abs_):
    """smdebug's PyTorch numerics: var/std unbiased, norms via torch.norm; numpy for arrays."""
    if isinstance(value, torch.Tensor):
        t = value.detach()
        if t.dtype == torch.bfloat16:
            t = t.float()
        if abs_:
            t = torch.abs(t)
        if name in _config.ALLOWED_REDUCTIONS:
            return getattr(torch.Tensor, "var" if name == "variance" else name)(t)
        return torch.norm(t, p=int(name[1]))
    a = np.absolute(value) if abs_ else value
    if name in ("min", "max"):
        return getattr(np, "a" + name)(a)
    if name in _config.ALLOWED_REDUCTIONS:
        return getattr(np, "var" if name == "variance" else name)(a)
    return np.linalg.norm(a if not np.isscalar(a) else [a], ord=int(name[1]))


def reduction_tensor_name(tensor, red, abs_):
    t = re.sub(r":\d+", "", "%s/%s" % (red, tensor))
    return REDUCTIONS_PREFIX + ("abs_" + t if abs_ else t)


def _on_sagemaker():
    return "TRAINING_JOB_NAME" in os.environ


_current_hook = None


def get_hook(json_config_path=None, create_if_not_exists=False):
    """smdebug's `get_hook()`: the process's last created hook, or one built from the JSON
    config when asked to create it (None when there is no config)."""
    if _current_hook is None and create_if_not_exists:
        Hook.create_from_json_file(json_config_path)
    return _current_hook


class _Scalar:
    __slots__ = ("name", "value", "timestamp")

    def __init__(self, name, value, timestamp):
        self.name, self.value, self.timestamp = name, value, timestamp


class Hook:
    def __init__(self, out_dir=None, export_tensorboard=False, tensorboard_dir=None, dry_run=False,
                 reduction_config=None, save_config=None, include_regex=None, include_collections=None,
                 save_all=False, include_workers="one"):
        if out_dir is None:
            raise ValueError("out_dir is a required argument")
        out_dir = os.path.expanduser(out_dir)
        if out_dir.startswith("s3://"):
            raise ValueError("out_dir must be a local path; the platform uploads it (got %s)" % out_dir)
        if os.path.exists(os.path.join(out_dir, END_FILE)):
            raise ValueError("%s holds a finished trial (%s); give a new out_dir" % (out_dir, END_FILE))
        if export_tensorboard or tensorboard_dir:
            logger.warning("trainyard_debugger does not export TensorBoard summaries; ignored")
        self.out_dir = out_dir
        self.dry_run = dry_run
        self.save_all_workers = include_workers == "all"
        self.chief_worker = "worker_0"
        self.collection_manager = CollectionManager()
        include_collections = (DEFAULT_INCLUDE_COLLECTIONS if include_collections is None
                               else _flatten(include_collections))
        self.include_collections = list(set(include_collections).union(set(DEFAULT_INCLUDE_COLLECTIONS)))
        self.save_all = save_all
        self.save_config = SaveConfig.parse(save_config)
        self.reduction_config = reduction_config or ReductionConfig(save_raw_tensor=True)
        if include_regex is not None:
            self.collection_manager.get(CollectionKeys.DEFAULT).include(include_regex)
            if CollectionKeys.DEFAULT not in self.include_collections:
                self.include_collections.append(CollectionKeys.DEFAULT)
        if save_all:
            self.collection_manager.get(CollectionKeys.ALL).include(".*")
            if CollectionKeys.ALL not in self.include_collections:
                self.include_collections.append(CollectionKeys.ALL)
        self._collections_to_save = set()
        self._for_step = None
        self.prepared_collections = False
        self.tensor_to_collections = {}
        self.written_tensor_name_for_step = {}
        self.init_step = -1
        self.step = -1
        self.last_saved_step = None
        self.mode = ModeKeys.GLOBAL
        self.mode_steps = {ModeKeys.GLOBAL: -1}
        self.writer = None
        self.first_process = None
        self.exported_collections = False
        self.scalar_cache = []
        self.custom_tensors_to_save = {}
        self.module_set = set()
        self.worker = self._worker_name()
        self.training_run = 0
        self._closed = False
        self._failed = False
        self.state_store = StateStore()
        last = self.state_store.last_state()
        if last is not None:
            # Resume after a spot interruption: continue counting from the checkpoint's step.
            self.last_saved_step = last[SAVED]
            self.init_step = self.step = last[SEEN]
            self.training_run = last[TRAINING_RUN] + 1
            for mode, step in last[MODE_STEP].items():
                self.mode_steps[ModeKeys[mode]] = step
            self.mode_steps[ModeKeys.GLOBAL] = self.init_step
        atexit.register(self._cleanup)
        global _current_hook
        _current_hook = self

    # ---- configuration -------------------------------------------------------------------
    @classmethod
    def create_from_json_file(cls, json_file_path=None, path=None):
        from .json_config import create_hook_from_json_config
        return create_hook_from_json_config(cls, json_file_path or path)

    def get_collection(self, name, create=True):
        return self.collection_manager.get(name, create=create)

    def get_collections(self):
        return self.collection_manager.collections

    def add_collection(self, collection):
        self.collection_manager.add(collection)

    def _worker_name(self):
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return "worker_%d" % torch.distributed.get_rank()
        return "worker_0"

    def _num_workers(self):
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_world_size()
        return 1

    def _prepare_collections(self):
        for c in self.collection_manager.collections.values():
            for m, (inputs, outputs) in c.modules.items():
                if inputs:
                    c.include(m._module_name + "_input_")
                if outputs:
                    c.include(m._module_name + "_output_")
            if c.name in _IMPLICIT_REGEX and not c.include_regex and not c.tensor_names:
                c.include(_IMPLICIT_REGEX[c.name])
        for name, c in self.collection_manager.collections.items():
            if name not in DEFAULT_PYTORCH_COLLECTIONS and not c.include_regex and not c.tensor_names:
                raise ValueError("collection %s has neither include_regex nor tensor names" % name)
            if c in self._collections_to_save:
                continue
            if CollectionKeys.ALL in self.include_collections or name in self.include_collections:
                self._collections_to_save.add(c)
        for name, c in self.collection_manager.collections.items():
            if name in NON_REDUCTION_COLLECTIONS:
                c.save_histogram = False
            if c.save_config is None:
                c.save_config = self.save_config
            else:
                c.save_config.merge_default_save_config(self.save_config)
            if name in NON_REDUCTION_COLLECTIONS:
                c.reduction_config = ReductionConfig(save_raw_tensor=True)
            elif c.reduction_config is None:
                c.reduction_config = self.reduction_config
        self.prepared_collections = True

    def _collections_for_step(self):
        if self._for_step is None:
            self._for_step = set()
            for c in self._collections_to_save:
                if self.mode in (ModeKeys.EVAL, ModeKeys.PREDICT) and c.name in (
                        CollectionKeys.GRADIENTS, CollectionKeys.OPTIMIZER_VARIABLES):
                    continue
                if c.save_config.should_save_step(self.mode, self.mode_steps[self.mode]):
                    self._for_step.add(c)
        return self._for_step

    def _collections_with_tensor(self, name):
        if name not in self.tensor_to_collections:
            matched = set()
            for c in self._collections_to_save:
                if name in c.tensor_names:
                    matched.add(c)
                elif _match(name, c.include_regex):
                    c.add_tensor_name(name)
                    matched.add(c)
            self.tensor_to_collections[name] = matched
        return self.tensor_to_collections[name]

    # ---- modes and steps -----------------------------------------------------------------
    def set_mode(self, mode):
        if mode not in ALLOWED_MODES:
            raise ValueError("invalid mode %r; valid: %s" % (mode, ", ".join(m.name for m in ALLOWED_MODES)))
        self.mode = mode
        if mode not in self.mode_steps:
            self.mode_steps[mode] = self.init_step
        self._for_step = None

    def _current_state(self, seen=None):
        mode_steps = {m.name: s for m, s in self.mode_steps.items()}
        if seen is not None and seen != self.step:
            # The checkpoint holds an earlier step than the hook has seen: count the current
            # mode back by the same amount.
            delta = self.step - seen
            mode_steps[self.mode.name] = self.mode_steps[self.mode] - delta
            mode_steps["GLOBAL"] = seen
        return {TRAINING_RUN: self.training_run, SAVED: self.last_saved_step,
                SEEN: self.step if seen is None else seen, MODE_STEP: mode_steps}

    def on_checkpoint_saved(self, step=None):
        """Records that the checkpoint just saved holds the model after global step `step`
        (default: the step the hook last saw). A resumed run starts at step + 1."""
        if step is not None and (not isinstance(step, int) or step > self.step):
            raise ValueError("step=%r must be an int <= the current step %d" % (step, self.step))
        if self.state_store.dir is None:
            if not getattr(self, "_warned_no_cp", False):
                logger.warning("on_checkpoint_saved: no checkpoint dir (CHECKPOINT_CONFIG_FILE_PATH or "
                               "/opt/ml/input/config/checkpointconfig.json); nothing recorded")
                self._warned_no_cp = True
            return
        if (step is None or step == self.step) and self.writer is not None:
            # The checkpoint covers this step: its files must be on disk before the state says
            # so. Otherwise an interruption before the next forward pass loses the step for good
            # (the resumed run starts after it), where smdebug would write it only at that pass.
            self._close_writers()
        self.state_store.append(self._current_state(step))

    def _increment_step(self):
        if self.state_store.checkpoint_changed():
            self.state_store.append(self._current_state())
        self.step += 1
        self.mode_steps[self.mode] += 1
        self.written_tensor_name_for_step.clear()
        if self.mode != ModeKeys.GLOBAL:
            self.mode_steps[ModeKeys.GLOBAL] = self.step
        self._for_step = None

    # ---- writers -------------------------------------------------------------------------
    def _is_writer(self):
        if self.first_process is None:
            self.first_process = self._num_workers() != 1 or self._claim()
        return self.first_process and (self.save_all_workers or self.worker == self.chief_worker)

    def _claim(self):
        """Only one process writes when a non-distributed script runs twice on one out_dir. The
        claim holds our pid, so a claim left by a killed process (a spot interruption) is taken."""
        os.makedirs(self.out_dir, exist_ok=True)
        path = os.path.join(self.out_dir, CLAIM_FILE)
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                return True
            except FileExistsError:
                try:
                    with open(path) as f:
                        pid = int(f.read().strip() or "0")
                    if pid > 0:
                        os.kill(pid, 0)
                        logger.warning("another process (pid %d) writes to %s; this one will not", pid,
                                       self.out_dir)
                        return False
                except ProcessLookupError:
                    pass
                except (OSError, ValueError):
                    return False
                try:
                    os.unlink(path)
                except OSError:
                    pass
        return False

    def _initialize_writer(self, only_if_missing=False):
        if only_if_missing and self.writer:
            return
        if self.dry_run or not self._is_writer():
            return
        self.writer = StepWriter(self.out_dir, self.step, self.worker)

    def _close_writers(self):
        if self.dry_run:
            return
        self._write_scalars()
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def export_collections(self):
        n = self._num_workers()
        if n == 1 and self.first_process is False:
            return
        if not self.save_all_workers:
            if self.worker != self.chief_worker:
                return
            n = 1
        self.collection_manager.num_workers = n
        self.collection_manager.export(self.out_dir, "%s_collections.json" % self.worker)

    # ---- saving --------------------------------------------------------------------------
    def _write_raw(self, name, value, timestamp=None):
        arr = to_numpy(value)
        if self.dry_run or arr.nbytes == 0 or self.writer is None:
            return
        if not (self.save_all_workers or self.worker == self.chief_worker):
            return
        self.writer.write_tensor(arr, name, self.mode, self.mode_steps[self.mode], timestamp)

    def _save_for_tensor(self, name, value):
        colls = self._collections_with_tensor(name).intersection(self._collections_for_step())
        if not colls:
            return
        for c in colls:  # shape first, then reductions, then the raw tensor: smdebug's order
            if not self.dry_run and c.reduction_config.save_shape and self.writer is not None:
                self.writer.write_shape(name, to_numpy(value).shape, self.mode, self.mode_steps[self.mode])
                break
        done = set()
        for c in colls:
            if c.name in SCALAR_COLLECTIONS:
                continue
            rc = c.reduction_config
            for abs_, lists in ((False, (rc.reductions, rc.norms)), (True, (rc.abs_reductions, rc.abs_norms))):
                for lst in lists:
                    for red in lst:
                        if (red, abs_) not in done:
                            try:
                                self._write_raw(reduction_tensor_name(name, red, abs_),
                                                reduction_of(red, value, abs_))
                            except ValueError as e:
                                logger.warning("could not compute %s of %s: %s", red, name, e)
                            done.add((red, abs_))
        for c in colls:
            if c.reduction_config.save_raw_tensor:
                self._write_raw(name, value)
                break

    def _write(self, module_name, var, suffix, idx):
        if isinstance(var, torch.Tensor):
            self._save_for_tensor(module_name + suffix + str(idx), var)
            return idx + 1
        if isinstance(var, (tuple, list)):
            for v in var:
                idx = self._write(module_name, v, suffix, idx)
        return idx

    def _write_io(self, name, var, suffix):
        key = name + suffix
        self.written_tensor_name_for_step[key] = self._write(
            name, var, suffix, self.written_tensor_name_for_step.get(key, 0))

    def save_scalar(self, name, value, sm_metric=False, timestamp=None):
        """Saved as `scalar/<name>` in the current step's files."""
        arr = to_numpy(value)
        if arr.size != 1:
            raise TypeError("scalar/%s has a non-scalar value of type %s" % (name, type(value).__name__))
        self.scalar_cache.append(_Scalar(SCALAR_PREFIX + name, arr, timestamp if timestamp else time.time()))

    def _write_scalars(self):
        for s in self.scalar_cache:
            self._initialize_writer(only_if_missing=True)
            self._write_raw(s.name, s.value, timestamp=s.timestamp)
        self.scalar_cache = []

    def save_tensor(self, tensor_name, tensor_value, collections_to_write=CollectionKeys.DEFAULT):
        """Saves a tensor of the script's own at the next module forward or gradient."""
        try:
            to_numpy(tensor_value)
        except TypeError:
            logger.warning("%s could not be converted into a numpy value; not saved", tensor_name)
            return
        if isinstance(collections_to_write, str):
            collections_to_write = [collections_to_write]
        for c in collections_to_write:
            self.custom_tensors_to_save[tensor_name] = (tensor_value, c)

    def _save_custom_tensors(self):
        for name, (value, cname) in self.custom_tensors_to_save.items():
            c = self.collection_manager.get(cname)
            c.add_tensor_name(name)
            rc = c.reduction_config or self.reduction_config
            if rc.save_raw_tensor:
                self._write_raw(name, value)
        self.custom_tensors_to_save.clear()

    # ---- torch hooks ---------------------------------------------------------------------
    def _guard(fn):
        """A failing hook must not kill training: report once, then stop saving."""
        def wrapped(self, *args):
            if self._failed:
                return None
            try:
                return fn(self, *args)
            except Exception as e:  # noqa: BLE001 - any error disables the hook, not the job
                self._failed = True
                print("trainyard_debugger: hook disabled after an error: %r" % e, file=sys.stderr)
                if os.environ.get("TY_DEBUGGER_RAISE"):
                    raise
                return None
        wrapped.__name__ = fn.__name__
        return wrapped

    @_guard
    def forward_pre_hook(self, module, inputs):
        if self.writer is not None:
            self._close_writers()
        if not self.prepared_collections:
            self._prepare_collections()
        self._increment_step()
        if self._collections_for_step():
            self._initialize_writer()
            prefix = module._get_name() + "_"
            for name, param in module.named_parameters():
                self._save_for_tensor(prefix + name, param.data)
        if self.last_saved_step is not None and not self.exported_collections:
            self.export_collections()
            self.exported_collections = True

    @_guard
    def forward_hook(self, module, inputs, outputs):
        if not self._collections_for_step():
            return
        name = module._module_name
        self._write_io(name, inputs, "_input_")
        self._write_io(name, outputs, "_output_")
        self._save_custom_tensors()
        self.last_saved_step = self.step

    def _backward_hook(self, tname):
        def back(grad):
            self._on_grad(tname, grad)
        return back

    @_guard
    def _on_grad(self, tname, grad):
        if self._collections_for_step() and grad is not None:
            self._save_for_tensor(GRADIENT_PREFIX + tname, grad)
        self._save_custom_tensors()

    def register_module(self, module):
        """Hooks the top module (step boundary, parameters), every submodule (inputs/outputs)
        and every trainable parameter (gradients)."""
        if not isinstance(module, torch.nn.Module):
            raise TypeError("module of type %s must be a torch.nn.Module" % type(module).__name__)
        for name, sub in module.named_modules():
            if sub in self.module_set:
                raise ValueError("module %s is registered twice" % (name or module._get_name()))
            sub._module_name = name
            self.module_set.add(sub)
        module._module_name = module._get_name()
        module.register_forward_pre_hook(self.forward_pre_hook)
        module.apply(lambda m: m.register_forward_hook(self.forward_hook))
        prefix = module._get_name() + "_"
        for name, param in module.named_parameters():
            if param.requires_grad:
                param.register_hook(self._backward_hook(prefix + name))

    register_hook = register_module

    def register_loss(self, loss_module):
        """Saves the loss module's output as `<LossClass>_output_0` (collection losses)."""
        if not isinstance(loss_module, torch.nn.modules.loss._Loss):
            raise TypeError("loss_module must be a torch.nn.modules.loss._Loss, not %s"
                            % type(loss_module).__name__)
        loss_module._module_name = loss_module._get_name()
        self.module_set.add(loss_module)
        loss_module.register_forward_hook(self.forward_hook)

    def record_tensor_value(self, tensor_name, tensor_value):
        """For functional losses such as F.mse_loss: saved as `<tensor_name>_output_0`."""
        if not isinstance(tensor_value, torch.Tensor):
            raise TypeError("tensor_value must be a torch.Tensor")
        self._write_io(tensor_name, tensor_value, "_output_")

    # ---- end -----------------------------------------------------------------------------
    def close(self):
        self._cleanup()

    def _cleanup(self):
        if self._closed:
            return
        self._closed = True
        try:
            if not self.exported_collections:
                self.export_collections()
                self.exported_collections = True
            self._close_writers()
            if not _on_sagemaker() and not self.dry_run:
                # On SageMaker (and Trainyard) the platform places it once the upload is done.
                from .collections import write_atomically
                write_atomically(os.path.join(self.out_dir, END_FILE), b"")
        finally:
            if self.first_process:
                try:
                    os.unlink(os.path.join(self.out_dir, CLAIM_FILE))
                except OSError:
                    pass
