"""Pure rules, no I/O: the policy model, the expression language, the YAML loader, the working-day calendar, the decision function and the state machine built from a policy."""
