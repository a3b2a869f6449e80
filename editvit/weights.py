"""Reading, writing and loading model weights safely.

Weights are read from safetensors or with `torch.load(..., weights_only=True)`: nothing in a file is ever executed.
Files are written atomically (a temporary file in the same folder, then a rename), so a crash never leaves a
half-written file under the real name.
"""
import os
import pickle
import pickletools
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from .errors import CheckpointError

PathLike = Union[str, os.PathLike]
# keys under which training scripts (timm, DeiT, editvit) nest the model weights, most preferred first
_NESTED_KEYS = ('model', 'state_dict', 'model_state_dict')
# prefixes added by DistributedDataParallel and torch.compile
_WRAPPER_PREFIXES = ('module.', '_orig_mod.')


def atomic_write(path: PathLike, write: Callable[[str], None]) -> Path:
    """Call write(tmp_path), then rename tmp_path to path, so path is either the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private (0600); give the permissions open() would
        with open(tmp, 'rb') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def clean_state_dict(state_dict: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
    """Unwrap a training checkpoint to its model weights and strip the DDP / torch.compile key prefixes."""
    for key in _NESTED_KEYS:
        if key in state_dict and isinstance(state_dict[key], Mapping):
            state_dict = state_dict[key]
            break
    cleaned = {}
    for k, v in state_dict.items():
        if not isinstance(v, torch.Tensor):
            continue
        changed = True
        while changed:
            changed = False
            for prefix in _WRAPPER_PREFIXES:
                if k.startswith(prefix):
                    k, changed = k[len(prefix):], True
        cleaned[k] = v
    return cleaned


def _weights_only_reason(error: Exception) -> str:
    """What torch's weights-only unpickler objected to, without its advice to retry unsafely."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reasons = [line for line in lines if line.startswith(('Trying to load', 'Unsupported', 'Unsupported operand'))]
    return reasons[0] if reasons else lines[-1] if lines else type(error).__name__


def _pickled_code(path: Path) -> Optional[str]:
    """The first class or function a well-formed pickle (bare, or torch's zip with data.pkl) names, as
    'module.name'; None when it names none or is not a pickle at all. Read with pickletools, which parses opcodes and
    executes nothing."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith('data.pkl')), None)
                data = archive.read(name) if name else b''
        else:
            data = path.read_bytes()
        strings: List[str] = []
        for op, arg, _ in pickletools.genops(data):
            if op.name in ('GLOBAL', 'INST'):
                return str(arg).replace(' ', '.')
            if op.name == 'STACK_GLOBAL':
                return '.'.join(strings[-2:])
            if isinstance(arg, str):
                strings.append(arg)
    except Exception:  # not a pickle: random bytes, a truncated file, another format
        return None
    return None


def read_file(path: PathLike) -> Dict[str, Any]:
    """Read a .safetensors file or a torch checkpoint (weights only) as it is stored, without unwrapping it."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f'checkpoint {str(path)!r} is a folder; give the weights file inside it')
    if not path.exists():
        raise CheckpointError(f'checkpoint {str(path)!r} does not exist')
    if not os.access(path, os.R_OK):
        raise CheckpointError(f'checkpoint {str(path)!r} cannot be read: permission denied')
    if path.suffix == '.safetensors':
        try:
            return load_file(str(path), device='cpu')
        except Exception as e:  # safetensors raises its own error types for bad headers
            raise CheckpointError(f'{str(path)!r} is not a valid .safetensors file: {e}') from e
    try:
        obj = torch.load(str(path), map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        code = _pickled_code(path)
        if code is not None:
            raise CheckpointError(
                f'refusing to load {str(path)!r}: it holds pickled objects other than tensors and plain data '
                f'({code}), which could execute code. Re-save only the state dict, or convert it to '
                f'.safetensors.') from e
        raise CheckpointError(f'{str(path)!r} is not a PyTorch checkpoint or .safetensors file (it does not '
                              f'unpickle: {_weights_only_reason(e)}); check the path, or re-save the weights') from e
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f'{str(path)!r} is not a PyTorch checkpoint or .safetensors file, or it is truncated '
                              f'({first.split(". This is")[0]}); check the path, or re-save the weights') from e
    if not isinstance(obj, Mapping):
        raise CheckpointError(f'{str(path)!r} holds a {type(obj).__name__}, not a state dict')
    return dict(obj)


def read_state_dict(path: PathLike) -> Dict[str, torch.Tensor]:
    """The model weights in a file: safetensors or torch checkpoint, nested or not, DDP/compile prefixes stripped."""
    return clean_state_dict(read_file(path))


def save_state_dict(state_dict: Mapping[str, torch.Tensor], path: PathLike) -> Path:
    """Write weights atomically: .safetensors by suffix, otherwise torch.save."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    if str(path).endswith('.safetensors'):
        return atomic_write(path, lambda tmp: save_file(tensors, tmp))
    return atomic_write(path, lambda tmp: torch.save(tensors, tmp))


def save_model(model: nn.Module, path: PathLike) -> Path:
    """Save a model's weights (unwrapped from DDP / torch.compile) so timm can load them with pretrained=True."""
    return save_state_dict(clean_state_dict(model.state_dict()), path)


def check_fits(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = 'checkpoint') -> None:
    """Raise CheckpointError listing missing keys, unexpected keys and shape mismatches, if there are any."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = sorted(f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}'
                        for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape)
    if not (missing or unexpected or mismatched):
        return
    lines = [f'{source} does not fit {type(model).__name__}:']
    if missing:
        lines.append(f'  missing keys ({len(missing)}): {", ".join(missing)}')
    if unexpected:
        lines.append(f'  unexpected keys ({len(unexpected)}): {", ".join(unexpected)}')
    if mismatched:
        lines.append(f'  shape mismatches ({len(mismatched)}): {"; ".join(mismatched)}')
    lines.append('  Check the model name and its kwargs (img_size, patch_size, depth, num_classes) against the '
                 'ones the checkpoint was trained with.')
    raise CheckpointError('\n'.join(lines))


def adapt_state_dict(model: nn.Module, state_dict: Dict[str, torch.Tensor], source: str) -> Dict[str, torch.Tensor]:
    """The adaptations of the `checkpoint_filter_fn` that timm's convention puts beside the model class (for EDIT:
    DeiT3 conversion, position-embedding resampling); weights it cannot adapt are a CheckpointError."""
    filter_fn = getattr(sys.modules.get(type(model).__module__), 'checkpoint_filter_fn', None)
    if filter_fn is None:
        return state_dict
    try:
        return filter_fn(state_dict, model)
    except (RuntimeError, ValueError, KeyError, IndexError, TypeError) as e:  # weights of another shape or kind
        raise CheckpointError(f'{source} cannot be converted to {type(model).__name__} ({e}); check the model name '
                              f'and its kwargs (embed_dim, depth, num_heads) against the ones the weights were '
                              f'trained with') from e


def check_values(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """CheckpointError for weights that would load into model without error but make it wrong: integer tensors where
    the model holds floats (load_state_dict would cast them), and NaN or infinite values."""
    own = model.state_dict()
    for key, value in state_dict.items():
        mine = own.get(key)
        if mine is None or not mine.is_floating_point() or not isinstance(value, torch.Tensor):
            continue
        if not value.is_floating_point():
            raise CheckpointError(f'{source}: {key!r} holds {value.dtype} values where the model has floating-point '
                                  f'weights; these are not weights of this model')
        if not torch.isfinite(value).all() and torch.isfinite(mine).all():
            raise CheckpointError(f'{source}: {key!r} holds NaN or infinite values; the weights are damaged '
                                  f'(e.g. saved after training diverged): use an earlier checkpoint')


def load_model_weights(model: nn.Module, source: Union[PathLike, Mapping[str, torch.Tensor]],
                       name: Optional[str] = None) -> nn.Module:
    """Load weights into model strictly, after the adaptations of the `checkpoint_filter_fn` that timm's convention
    puts beside the model class (for EDIT: DeiT3 conversion and position-embedding resampling). Errors name the
    file (or `name`, for a state dict read from one)."""
    name = name or (str(source) if not isinstance(source, Mapping) else 'state dict')
    state_dict = clean_state_dict(source) if isinstance(source, Mapping) else read_state_dict(source)
    state_dict = adapt_state_dict(model, state_dict, source=name)
    check_fits(model, state_dict, source=name)
    check_values(model, state_dict, source=name)
    model.load_state_dict(state_dict)
    return model
