"""Any network, named by a factory: ``PACKAGE.MODULE:FACTORY`` with keyword arguments, a preset, a
zero-argument callable or an ``nn.Module``.

This is the only place revprof runs user code, so every way it can go wrong (a module that does
not import, a missing attribute, a factory that raises, a forward that fails or returns the wrong
shape) becomes one :class:`~revprof.errors.RevprofError` naming the factory.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import json
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import nn

from revprof.errors import RevprofError, closest, first_line
from revprof.nn._torchvision import ensure_torchvision_importable
from revprof.nn.presets import PRESETS, preset_levels

_FACTORY_PATTERN = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_IN_CHANNEL_KEYS = ("in_channels", "input_channels")


@contextlib.contextmanager
def _ctrl_c_seen() -> Iterator[list[int]]:
    """Note a SIGINT (or a SIGTERM Python turns into KeyboardInterrupt) that arrives during the
    block, then let the handler that was there act on it as before. Yields the signals seen; off
    the main thread, where no handler can be set, it holds one entry from the start (every
    KeyboardInterrupt then counts as a real Ctrl-C)."""
    seen: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        seen.append(0)
        yield seen
        return
    previous = {int(signum): signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    watched: dict[int, Any] = {signum: handler for signum, handler in previous.items()
                               if callable(handler)}

    def note(signum: int, frame: Any) -> None:
        seen.append(signum)
        watched[signum](signum, frame)

    for signum in watched:
        signal.signal(signum, note)
    try:
        yield seen
    finally:
        for signum, handler in watched.items():
            signal.signal(signum, handler)


DEFAULT_USER_CODE_TIMEOUT = 600.0
"""Seconds one call of user code may take (an import, a factory, a forward on fake tensors): ten
times the slowest legitimate call seen on a shared 2-core CPU (importing MONAI and torchvision,
about 20 s; building nnU-Net's largest preset, a few seconds), so a slow machine never trips it
while a call that never returns still ends within minutes."""
TIMEOUT_VARIABLE = "REVPROF_USER_CODE_TIMEOUT"
MAX_USER_CODE_TIMEOUT = 7 * 24 * 3600.0
_SWALLOWED_ALARMS = 5  # alarms, one a second after the limit, user code may swallow


class _TimedOut(BaseException):
    """Raised by the alarm inside user code that ran past its limit (a BaseException, so the
    user's own ``except Exception`` cannot swallow it; raised again each second after, so a
    loop that swallows even that still ends)."""


class UserCodeTimeout(RevprofError):
    """User code ran past :func:`user_code_timeout` (never retried)."""


def user_code_timeout() -> float:
    """The time limit on one call of user code, in seconds (0: none): ``REVPROF_USER_CODE_TIMEOUT``
    when set, else :data:`DEFAULT_USER_CODE_TIMEOUT`.

    Raises:
        RevprofError: the variable is not a number from 0 to a week.
    """
    text = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_USER_CODE_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= MAX_USER_CODE_TIMEOUT:
        raise RevprofError(f"{TIMEOUT_VARIABLE} must be seconds from 0 (no limit) to "
                           f"{MAX_USER_CODE_TIMEOUT:.0f}; got {text!r}")
    return value


@contextlib.contextmanager
def _time_limit(what: str) -> Iterator[None]:
    """End the block with :class:`_TimedOut` after :func:`user_code_timeout` seconds (SIGALRM).
    Only the main thread can take a signal: elsewhere, and with a limit of 0, nothing is timed.
    The alarm interrupts Python code and blocking calls; a C loop that never returns to Python
    (a single huge tensor operation) is interrupted when it does."""
    limit = user_code_timeout()
    if not limit or threading.current_thread() is not threading.main_thread():
        yield
        return

    alarms = [0]

    def expire(signum: int, frame: Any) -> None:
        alarms[0] += 1
        if alarms[0] > _SWALLOWED_ALARMS:  # the code swallows even BaseException: end the process
            sys.stderr.write(f"error: {what} did not return within {limit:g} s and ignores being "
                             f"stopped; exiting\n")
            sys.stderr.flush()
            os._exit(1)
        raise _TimedOut

    previous = signal.signal(signal.SIGALRM, expire)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, limit, 1.0)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # an enclosing limit keeps running, less the time spent here
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3))


@contextlib.contextmanager
def user_code(what: str) -> Iterator[None]:
    """Run user code (a module's import, a factory, a forward): anything it raises becomes one
    :class:`RevprofError` ``"<what> raised <Type>: <first line>"``, also ``SystemExit`` (an
    ``exit()`` inside a factory) and a ``KeyboardInterrupt`` it raises itself. A real Ctrl-C
    still interrupts, and a :class:`RevprofError` passes as it is. A call that runs longer than
    :func:`user_code_timeout` (default 600 s, ``REVPROF_USER_CODE_TIMEOUT``) ends in
    ``"<what> did not return within N s"``."""
    limit = user_code_timeout()
    with _ctrl_c_seen() as seen:
        try:
            with _time_limit(what):
                yield
        except RevprofError:
            raise
        except _TimedOut:
            raise UserCodeTimeout(f"{what} did not return within {limit:g} s; if it is only slow, "
                               f"raise the limit with {TIMEOUT_VARIABLE}=SECONDS (0: no limit)") from None
        except KeyboardInterrupt:
            if seen:
                raise
            raise RevprofError(f"{what} raised KeyboardInterrupt itself (no Ctrl-C was "
                               f"pressed)") from None
        except SystemExit as error:
            raise RevprofError(f"{what} raised SystemExit({error.code!r}): it exits the program "
                               f"(exit() or sys.exit()) instead of returning") from None
        except BaseException as error:  # noqa: BLE001 - user code: any error becomes one line
            raise RevprofError(f"{what} raised {first_line(error, with_type=True)}") from None


def load_factory(name: str) -> Callable[..., Any]:
    """The callable ``PACKAGE.MODULE:ATTR`` names (``ATTR`` may be dotted), or a preset's.

    Raises:
        RevprofError: a malformed name, a module that does not import, a missing attribute or one
            that is not callable.
    """
    preset = PRESETS.get(name)
    target = preset.factory if preset else name
    if not _FACTORY_PATTERN.match(target):
        raise RevprofError(f"model {name!r} must be PACKAGE.MODULE:FACTORY (e.g. "
                           f"monai.networks.nets:SegResNet) or a preset: {', '.join(PRESETS)}"
                           f"{closest(name, PRESETS)}")
    module_name, attr = target.split(":")
    with user_code(f"model {name!r}: importing {module_name!r}"):  # the module may raise anything
        try:
            if module_name.partition(".")[0] == "torchvision":
                ensure_torchvision_importable()  # its CUDA-built ops may not load beside a CPU torch
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            hint = ""
            if preset or (error.name or "").split(".")[0] in ("monai", "dynamic_network_architectures",
                                                               "torchvision"):
                hint = " (install revprof[monai], revprof[nnunet] or revprof[torchvision]; see pyproject.toml)"
            raise RevprofError(f"model {name!r}: cannot import {module_name!r}: "
                               f"{first_line(error, with_type=True)}{hint}") from None
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            raise RevprofError(f"model {name!r}: {module_name!r} has no attribute {attr!r}")
        value = getattr(value, part)
    if not callable(value):
        raise RevprofError(f"model {name!r}: {attr!r} is a {type(value).__name__}, not a callable factory")
    return value


def parse_model_kwargs(text: str | None) -> dict[str, Any]:
    """``--model-kwargs``: a JSON object (never evaluated as code).

    Raises:
        RevprofError: not JSON, or not an object.
    """
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise RevprofError(f"--model-kwargs must be a JSON object; {_shown(text)} is not JSON "
                           f"({error.msg})") from None
    except RecursionError:
        raise RevprofError(f"--model-kwargs must be a JSON object; {_shown(text)} is nested too "
                           f"deep") from None
    if not isinstance(value, dict):
        raise RevprofError(f"--model-kwargs must be a JSON object like '{{\"init_filters\": 16}}'; "
                           f"got {type(value).__name__}")
    return value


def _shown(text: str) -> str:
    """``text`` as a message shows it: quoted, cut to 60 characters."""
    return repr(text) if len(text) <= 60 else repr(text[:57] + "...")


def _outputs(output: Any, name: str) -> list[torch.Tensor]:
    """:func:`revprof.step.as_outputs`, with the factory named in the error."""
    from revprof.step import as_outputs

    try:
        return as_outputs(output)
    except RevprofError as error:
        raise RevprofError(f"model {name!r}: {error}") from None


def _check_differentiable(outputs: Sequence[torch.Tensor], name: str, words: str) -> None:
    """Logits a training step can differentiate: floating point, and carrying a gradient.

    Raises:
        RevprofError: an output of another dtype (an integer label map), or none that depends on
            the parameters with autograd on (a forward under ``torch.no_grad()`` or ``.detach()``).
    """
    for i, output in enumerate(outputs):
        if not output.dtype.is_floating_point:
            which = "the output" if len(outputs) == 1 else f"output {i} of {len(outputs)}"
            raise RevprofError(f"model {name!r}: {which} on a {words} input is a {output.dtype} "
                               f"tensor; a training step needs floating-point logits")
    if not any(output.requires_grad for output in outputs):
        raise RevprofError(f"model {name!r}: the output on a {words} input carries no gradient "
                           f"(computed under torch.no_grad() or detached); a training step needs "
                           f"logits that depend on the parameters")


@dataclass(frozen=True)
class ModelSpec:
    """A network built by a factory: a :class:`~revprof.network.Network` like
    :class:`~revprof.spec.ArchSpec`, for any PyTorch module. Its forward returns logits; the
    recipe (:class:`~revprof.recipe.Recipe`) says what they are trained against.

    Attributes:
        factory: a preset name or ``PACKAGE.MODULE:FACTORY`` (for a callable or module passed in
            Python: its qualified name).
        kwargs: keyword arguments for the factory (JSON-able).
        in_channels: input channels ``C_in`` of ``(B, C_in, *spatial)``.
        out_channels: output channels (or classes), found by a forward when not given.
        levels: patches must be multiples of ``2**(levels-1)`` per axis (1: any size).
        bottleneck_edge: the planner's smallest patch is this many voxels per axis at the lowest stage.
        outputs: shapes of the outputs at the checked batch and patch (more than one: deep
            supervision).
    """

    factory: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    in_channels: int = 1
    out_channels: int | None = None
    levels: int = 1
    bottleneck_edge: int = 1
    outputs: tuple[tuple[int, ...], ...] = ()
    source: Callable[[], nn.Module] | nn.Module | None = field(default=None, compare=False, repr=False)

    arch = "model"

    @property
    def output_kind(self) -> Literal["probabilities", "logits"]:
        return "logits"

    @property
    def patch_multiple(self) -> int:
        """Every patch axis must be a multiple of ``2**(levels-1)``."""
        return 2 ** (self.levels - 1)

    def output_shapes(self, batch: int, patch: Sequence[int]) -> tuple[tuple[int, ...], ...]:
        """The output shapes at ``(batch, in_channels, *patch)``: the checked ones when they are
        of that batch and patch, else from a forward over fake tensors."""
        if self.outputs and self.outputs[0][0] == batch and (
                len(self.outputs[0]) == 2 or tuple(self.outputs[0][2:]) == tuple(patch)):
            return self.outputs
        return self.checked(patch, batch).outputs

    def build(self, fake: bool = False) -> nn.Module:
        """The network (for an ``nn.Module`` source: a copy; ``fake``: with fake parameters, to be
        called inside ``FakeTensorMode``).

        With ``fake``, a factory is run outside the fake mode, on the ``meta`` device (nothing
        allocated), or on the CPU when it cannot build there (an ``__init__`` that reads a tensor's
        value: torchvision's RegNet), and the module is copied with fake parameters and buffers
        (:func:`_copy_module`): some networks cannot be built over fake tensors at all
        (torchvision's ConvNeXt and RegNet read a value in their ``__init__``).

        Raises:
            RevprofError: the factory raised or returned something that is not an ``nn.Module``.
        """
        if isinstance(self.source, nn.Module):
            return _copy_module(self.source, fake)
        if not fake:
            return self._call_factory()
        from torch._subclasses.fake_tensor import unset_fake_temporarily

        with unset_fake_temporarily(), torch.random.fork_rng(devices=[]):
            template = self.template()
        return _copy_module(template, fake=True)

    def template(self) -> nn.Module:
        """The network built without memory where the factory allows it: on the ``meta`` device,
        else (its ``__init__`` needs values) on the CPU. For its structure and shapes only.

        Raises:
            RevprofError: the factory raised on the CPU too, or returned no ``nn.Module``.
        """
        if isinstance(self.source, nn.Module):
            return self.source
        try:
            with torch.device("meta"):
                return self._call_factory()
        except UserCodeTimeout:
            raise
        except RevprofError:
            return self._call_factory()

    def _call_factory(self) -> nn.Module:
        factory = self.source if self.source is not None else load_factory(self.factory)
        with user_code(f"model {self.factory!r}: the factory"):
            model = factory(**self.kwargs)
        if not isinstance(model, nn.Module):
            raise RevprofError(f"model {self.factory!r}: the factory returned a {type(model).__name__}, "
                               f"not a torch.nn.Module")
        return model

    @property
    def min_patch(self) -> int:
        """The smallest patch edge it trains at: ``bottleneck_edge`` voxels at the lowest stage."""
        return self.bottleneck_edge * 2 ** (self.levels - 1)

    def probed(self, batch: int = 1, targets: str = "regions", largest: int = 1024) -> ModelSpec:
        """This spec with its smallest patch raised to the smallest cube its forward accepts: the
        edges :attr:`min_patch` × 1, 2, 4, ... up to ``largest`` are tried over fake tensors. For
        a factory of unknown patch multiple (``levels`` 1) the accepted edge also becomes the
        multiple (SegResNet's three downsamplings accept 8³ but not 1³, where GroupNorm meets one
        value per channel); otherwise it sets :attr:`bottleneck_edge`.

        Raises:
            RevprofError: no edge up to ``largest`` is accepted (the last forward's error).
        """
        edge, error = self.min_patch, None
        while edge <= max(largest, self.min_patch):
            candidate = (replace(self, levels=edge.bit_length()) if self.levels == 1 else
                         replace(self, bottleneck_edge=edge // self.patch_multiple))
            try:
                candidate.checked((edge,) * 3, batch, targets)
                return candidate
            except RevprofError as found:
                error = found
            edge *= 2
        raise RevprofError(f"model {self.factory!r} accepts no cube patch from {self.min_patch} to "
                           f"{largest} voxels per axis (doubling); give --patch, or "
                           f"--patch-multiple; the last try: {error}")

    def describe(self) -> str:
        args = ", ".join(f"{k}={json.dumps(v)}" for k, v in self.kwargs.items())
        return f"{self.factory}({args})"

    def to_dict(self) -> dict[str, Any]:
        return {"arch": "model", "factory": self.factory, "kwargs": dict(self.kwargs),
                "in_channels": self.in_channels, "out_channels": self.out_channels,
                "levels": self.levels, "bottleneck_edge": self.bottleneck_edge,
                "outputs": [list(s) for s in self.outputs]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict` (the ``loss`` and ``loss_words`` keys of older versions,
        which kept the loss in the network, are ignored: the recipe has it)."""
        return cls(factory=data["factory"], kwargs=dict(data.get("kwargs") or {}),
                   in_channels=int(data["in_channels"]), out_channels=data.get("out_channels"),
                   levels=int(data.get("levels", 1)),
                   bottleneck_edge=int(data.get("bottleneck_edge", 1)),
                   outputs=tuple(tuple(s) for s in data.get("outputs") or ()))

    def checked(self, patch: Sequence[int], batch: int = 1, targets: str | None = "regions") -> ModelSpec:
        """This spec with ``out_channels`` and ``outputs`` found by a forward over fake tensors on
        ``(batch, in_channels, *patch)``; nothing is allocated.

        ``targets`` ``regions`` and ``classes`` need outputs ``(batch, C, *s)``, the first at the
        full patch, one ``C`` for all and no axis larger than the patch; ``labels`` needs one
        output ``(batch, K)`` (a classifier); ``None`` takes any outputs (``out_channels``: the
        first output's axis 1, if it has one).

        Raises:
            RevprofError: a patch axis not a multiple of :attr:`patch_multiple`, no trainable
                parameters, a forward that fails, or outputs that do not fit ``targets``.
        """
        from torch._subclasses.fake_tensor import FakeTensorMode

        patch = tuple(patch)
        for axis, size in enumerate(patch):
            if size % self.patch_multiple:
                raise RevprofError(f"patch {'x'.join(map(str, patch))}: axis {axis} = {size} must be a "
                                   f"multiple of {self.patch_multiple} for model {self.factory!r}")
        words = "x".join(map(str, (batch, self.in_channels, *patch)))
        with FakeTensorMode(), torch.random.fork_rng(devices=[]):
            model = self.build(fake=True)
            if not any(p.requires_grad for p in model.parameters()):
                raise RevprofError(f"model {self.factory!r} has no trainable parameters; a training "
                                   f"step needs some")
            with user_code(f"model {self.factory!r}: the forward on a {words} input"), \
                    torch.enable_grad():
                output = model(torch.empty(batch, self.in_channels, *patch))
            outputs = _outputs(output, self.factory)
            _check_differentiable(outputs, self.factory, words)
            shapes = tuple(tuple(o.shape) for o in outputs)
        first = shapes[0]
        if targets is None:
            return replace(self, out_channels=first[1] if len(first) > 1 else None, outputs=shapes)
        if targets == "labels":
            channels = first[1] if len(first) == 2 else None
            if len(shapes) != 1 or len(first) != 2 or first[0] != batch or (
                    self.out_channels is not None and channels != self.out_channels):
                raise RevprofError(f"model {self.factory!r}: targets 'labels' need one output "
                                   f"{batch}x{self.out_channels or 'K'} (class logits) on a {words} "
                                   f"input; got {', '.join('x'.join(map(str, s)) for s in shapes)}",
                                   field="targets")
            return replace(self, out_channels=channels, outputs=shapes)
        rank = 2 + len(patch)
        channels = first[1] if len(first) == rank else None
        expected = (batch, self.out_channels or "C", *patch)
        for i, shape in enumerate(shapes):
            good = (len(shape) == rank and shape[0] == batch and shape[1] == channels
                    and (shape[2:] == patch if i == 0 else all(s <= p for s, p in zip(shape[2:], patch))))
            if not good or (self.out_channels is not None and channels != self.out_channels):
                which = "the output" if len(shapes) == 1 else f"output {i} of {len(shapes)}"
                hint = ("; a classifier trains on class labels: set the recipe's targets=labels "
                        "and loss=ce (--set targets=labels --set loss=ce)" if len(shape) == 2 else
                        " (deep-supervision outputs may be smaller)")
                raise RevprofError(f"model {self.factory!r}: {which} on a {words} input has shape "
                                   f"{'x'.join(map(str, shape))}; expected "
                                   f"{'x'.join(map(str, expected))} for targets {targets!r}{hint}")
        if targets == "classes" and channels is not None and channels < 2:
            raise RevprofError(f"model {self.factory!r}: targets 'classes' need at least 2 output "
                               f"channels (background and one class); it has {channels}",
                               field="targets")
        return replace(self, out_channels=channels, outputs=shapes)


def _copy_module(module: nn.Module, fake: bool) -> nn.Module:
    """A deep copy of ``module``; with ``fake`` (inside ``FakeTensorMode``) its parameters, buffers
    and other tensor attributes are replaced by new fake tensors of the same shape and dtype, so
    the real (or meta) ones are never touched."""
    if not fake:
        return copy.deepcopy(module)
    memo: dict[int, Any] = {}
    for p in module.parameters():
        memo[id(p)] = nn.Parameter(torch.empty(p.shape, dtype=p.dtype), requires_grad=p.requires_grad)
    for b in module.buffers():
        memo[id(b)] = torch.empty(b.shape, dtype=b.dtype)
    for sub in module.modules():  # other tensor attributes, also in lists, tuples and dicts
        for value in _plain_tensors(vars(sub).values()):  # (MONAI's DynUNet: heads = [rand(1)])
            if id(value) not in memo:
                memo[id(value)] = torch.empty(value.shape, dtype=value.dtype)
    return copy.deepcopy(module, memo)


def _plain_tensors(values: Iterable[Any], depth: int = 4) -> Iterator[torch.Tensor]:
    """The tensors among ``values`` and inside their lists, tuples, sets and dict values, to
    ``depth`` containers deep (modules are left to :meth:`nn.Module.modules`)."""
    for value in values:
        if isinstance(value, torch.Tensor):
            yield value
        elif depth and isinstance(value, (list, tuple, set, frozenset)):
            yield from _plain_tensors(value, depth - 1)
        elif depth and isinstance(value, dict):
            yield from _plain_tensors(value.values(), depth - 1)


def _infer_in_channels(model: nn.Module, kwargs: Mapping[str, Any]) -> int | None:
    for key in _IN_CHANNEL_KEYS:
        if isinstance(kwargs.get(key), int):
            return int(kwargs[key])
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):  # the first convolution reads the input
            return int(module.in_channels)
    return None


def model_spec(model: str | Callable[[], nn.Module] | nn.Module, kwargs: Mapping[str, Any] | None = None,
               in_channels: int | None = None, out_channels: int | None = None,
               patch_multiple: int | None = None) -> ModelSpec:
    """A :class:`ModelSpec` for a preset or ``PACKAGE.MODULE:FACTORY`` name, a factory or a module.

    ``in_channels`` defaults to the factory's ``in_channels``/``input_channels`` keyword, then to
    the first convolution's input channels; ``patch_multiple`` (a power of two) to the preset's.

    Raises:
        RevprofError: as :func:`load_factory` and :meth:`ModelSpec.build`, a patch multiple that
            is not a power of two, or input channels that cannot be found.
    """
    kwargs = dict(kwargs or {})
    levels, bottleneck_edge = 1, 1
    if isinstance(model, str):
        name, source = model, load_factory(model)
        if model in PRESETS:
            levels, bottleneck_edge = preset_levels(model, kwargs), PRESETS[model].bottleneck_edge
    elif isinstance(model, nn.Module):
        name, source = f"{type(model).__module__}.{type(model).__qualname__} (instance)", model
        if kwargs:
            raise RevprofError("kwargs apply to a factory, not to an nn.Module instance")
    elif callable(model):
        qualname = getattr(model, "__qualname__", repr(model))
        name, source = f"{getattr(model, '__module__', '?')}:{qualname}", model
    else:
        raise RevprofError(f"model must be an nn.Module, a zero-argument factory or a "
                           f"PACKAGE.MODULE:FACTORY name; got {type(model).__name__}")
    if patch_multiple is not None:
        if patch_multiple < 1 or patch_multiple & (patch_multiple - 1):
            raise RevprofError(f"patch multiple must be a power of two (1, 2, 4, 8, ...); got {patch_multiple}")
        levels = patch_multiple.bit_length()
    spec = ModelSpec(factory=name, kwargs=kwargs, in_channels=1, out_channels=out_channels,
                     levels=levels, bottleneck_edge=bottleneck_edge,
                     source=source if not isinstance(model, str) else None)
    if in_channels is None:
        if isinstance(model, nn.Module):
            in_channels = _infer_in_channels(model, kwargs)
        else:
            in_channels = _infer_in_channels(spec.template(), kwargs)  # its first convolution
        if in_channels is None:
            raise RevprofError(f"model {name!r}: cannot tell its input channels; give in_channels "
                               f"(--in-channels)")
    if in_channels < 1:
        raise RevprofError(f"in_channels must be at least 1; got {in_channels}")
    return replace(spec, in_channels=in_channels)
