"""The products built on the pipeline: each app is one package with its config section, graph and decisions.

Apps do not import each other (checked by import-linter); the service runs one of them.
"""
