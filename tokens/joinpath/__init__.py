"""The join path: everything a token request goes through, in one place.

views.py (the one path, `TokenView.dispatch`), inputs.py and outputs.py (what each endpoint
takes and answers), authentication.py (API keys), budget.py (request budgets), statements.py
(its SQL: the caller, the guarded audit row, the counters)."""
