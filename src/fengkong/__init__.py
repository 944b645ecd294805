"""fengkong (风控): open, explainable credit risk control for online lenders.

from fengkong import Engine
engine = Engine()                      # SQLite file in the working directory, bundled default policy
decision = engine.decide(application)  # outcome, limit, apr, reasons
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Engine", "__version__"]

if TYPE_CHECKING:
    from fengkong.service import Engine


def __getattr__(name: str) -> Any:
    # Lazy so that `import fengkong.policy` (e.g. in a notebook) does not pull in the web stack.
    if name == "Engine":
        from fengkong.service import Engine

        return Engine
    raise AttributeError(name)
