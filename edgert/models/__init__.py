"""Models as the rest of edgert uses them: one resolver of model references, model cards, health and probation.

The files beside this module are the models shipped in the package (``builtin:<name>``).
"""
