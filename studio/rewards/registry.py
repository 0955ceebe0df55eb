"""Reward specs (``train.rewards``: a list of ``{name, weight, ...options}``) -> checked reward callables for TRL.

A name is a built-in reward (:data:`BUILTIN`) or a user's function ``path/to/file.py:function`` (TRL's reward
signature). User code runs only where the person running Studio put it: from the CLI or a config file, or from
the app when it listens on loopback (:func:`check_user_code_allowed`). Every reward is wrapped in
:class:`CheckedReward`: a wrong-length list, a non-number or an exception becomes one :class:`RewardError` line
naming the reward (the traceback goes to the ``studio.rewards`` logger, i.e. the run log).
"""
from __future__ import annotations

import inspect
import importlib.util
import ipaddress
import logging
import math
import numbers
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from studio.config_grpo import REWARD_OPTIONS, USER_HELP, RewardSpec, is_user_reward, parse_specs  # noqa: F401
from studio.errors import RewardError
from studio.formatting import plural
from studio.rewards import builtin

LOG = logging.getLogger("studio.rewards")


@dataclass(frozen=True)
class RewardInfo:
    """A built-in reward: its function, what it needs and says, and its options with their defaults."""

    func: Callable[..., list]
    help: str
    options: dict[str, Any] = field(default_factory=dict)
    needs_reference: bool = False


BUILTIN: dict[str, RewardInfo] = {
    "answer": RewardInfo(builtin.answer, "1 when the number after #### equals the row's reference answer (the "
                         "extraction studio eval uses), else 0.", needs_reference=True),
    "format": RewardInfo(builtin.format, "1 for some working, then exactly one '#### <number>' line at the end; "
                         "'#### 1\\n#### 2\\n#### 3' scores 0."),
    "length": RewardInfo(builtin.length, "0 up to target tokens, then minus the share past it (down to -1).",
                         REWARD_OPTIONS["length"]),
    "regex": RewardInfo(builtin.regex, "1 when the pattern is found in the completion, else 0.",
                        REWARD_OPTIONS["regex"]),
}
"""The built-in rewards by name."""

def needs_reference(specs: list[RewardSpec]) -> list[str]:
    """The built-in rewards in ``specs`` that read the row's reference answer."""
    return [s.name for s in specs if s.name in BUILTIN and BUILTIN[s.name].needs_reference]


def is_loopback(host: str | None) -> bool:
    """Whether an app listening on ``host`` is reachable only from this machine."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_user_code_allowed(specs: list[RewardSpec], *, host: str | None, share: bool = False) -> None:
    """Refuse user reward code in an app that others can reach (a shared link, a non-loopback host).

    Raises:
        RewardError: naming the reward and what to do instead.
    """
    users = [s.name for s in specs if is_user_reward(s.name)]
    if users and (share or not is_loopback(host)):
        where = "a shared link" if share else f"host {host}"
        raise RewardError(f"reward {users[0]} is your own Python code, and this app is reachable from other "
                          f"machines ({where}): user code runs only from the CLI (studio train) or an app on "
                          f"127.0.0.1")


class CheckedReward:
    """A reward function with its output checked and its failures turned into one line.

    Args:
        func: the reward callable (``f(completions, **kwargs) -> list``).
        label: the name logged by TRL and shown to the user.
        where: what to name in errors (the file and function for user code).
        options: keyword options bound to every call.
    """

    def __init__(self, func: Callable[..., Any], label: str, where: str, options: dict[str, Any] | None = None):
        self.func = func
        self.__name__ = label  # TRL's get_callable_name reads it
        self.where = where
        self.options = dict(options or {})
        try:
            params = inspect.signature(func).parameters
        except (TypeError, ValueError):
            params = {}
        self._takes_any = not params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        self._params = set(params)
        """A function without ``**kwargs`` gets only the columns it names (TRL passes several more)."""

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        kwargs = {**kwargs, **self.options}
        if not self._takes_any:
            kwargs = {k: v for k, v in kwargs.items() if k in self._params}
        try:
            out = self.func(completions=completions, **kwargs)
        except RewardError:
            raise
        except Exception as exc:  # noqa: BLE001 - user code: any failure is one line, the traceback in the log
            LOG.error("reward %s failed:\n%s", self.where, traceback.format_exc())
            raise RewardError(f"reward {self.where} failed on a sample: {type(exc).__name__}: {exc}") from exc
        return self.check(out, len(completions))

    def check(self, out: Any, n: int) -> list[float | None]:
        """``out`` as a list of n floats (None kept: TRL skips it).

        Raises:
            RewardError: not a list, the wrong length, or a value that is not a number.
        """
        if not isinstance(out, (list, tuple)):
            raise RewardError(f"reward {self.where} returned {type(out).__name__}, not a list of {n} numbers")
        if len(out) != n:
            raise RewardError(f"reward {self.where} returned {plural(len(out), 'value')} for "
                              f"{plural(n, 'completion')}; it must return one number per completion")
        values: list[float | None] = []
        for v in out:
            if v is None:
                values.append(None)
            elif isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
                raise RewardError(f"reward {self.where} returned {v!r:.40}, not a number (each value must be a "
                                  f"finite int or float, or None to skip)")
            else:
                values.append(float(v))
        return values


def load_user_function(name: str, base_dir: str | Path | None = None) -> Callable[..., Any]:
    """The function ``name`` (``path/to/file.py:function``) names; a relative path is read from ``base_dir``.

    Raises:
        RewardError: the file is missing or fails to import, or has no such function (traceback in the log).
    """
    path_text, func_name = name.rsplit(":", 1)
    path = Path(path_text).expanduser()
    if not path.is_absolute() and base_dir is not None and not path.exists():
        path = Path(base_dir) / path
    if not path.is_file():
        raise RewardError(f"reward file {path_text} not found")
    module_name = f"studio_user_reward_{abs(hash(str(path.resolve())))}"
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as exc:  # noqa: BLE001 - a broken user file is one line for the user
        LOG.error("reward file %s failed to import:\n%s", path, traceback.format_exc())
        raise RewardError(f"reward file {path_text} failed to import: {type(exc).__name__}: {exc}") from exc
    sys.modules.setdefault(module_name, module)
    func = getattr(module, func_name, None)
    if not callable(func):
        found = [k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                 and getattr(v, "__module__", None) == module_name]
        raise RewardError(f"reward file {path_text} has no function {func_name!r}"
                          + (f"; it defines: {', '.join(found)}" if found else ""))
    return func


def build_rewards(specs: list[RewardSpec], base_dir: str | Path | None = None) -> list[CheckedReward]:
    """Checked callables for ``specs``, in order (user files imported here)."""
    out = []
    for s in specs:
        if is_user_reward(s.name):
            out.append(CheckedReward(load_user_function(s.name, base_dir), s.label, s.name, s.options))
        else:
            out.append(CheckedReward(BUILTIN[s.name].func, s.label, s.name, s.options))
    return out
