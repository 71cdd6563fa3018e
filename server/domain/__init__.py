"""The rules. Every state change is one function here: check, write in one transaction, emit."""
