"""Events: what happens on an account between decisions (logins, payments, transfers, repayments, bureau
updates, complaints). They are stored once each (idempotent on event_id) and feed online features."""
