"""The Task seam: classification, segmentation, and a user's own task (`@register_task`)."""
from nas.errors import UserError
from nas.tasks import classification, segmentation  # noqa: F401  (register the built-in tasks)
from nas.tasks.base import TASKS, Task, get_task, register_task, task_names

__all__ = ["TASKS", "Task", "get_task", "register_task", "task_for", "task_names"]


def task_for(name: str | None, space) -> Task:
    """The spec's `task:` or, when it names none, the built-in task of the space's architecture kind."""
    task = get_task(name or space.task)
    if task.kind != space.task:
        raise UserError(f"task: '{task.name}' searches {task.kind} architectures, but space '{space.name}' is a "
                        f"{space.task} space; choose a {task.kind} space or another task")
    return task
