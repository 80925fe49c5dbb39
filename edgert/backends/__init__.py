"""Backends: one module per accelerator (cpu.py, ...) and the registry that picks one."""
