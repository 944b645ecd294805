"""Loans on the store (SQLite and PostgreSQL): repayment order, penalty, idempotency, prepayment and payoff, bad
input refused with nothing changed, the audit chain, status changes and the credit line made available again."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import pytest
import sqlalchemy as sa

from fengkong.errors import FengkongError
from fengkong.store import audit
from fengkong.store.tables import loan_instalments, loan_repayments, loans

D = dt.date
START = D(2026, 1, 31)  # instalments due 02-28, 03-31, 04-30, ... (month-end clamping)


def fen(x: Fraction) -> Decimal:
    return (Decimal(x.numerator) / Decimal(x.denominator)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def penalty(principal: str, days: int, apr: str = "0.18") -> Decimal:
    """Penalty interest computed here: overdue principal × penalty APR / 360 per day."""
    return fen(Fraction(principal) * Fraction(apr) * days / 360)


@pytest.fixture
def book(engine: Any) -> Any:
    engine.loans.clock = lambda: dt.datetime(2026, 12, 31, 4, tzinfo=dt.UTC)
    return engine


def _open(engine: Any, customer: str = "cust-1", **kwargs: Any) -> str:
    args: dict[str, Any] = {"principal": "10000", "apr": "0.12", "term": 12, "method": "equal_instalment"}
    args.update(kwargs)
    loan = engine.loans.open_loan(customer, args.pop("principal"), args.pop("apr"), args.pop("term"),
                                  args.pop("method"), args.pop("start", START), **args)  # fmt: skip
    return str(loan["loan_id"])


def _snapshot(engine: Any) -> tuple[Any, ...]:
    with engine.db.connect() as conn:
        return (
            conn.execute(sa.select(loans).order_by(loans.c.id)).all(),
            conn.execute(
                sa.select(loan_instalments).order_by(loan_instalments.c.loan_id, loan_instalments.c.period)
            ).all(),
            conn.execute(sa.select(loan_repayments).order_by(loan_repayments.c.id)).all(),
            audit.head(conn),
        )


def test_order_penalty_then_interest_then_principal_oldest_first_and_idempotent(book: Any) -> None:
    lid = _open(book)
    loan = book.loans.get(lid, D(2026, 1, 31))
    assert loan["penalty_apr"] == 0.18  # default: 1.5 × the contract APR
    # nothing paid until 15 April: instalment 1 (due 02-28) is 46 days late, instalment 2 (due 03-31) 15 days
    p1, p2 = penalty("788.49", 46), penalty("796.37", 15)
    assert (p1, p2) == (Decimal("18.14"), Decimal("5.97"))
    result = book.loans.repay(lid, "rp-1", "1000.00", D(2026, 4, 15))
    lines = {i["period"]: i for i in result["allocation"]["instalments"]}
    assert lines[1] == {"period": 1, "penalty": 18.14, "interest": 100.0, "principal": 788.49}
    left = Decimal("1000.00") - p1 - Decimal("100.00") - Decimal("788.49")
    assert lines[2] == {"period": 2, "penalty": 5.97, "interest": float(left - p2), "principal": 0.0}
    assert set(lines) == {1, 2}
    view = result["loan"]
    assert view["instalments"][0]["paid_on"] == "2026-04-15"
    assert (view["dpd"], view["bucket"]) == (15, "M1")  # instalment 2 is still not paid in full
    assert result["replayed"] is False

    before = _snapshot(book)
    again = book.loans.repay(lid, "rp-1", "1000.00", D(2026, 4, 15))
    assert again["replayed"] is True and again["allocation"] == result["allocation"]
    assert _snapshot(book) == before  # a retry changes nothing, not even the audit chain
    with pytest.raises(FengkongError) as caught:
        book.loans.repay(lid, "rp-1", "999.00", D(2026, 4, 15))
    assert (caught.value.code, caught.value.status) == ("repayment_id_conflict", 409)
    assert _snapshot(book) == before
    assert book.verify_audit().ok


def test_paying_ahead_in_instalment_mode_does_not_reamortise(book: Any) -> None:
    lid = _open(book)
    result = book.loans.repay(lid, "early", "1776.98", D(2026, 2, 20))  # two instalments, eight days early
    assert result["allocation"]["reamortised"] is False
    view = result["loan"]
    assert [i["paid_on"] for i in view["instalments"][:3]] == ["2026-02-20", "2026-02-20", None]
    assert [i["payment"] for i in view["instalments"][:11]] == [888.49] * 11  # the schedule is unchanged
    assert book.loans.get(lid, D(2026, 4, 1))["dpd"] == 0


def test_partial_prepayment_reamortises_the_rest_over_the_same_term(book: Any) -> None:
    lid = _open(book)
    book.loans.repay(lid, "p1", "888.49", D(2026, 2, 28))
    result = book.loans.repay(lid, "pre", "3000.00", D(2026, 3, 10), "prepayment")
    a = result["allocation"]
    # this month's interest (instalment 2, on the 9,211.51 owed since 28 February) is paid, the rest is principal
    assert (a["interest"], a["principal"], a["reamortised"]) == (92.12, 2907.88, True)
    view = result["loan"]
    rows = view["instalments"]
    assert len(rows) == 12 and rows[-1]["due_date"] == "2027-01-31"  # the term is kept
    remaining = Fraction("9211.51") - Fraction("2907.88")
    r = Fraction("0.12") / 12
    payment = fen(remaining * r / (1 - (1 + r) ** -11))  # the annuity on what remains, over 11 months
    assert payment == Decimal("608.01")
    assert [Decimal(str(i["payment"])) for i in rows[2:11]] == [payment] * 9
    assert rows[1]["interest"] == 92.12 and rows[1]["interest_paid"] == 92.12
    assert Decimal(str(rows[1]["principal"])) == Decimal("2907.88") + payment - fen(remaining * r)
    assert sum(Decimal(str(i["principal"])) for i in rows) == Decimal("10000.00")  # still exact
    assert view["outstanding"]["principal"] == float(remaining)


def test_early_full_repayment_waives_future_interest(book: Any) -> None:
    lid = _open(book)
    book.loans.repay(lid, "p1", "888.49", D(2026, 2, 28))
    quote = book.loans.payoff_quote(lid, D(2026, 3, 10))
    # all principal not yet paid + this month's interest
    assert Decimal(str(quote["amount"])) == Decimal("9211.51") + Decimal("92.12")
    with pytest.raises(FengkongError) as caught:
        book.loans.repay(lid, "too-much", "9303.64", D(2026, 3, 10), "prepayment")
    assert caught.value.code == "amount_exceeds_owed" and "9303.63" in caught.value.message

    # two payoffs racing (say the app and a bank transfer): the loan row lock lets exactly one through
    def pay(repayment_id: str) -> Any:
        try:
            return book.loans.repay(lid, repayment_id, "9303.63", D(2026, 3, 10), "prepayment")
        except FengkongError as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(pay, ["payoff-a", "payoff-b"]))
    errors = [o for o in outcomes if isinstance(o, FengkongError)]
    assert len(errors) == 1 and errors[0].code == "loan_not_repayable"
    result = next(o for o in outcomes if not isinstance(o, FengkongError))
    view = result["loan"]
    assert (view["status"], view["status_on"]) == ("paid_off", "2026-03-10")
    assert view["paid"]["interest"] == 192.12
    assert sum(i["interest"] for i in view["instalments"]) == pytest.approx(192.12)
    assert view["outstanding"]["payoff"] == 0
    with pytest.raises(FengkongError) as caught:
        book.loans.repay(lid, "after", "10.00", D(2026, 3, 11))
    assert (caught.value.code, caught.value.field, caught.value.status) == ("loan_not_repayable", "loan_id", 409)
    assert book.verify_audit().ok


def test_bad_repayments_are_refused_and_change_nothing(book: Any) -> None:
    lid = _open(book)
    closed = _open(book, customer="cust-2")
    book.loans.repay(lid, "ok", "888.49", D(2026, 3, 1))
    book.loans.close(closed, "cooling_off", D(2026, 2, 1))
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"amount": "-5"}, "invalid_field", "amount"),
        ({"amount": "0"}, "invalid_field", "amount"),
        ({"amount": "10.001"}, "invalid_field", "amount"),
        ({"amount": "abc"}, "invalid_field", "amount"),
        ({"loan_id": "no-such-loan"}, "loan_not_found", "loan_id"),
        ({"loan_id": closed}, "loan_not_repayable", "loan_id"),
        ({"paid_on": D(2026, 1, 1)}, "paid_on_not_allowed", "paid_on"),  # before the loan started
        ({"paid_on": D(2026, 2, 27)}, "repayment_out_of_order", "paid_on"),  # before the last repayment
        ({"paid_on": D(2027, 1, 2)}, "paid_on_not_allowed", "paid_on"),  # after today (the clock: 2026-12-31)
        ({"mode": "whatever"}, "invalid_field", "mode"),
        ({"amount": "20000"}, "amount_exceeds_owed", "amount"),
        ({"repayment_id": "bad id!"}, "invalid_field", "repayment_id"),
        ({"customer_id": "someone-else"}, "loan_customer_mismatch", "loan_id"),
    ]
    before = _snapshot(book)
    for change, code, field in cases:
        args: dict[str, Any] = {
            "loan_id": lid, "repayment_id": "rp-bad", "amount": "100", "paid_on": D(2026, 3, 5), "mode": "instalment",
        }  # fmt: skip
        args.update(change)
        customer = args.pop("customer_id", None)
        with pytest.raises(FengkongError) as caught:
            book.loans.repay(**args, customer_id=customer)
        assert (caught.value.code, caught.value.field) == (code, field), change
        assert _snapshot(book) == before, change


def test_open_loan_validation_and_idempotency(book: Any) -> None:
    lid = _open(book, loan_id="loan-fixed-1")
    assert lid == "loan-fixed-1"
    before = _snapshot(book)
    assert _open(book, loan_id="loan-fixed-1") == lid  # the same terms again: the same loan
    assert _snapshot(book) == before
    for kwargs, field in (
        ({"loan_id": "loan-fixed-1", "principal": "9000"}, "loan_id"),
        ({"apr": "24"}, "apr"),
        ({"term": 0}, "term"),
        ({"method": "bullet"}, "method"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"customer": "bad customer"}, "customer_id"),
    ):
        customer = kwargs.pop("customer", "cust-1")
        with pytest.raises(FengkongError) as caught:
            _open(book, customer=customer, **kwargs)
        assert caught.value.field == field
        assert _snapshot(book) == before


def test_write_off_close_and_recovery(book: Any) -> None:
    lid = _open(book, principal="3000", term=3, method="equal_principal")
    with pytest.raises(FengkongError) as caught:
        book.loans.write_off(lid, "charged_off", D(2026, 5, 1))  # 62 days past due: too early
    assert caught.value.code == "write_off_too_early"
    view = book.loans.write_off(lid, "charged_off", D(2026, 6, 15))
    assert (view["status"], view["bucket"]) == ("written_off", "M3+")
    recovered = book.loans.repay(lid, "recovery-1", "500.00", D(2026, 7, 1))  # a recovery after write-off
    assert recovered["loan"]["status"] == "written_off" and recovered["allocation"]["penalty"] > 0
    with pytest.raises(FengkongError) as caught:
        book.loans.close(lid, "settled")
    assert caught.value.code == "loan_not_active"
    with book.db.connect() as conn:
        kinds = [k for (k,) in conn.execute(sa.text("SELECT kind FROM audit_log ORDER BY seq"))]
    assert kinds.count("loan_written_off") == 1 and kinds.count("loan_repaid") == 1 and "loan_opened" in kinds


def test_audit_finds_an_edited_repayment(book: Any) -> None:
    lid = _open(book)
    book.loans.repay(lid, "rp-1", "888.49", D(2026, 2, 28))
    assert book.verify_audit().ok
    with book.db.begin() as conn:
        conn.execute(sa.update(loan_repayments).where(loan_repayments.c.id == "rp-1").values(amount_cents=1))
    report = book.verify_audit()
    assert not report.ok
    assert any(f.subject_id == "rp-1" for f in report.findings)


def test_principal_repaid_on_a_line_loan_is_available_again(book: Any, application: dict[str, Any]) -> None:
    """A loan drawn on a credit line: the drawdown takes from the line in the loan's transaction, and each
    principal repayment gives the same amount back, in the repayment's transaction."""
    decision = book.decide({**application, "customer_id": "cust-line"})
    assert decision.outcome.value == "approve"
    lines = book.lines.for_customer("cust-line") or [book.lines.open_from_decision(decision.decision_id, "python")]
    line_id = lines[0]["line_id"]
    available = book.lines.get(line_id)["available"]
    now = dt.datetime(2026, 1, 31, 2, tzinfo=dt.UTC)
    with book.db.begin() as conn:
        book.lines.on_drawdown(conn, line_id, 1000.0, now)
        lid = book.loans.open_loan_in(conn, "cust-line", "1000", "0.12", 2, "equal_principal", START, line_id=line_id)
    assert book.lines.get(line_id)["available"] == pytest.approx(available - 1000)
    result = book.loans.repay(lid, "line-rp-1", "510.00", D(2026, 2, 28))  # 10 interest + 500 principal
    assert result["allocation"]["principal"] == 500.0
    assert book.lines.get(line_id)["available"] == pytest.approx(available - 500)
    assert book.loans.get(lid)["line_id"] == line_id
