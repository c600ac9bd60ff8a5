"""The ``--recipe`` options shared by every command that trains or measures a step.

``--recipe`` names a preset (``paper``, ``nnunet``, ``monai-brats``) or a JSON recipe file; the
other options override single fields of it, and ``--set FIELD=VALUE`` any field. Nothing here
knows what a field means: each option maps onto the :class:`~revprof.recipe.Recipe` field of its
name, and the recipe validates it. A command takes them all with :func:`with_recipe_options`, so a
new option is one entry in :data:`OPTIONS` and one field of :class:`RecipeOptions`.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Annotated, Any, TypeVar

import typer

from revprof.cli._common import choice
from revprof.errors import RevprofError
from revprof.recipe import (
    LOSS_NAMES,
    OPTIMIZERS,
    PRESETS,
    TARGETS,
    ZERO_GRADS,
    LossName,
    OptimizerName,
    Recipe,
    Targets,
    ZeroGrad,
    resolve_recipe,
)
from revprof.spec import PRECISIONS
from revprof.spec import Precision as PrecisionName

_PANEL = "Training recipe"

RecipeName = Annotated[str | None, typer.Option(
    "--recipe", metavar="NAME|FILE.json", rich_help_panel=_PANEL,
    help=f"The training step: a preset ({', '.join(PRESETS)}) or a JSON recipe file "
         "('{\"preset\": \"nnunet\", \"batch\": 4}'); default the paper's, or a --spec file's. "
         "The options below override single fields.")]
Optimizer = Annotated[OptimizerName | None, typer.Option(
    "--optimizer", rich_help_panel=_PANEL, parser=choice("optimizer", OPTIMIZERS),
    help="The optimizer (its other settings at PyTorch's defaults unless given).")]
Lr = Annotated[float | None, typer.Option("--lr", rich_help_panel=_PANEL, help="Learning rate.")]
Momentum = Annotated[float | None, typer.Option("--momentum", rich_help_panel=_PANEL,
                                                help="Momentum (sgd, rmsprop).")]
WeightDecay = Annotated[float | None, typer.Option("--weight-decay", rich_help_panel=_PANEL,
                                                   help="Weight decay.")]
Loss = Annotated[LossName | None, typer.Option(
    "--loss", rich_help_panel=_PANEL, parser=choice("loss", LOSS_NAMES),
    help="dice, dice_ce (Dice plus cross-entropy, binary per region or over classes) or ce.")]
TargetsOption = Annotated[Targets | None, typer.Option(
    "--targets", rich_help_panel=_PANEL, parser=choice("targets", TARGETS),
    help="regions (sigmoid masks), classes (softmax over exclusive classes) or labels "
         "(classification).")]
GradScaler = Annotated[bool | None, typer.Option(
    "--grad-scaler/--no-grad-scaler", rich_help_panel=_PANEL, show_default=False,
    help="Scale the loss with a GradScaler (default: on for fp16).")]
Clip = Annotated[float | None, typer.Option("--clip", rich_help_panel=_PANEL,
                                            help="Clip the gradients' total norm to this.")]
Accumulate = Annotated[int | None, typer.Option("--accumulate", rich_help_panel=_PANEL,
                                                help="Micro-batches per optimizer step.")]
ZeroGradOption = Annotated[ZeroGrad | None, typer.Option(
    "--zero-grad", rich_help_panel=_PANEL, parser=choice("zero-grad", ZERO_GRADS),
    help="Where zero_grad runs: start, after_loss or end of the step.")]
Batch = Annotated[int | None, typer.Option("--batch", rich_help_panel=_PANEL,
                                           help="Batch size (default: the recipe's).")]
Precision = Annotated[PrecisionName | None, typer.Option(
    "--precision", rich_help_panel=_PANEL, parser=choice("precision", PRECISIONS),
    help="fp32, bf16 or fp16 autocast (default: the recipe's).")]
Set = Annotated[list[str] | None, typer.Option(
    "--set", metavar="FIELD=VALUE", rich_help_panel=_PANEL,
    help="Set any recipe field, the value as JSON or text (--set eps=1e-6 --set "
         "zero_grad=after_loss; null unsets a field: --set weight_decay=null is PyTorch's "
         "default); repeatable. See docs/recipes.md for the fields.")]


DeviceMemory = Annotated[str | None, typer.Option(
    "--device-memory", metavar="SIZE|CARD",
    help="The card: a size (12GiB) or a name (rtx3060, rtx4060, a100-40gb, a100-80gb, h100-80gb, "
         "h200). The allocator replay then follows torch's free-and-retry path on what the card "
         "leaves the allocator (its total less the CUDA context and workspace allowances) and "
         "says whether the step runs out of memory.")]


@dataclass(frozen=True)
class RecipeOptions:
    """The recipe options of one invocation (``None``: not given). Each field but ``recipe`` is
    the :class:`~revprof.recipe.Recipe` field of the same name."""

    recipe: str | None = None
    optimizer: OptimizerName | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    loss: LossName | None = None
    targets: Targets | None = None
    grad_scaler: bool | None = None
    clip: float | None = None
    accumulate: int | None = None
    zero_grad: ZeroGrad | None = None
    batch: int | None = None
    precision: PrecisionName | None = None
    set: list[str] | None = None

    def overrides(self) -> dict[str, Any]:
        """The fields given, by recipe field name (``--set`` ones last).

        Raises:
            RevprofError: a ``--set`` value that is not ``FIELD=VALUE``.
        """
        given = {f.name: getattr(self, f.name) for f in fields(self)
                 if f.name not in ("recipe", "set") and getattr(self, f.name) is not None}
        for item in self.set or ():
            name, sep, text = item.partition("=")
            if not sep or not name.strip():
                raise RevprofError(f"--set {item!r} must be FIELD=VALUE, e.g. --set eps=1e-6")
            given[name.strip()] = _value(text.strip())
        return given

    def resolve(self, default: Recipe | None = None, **more: Any) -> Recipe:
        """The recipe: ``--recipe`` (else ``default``, else the paper's) with the overrides given
        here and in ``more`` (``None`` values are not overrides).

        Raises:
            RevprofError: an unknown preset, a bad recipe file or a bad value, naming the field.
        """
        kwargs = {"default": default} if default is not None else {}
        given = {name: value for name, value in more.items() if value is not None}
        return resolve_recipe(self.recipe, {**self.overrides(), **given}, **kwargs)

    def given(self) -> bool:
        """Whether any recipe option was given."""
        return self.recipe is not None or bool(self.overrides())


def _value(text: str) -> Any:
    """A ``--set`` value: JSON when it parses (numbers, true/false/null, lists), else the text."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return text


OPTIONS: dict[str, Any] = {
    "recipe": RecipeName, "optimizer": Optimizer, "lr": Lr, "momentum": Momentum,
    "weight_decay": WeightDecay, "loss": Loss, "targets": TargetsOption,
    "grad_scaler": GradScaler, "clip": Clip, "accumulate": Accumulate, "zero_grad": ZeroGradOption,
    "batch": Batch, "precision": Precision, "set": Set,
}
"""Every recipe option: the :class:`RecipeOptions` field and its Typer annotation."""

R = TypeVar("R")


def with_recipe_options(command: Callable[..., R]) -> Callable[..., R]:
    """Give ``command`` every recipe option: its ``recipe_options: RecipeOptions`` parameter is
    replaced, for Typer, by one keyword option per entry of :data:`OPTIONS`, and the values are
    gathered back into a :class:`RecipeOptions` when it runs."""
    signature = inspect.signature(command, eval_str=True)
    kept = [p for p in signature.parameters.values() if p.name != "recipe_options"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                               annotation=annotation) for name, annotation in OPTIONS.items()]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        values = {name: kwargs.pop(name, None) for name in OPTIONS}
        return command(*args, recipe_options=RecipeOptions(**values), **kwargs)

    wrapper.__signature__ = signature.replace(parameters=kept + added)  # type: ignore[attr-defined]
    return wrapper
