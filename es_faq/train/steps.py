"""The optimisation loop both trainers share: resumable steps, checkpoints, and a learning curve.

A run lives in one directory. Every `checkpoint_every` steps the model, optimiser, schedule, step
and random state are written (atomically: a kill mid-write leaves the previous checkpoint whole);
every `eval_every` steps the trainer's own dev evaluation is appended to log.jsonl. Started again,
the loop resumes at the checkpoint's step, so a run interrupted and resumed ends with the weights an
uninterrupted one ends with (each step's batch must depend on the step number alone).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .loop import device

CHECKPOINT = "checkpoint.pt"


def _save(path: Path, state: dict) -> None:
    import torch

    partial = path.with_suffix(".part")
    torch.save(state, partial)
    partial.replace(path)


def run_steps(run_dir: Path, model, optimizer, schedule, total: int, step_loss: Callable[[int], object],
              evaluate: Callable[[], dict], *, checkpoint_every: int, eval_every: int, desc: str,
              progress: bool = True, stop_after: int | None = None) -> float | None:
    """Steps from the checkpoint's (or 0) to `total`; `step_loss(step)` is the loss of step `step`.

    Returns the training seconds of the whole run (resumed parts included), or None when it stopped
    after `stop_after` steps of this call with a checkpoint to resume from."""
    import torch

    step, seconds = 0, 0.0
    checkpoint = run_dir / CHECKPOINT
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device(), weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        step, seconds = state["step"], state["seconds"]
        if "rng" in state:  # dropout continues as if never interrupted
            torch.set_rng_state(state["rng"].cpu())  # map_location put it on the GPU
    resumed_at = time.monotonic()

    def elapsed() -> float:
        return seconds + time.monotonic() - resumed_at

    def save() -> None:
        _save(checkpoint, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "schedule": schedule.state_dict(), "step": step, "rng": torch.get_rng_state(),
                           "seconds": elapsed()})

    first_step, running = step, []
    model.train()
    with tqdm(total=total, initial=step, desc=desc, unit="step", disable=not progress) as bar:
        while step < total:
            loss = step_loss(step)
            loss.backward()  # type: ignore[attr-defined]
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            running.append(loss.item())  # type: ignore[attr-defined]
            bar.update()
            bar.set_postfix(loss=f"{np.mean(running[-50:]):.3f}")
            if step % checkpoint_every == 0 or step == total:
                save()
            if step % eval_every == 0 or step == total:
                entry = {"step": step, "loss": round(float(np.mean(running[-eval_every:])), 4),
                         "seconds": round(elapsed(), 1), "dev": evaluate()}
                model.train()
                with (run_dir / "log.jsonl").open("a", encoding="utf-8") as log:
                    log.write(json.dumps(entry) + "\n")
            if stop_after is not None and step - first_step >= stop_after and step < total:
                save()
                return None
    return elapsed()


def check_recipe(run_dir: Path, recipe: dict) -> None:
    """A run directory belongs to one recipe: refuse to resume it with another."""
    from ..errors import ModelError

    run_dir.mkdir(parents=True, exist_ok=True)
    recipe_file = run_dir / "recipe.json"
    if recipe_file.exists() and (saved := json.loads(recipe_file.read_text())) != recipe:
        differ = sorted(k for k in {*saved, *recipe} if saved.get(k) != recipe.get(k))
        raise ModelError(f"{run_dir} holds a run with another recipe ({', '.join(differ)} differ); remove it or "
                         "train under another name")
    recipe_file.write_text(json.dumps(recipe, indent=2, ensure_ascii=False) + "\n")


def finish(model, final: Path, record: dict, seconds: float, started: float, sources: dict, dev: dict) -> dict:
    """Save a finished run's weights in `final` with its training record (training.json), and return the record:
    `record` plus the device, the training and wall seconds, the data's sources, the last dev evaluation."""
    import torch

    model.save_pretrained(final)
    record = {**record, "device": str(device()), "train_seconds": round(seconds, 1),
              "wall_seconds_this_run": round(time.monotonic() - started, 1), "sources": sources, "dev": dev,
              "torch": torch.__version__, "threads": torch.get_num_threads()}
    (final / "training.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return record
