"""What every engine-driven command shares: the override/flag grammar, config resolution (incl. ``--resume``
taking the saved config), and turning errors into one line with the right exit code (2: usage / config,
1: runtime)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

_OVERRIDE = re.compile(r"^[A-Za-z_][\w.\-\[\]]*=")


def add_overrides(parser: argparse.ArgumentParser, what: str = "config") -> None:
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help=f"dotted {what} overrides, values parsed as YAML (e.g. optim.lr=1e-3 max_steps=100)")


def add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", default=None,
                        help="YAML recipe (configs/...); its top-level `task:` names the task. Default: the digits job")


def split_positionals(items: list[str]) -> tuple[list[str], list[str]]:
    """``(overrides, others)``: ``key=value`` tokens versus everything else (image paths)."""
    ov = [x for x in items if _OVERRIDE.match(x) and not Path(x).exists()]
    return ov, [x for x in items if x not in ov]


def out_overrides(out: str | None) -> list[str]:
    """``--out DIR`` as the run folder: ``output_dir=<parent> name=<folder>``."""
    if not out:
        return []
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise UsageError(f"--out {out} is an existing file; give a folder")
    name = p.name or p.resolve().name
    return [f"output_dir={p.parent if str(p.parent) else '.'}", f"name={name}"]


from focalnet.errors import UsageError  # noqa: E402  (a bad command line: exit code 2)


def config_errors() -> tuple[type[BaseException], ...]:
    return (UsageError,)


def runtime_errors() -> tuple[type[BaseException], ...]:
    """Errors of the work itself (exit code 1): bad data, unreadable checkpoints, NaN loss, full disk, ..."""
    from focalnet.errors import FocalnetError

    return (FocalnetError, OSError, ValueError, KeyError, FloatingPointError, ImportError)


def fail(command: str, e: BaseException) -> int:
    from focalnet.errors import one_line

    code = 2 if isinstance(e, config_errors()) else 1
    kind = "config error" if code == 2 else "error"
    msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else one_line(e) or type(e).__name__
    print(f"focalnet {command}: {kind}: {msg}", file=sys.stderr)
    return code


def resolve_train_config(config: str | None, overrides: list[str], out: str | None, resume: str | None):
    """The config a ``train`` command runs: defaults -> ``--config`` -> overrides (-> ``--out``). With ``--resume``
    and an existing checkpoint the checkpoint's saved config is the base instead, the overrides go on top and a
    structural change (a different model, task, ...) is refused naming the keys."""
    from focalnet.engine.checkpoint import load_checkpoint
    from focalnet.engine.config import config_from_dict, load_run_config
    from focalnet.engine.loop import check_resume_config, resolve_resume
    from focalnet.engine.registry import get_task
    from focalnet.utils.config import ConfigError, apply_overrides, to_dict

    extra = out_overrides(out)
    if not resume:
        return load_run_config(config, [*overrides, *extra])
    # Locate the checkpoint first (its config decides the schema of the overrides): --config, name/output_dir/task
    # overrides and --out say where the run is.
    where = [o for o in overrides if o.split("=", 1)[0].strip() in ("name", "output_dir", "task")]
    locator = load_run_config(config, [*where, *extra]) if config else None
    if locator is None:
        from focalnet.engine.config import RunConfig
        from focalnet.utils.config import from_dict as _from_dict

        loc = {k.strip(): v for k, v in (o.split("=", 1) for o in [*where, *extra])}
        locator = _from_dict(RunConfig, {k: v for k, v in loc.items() if k in ("name", "output_dir", "task")})
    locator.resume = resume
    ckpt = resolve_resume(locator)
    if ckpt is None:  # resume=auto with nothing to resume: a fresh run
        cfg = load_run_config(config, [*overrides, *extra])
        cfg.resume = resume
        return cfg
    cfg = locator
    saved = load_checkpoint(ckpt).get("config") or {}
    task_cls = get_task(saved.get("task", "classification"))
    if config is not None:  # the file may locate the run, but must not describe another model
        check_resume_config(task_cls, saved, to_dict(cfg), ckpt)
    ov = [o for o in overrides if o.split("=", 1)[0].strip() != "task"] + extra + [f"resume={ckpt}"]
    data = apply_overrides(dict(saved), ov, task_cls.config_class)
    resumed = config_from_dict(data)
    check_resume_config(task_cls, saved, to_dict(resumed), ckpt)
    if resumed.task != saved.get("task", "classification"):
        raise ConfigError(f"cannot resume {ckpt}: task {saved.get('task')} -> {resumed.task}")
    return resumed


def print_json_or_table(rows: list[dict[str, Any]]) -> None:  # pragma: no cover - tiny helper
    import json

    print(json.dumps(rows, indent=2))
