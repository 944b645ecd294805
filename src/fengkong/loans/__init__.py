"""After the loan: schedules, repayments, delinquency, early warning and collections (issue 6).

``schedule``, ``repayment``, ``delinquency``, ``early_warning`` and ``collections`` are plain functions with no
storage; ``desk.LoanDesk`` (``engine.loans``) keeps the loan book in the engine's database. docs/loans.md states
every convention (rounding, day count, repayment order, DPD and buckets, contact limits).
"""

from fengkong.loans.schedule import Instalment, Method, build_schedule

__all__ = ["Instalment", "Method", "build_schedule"]
