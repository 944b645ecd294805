"""Cases, appeals and complaints: the queue where people decide what the machine would not decide alone.

``engine.cases`` (a :class:`CaseDesk`) is the facade every door uses; see ``docs/cases.md``.
"""

from fengkong.cases.desk import CaseDesk
from fengkong.cases.model import DEFAULT_PRIORITY, DEFAULT_SLA_HOURS, OUTCOMES, PRIORITIES, CaseStatus, CaseType

__all__ = ["DEFAULT_PRIORITY", "DEFAULT_SLA_HOURS", "OUTCOMES", "PRIORITIES", "CaseDesk", "CaseStatus", "CaseType"]
