"""`make demo`: the whole system offline on one machine, on a generated multi-domain corpus."""
