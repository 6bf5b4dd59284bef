"""The ``corral`` command line (click + rich); entry point ``main``."""
