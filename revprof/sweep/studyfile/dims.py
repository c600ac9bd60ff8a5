"""The dimensions of a study's search space: a tagged union of three frozen dataclasses.

- :class:`IntRange` — an integer range ``{low, high, step, log}``, both ends included;
- :class:`Choice` — a list of choices (canonical forms: str, int, float or bool);
- :class:`Fixed` — one value the sampler does not search.

Each has the same small protocol (:attr:`searched`, :attr:`count`, ``values()``, ``suggest()``,
``contains()``, ``to_dict()``) and maps onto the :mod:`optuna.distributions` that Optuna records
for it (``distribution()``). ``suggest()`` asks a trial through Optuna's public
``trial.suggest_int`` / ``trial.suggest_categorical``: the only calls of ``suggest_*`` in revprof.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class IntRange:
    """An integer range searched with ``trial.suggest_int``; ``low`` and ``high`` included."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    @property
    def searched(self) -> bool:
        """True: the sampler picks the value."""
        return True

    @property
    def count(self) -> int:
        """How many values the range holds (without listing them)."""
        return (self.high - self.low) // self.step + 1

    def values(self) -> list[int]:
        """Every value of the range, in order."""
        return list(range(self.low, self.high + 1, self.step))

    def suggest(self, trial: Any, name: str) -> int:
        """The value of parameter ``name`` for ``trial`` (``trial.suggest_int``)."""
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a whole number on the range's steps."""
        return (isinstance(value, int) and not isinstance(value, bool) and
                self.low <= value <= self.high and (value - self.low) % self.step == 0)

    def describe(self) -> str:
        """``"low..high"``, as error messages show the range."""
        return f"{self.low}..{self.high}"

    def to_dict(self) -> dict[str, Any]:
        """As stored in the study's ``study`` user attribute (docs/store-schema.md)."""
        return {"low": self.low, "high": self.high, "step": self.step, "log": self.log}

    def distribution(self) -> Any:
        """The :class:`optuna.distributions.IntDistribution` Optuna records for this range."""
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, log=self.log, step=self.step)


@dataclass(frozen=True)
class Choice:
    """A categorical choice searched with ``trial.suggest_categorical``; a single choice is
    taken as it is, without asking the trial."""

    choices: tuple[Any, ...]

    @property
    def searched(self) -> bool:
        """True when there are several choices."""
        return len(self.choices) > 1

    @property
    def count(self) -> int:
        """How many choices there are."""
        return len(self.choices)

    def values(self) -> list[Any]:
        """The choices, in the study file's order."""
        return list(self.choices)

    def suggest(self, trial: Any, name: str) -> Any:
        """The value of parameter ``name`` for ``trial`` (``trial.suggest_categorical``)."""
        if len(self.choices) == 1:
            return self.choices[0]
        return trial.suggest_categorical(name, list(self.choices))

    def contains(self, value: Any) -> bool:
        """Whether ``value`` (canonical form) is one of the choices."""
        return value in self.choices

    def describe(self) -> str:
        """The choices as error messages show them: ``4, 8``."""
        return ", ".join(repr(v) for v in self.choices)

    def to_dict(self) -> dict[str, Any]:
        """As stored in the study's ``study`` user attribute (docs/store-schema.md)."""
        return {"choices": list(self.choices)}

    def distribution(self) -> Any:
        """The :class:`optuna.distributions.CategoricalDistribution` of the choices."""
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(list(self.choices))


@dataclass(frozen=True)
class Fixed:
    """One value every trial uses; the sampler is not asked."""

    value: Any

    @property
    def searched(self) -> bool:
        """False: the value is given."""
        return False

    @property
    def count(self) -> int:
        """1."""
        return 1

    def values(self) -> list[Any]:
        """``[value]``."""
        return [self.value]

    def suggest(self, trial: Any, name: str) -> Any:
        """The fixed value (``trial`` is not asked)."""
        return self.value

    def contains(self, value: Any) -> bool:
        """Whether ``value`` (canonical form) is the fixed value."""
        return value == self.value

    def describe(self) -> str:
        """The value as error messages show it."""
        return repr(self.value)

    def to_dict(self) -> dict[str, Any]:
        """As stored in the study's ``study`` user attribute (docs/store-schema.md)."""
        return {"fixed": self.value}

    def distribution(self) -> Any:
        """A one-choice :class:`optuna.distributions.CategoricalDistribution` (what Optuna
        would record for a parameter with one possible value)."""
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution([self.value])


Dim = IntRange | Choice | Fixed
"""One searchable setting of a study's ``[space]``."""

PER_LEVEL_FLAG = Choice((True, False))
"""The dimension of each level's reversibility (``reversible_0``, ...) when
``per_level_reversible`` is set."""
