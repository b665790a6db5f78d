"""Tasks that plug into :mod:`focalnet.engine`: one module per kind of model (see docs/engine.md).

Each module defines a :class:`focalnet.engine.Task` subclass and is registered by name in
:data:`focalnet.engine.registry.TASKS`; nothing here is imported until a run asks for the task.
"""
