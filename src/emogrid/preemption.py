"""Stop training cleanly on SIGTERM, with a checkpoint to resume from.

SLURM sends SIGTERM before it kills a job: at the time limit (then SIGKILL after KillWait), on
preemption, on `scancel`, and `--signal=TERM@<seconds>` sends it earlier on purpose. The handler only
records the signal; at the end of the current optimizer step the callback asks the Trainer to save a
checkpoint and stop. The CLI then exits non-zero, so the scheduler retries the job (or requeues it)
and the rerun resumes from that checkpoint.
"""

from __future__ import annotations

import signal
import sys

import torch
from transformers import TrainerCallback


class Preempted(RuntimeError):
    """Training stopped on a signal after saving a checkpoint; rerunning the cell resumes from it."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class StopOnSignal(TrainerCallback):
    """Checkpoint and stop at the end of the step during which a stop signal arrived.

    Also checkpoints the final step, so a job killed while it predicts does not train again.
    Under torchrun every process must agree on the step it stops at (saving is collective), so the
    flag is combined across processes at every step.
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM,)):
        self.signals = signals
        self.received: int | None = None
        self.stopped_at: int | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> StopOnSignal:
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        self.received = signum
        print(
            f"emogrid: received {signal.Signals(signum).name}: saving a checkpoint at the end of this "
            "step, then stopping",
            file=sys.stderr,
            flush=True,
        )

    def _any_process_received(self, args) -> bool:
        flag = self.received is not None
        if args.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            device = args.device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
            tensor = torch.tensor([int(flag)], device=device)
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
            flag = bool(tensor.item())
        return flag

    def on_step_end(self, args, state, control, **kwargs):
        if state.max_steps and state.global_step >= state.max_steps:
            control.should_save = True
        if self._any_process_received(args):
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step
        return control
