"""Scenario files: the model (YAML to typed steps), the runner and its reports."""
