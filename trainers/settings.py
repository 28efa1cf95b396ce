"""The rsa and scma trainers' settings (preset sections ``[rsa]`` and ``[scma]``) with
every default, and their ``qfeat train rsa|scma`` options (the request classes).

Defaults are the ``paper`` preset's values; a preset only overrides them and
``--set rsa.<field>=...`` / ``--set scma.<field>=...`` accept exactly these fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qfeat.errors import OptionError
from qfeat.pipeline.config import apply_overrides, load_preset, require_sections
from qfeat.pipeline.settings import Settings
from qfeat.trainers.request import TrainRequest, option


@dataclass(frozen=True)
class LoopSettings(Settings):
    """What every trainer's loop reads (:func:`qfeat.trainers.protocol.loop_config`)."""

    epochs: int = 30  # passes over the training part of a split
    batch_size: int = 32  # items per optimiser step
    lr: float = 1e-3  # AdamW learning rate (peak, after warm-up)
    weight_decay: float = 1e-2  # AdamW weight decay
    warmup_epochs: float = 1.0  # linear warm-up, then cosine decay
    rank_weight: float = 0.3  # loss = PLCC loss + rank_weight * ranking loss
    loss: str = "qclip"  # the forms of both: qclip (the Q-CLIP release's) | simple
    patience: int = 0  # early stopping on validation SRCC (0 = off; best epoch kept)

    def validate(self) -> None:
        from qfeat.trainers.losses import FORMS

        self.one_of("loss", FORMS)
        self.at_least(1, "epochs", "batch_size")
        self.at_least(0, "weight_decay", "warmup_epochs", "rank_weight", "patience")
        if not self.lr > 0:
            raise self._fail("lr", "a number > 0", type(self)().lr)


@dataclass(frozen=True)
class RSASettings(LoopSettings):
    """The RSA head (``qfeat train rsa``)."""

    section = "rsa"
    hidden: int = 256  # width of region descriptors, semantic tokens and the MLPs
    rating_dim: int = 16  # embedding size of each rating level
    loss: str = "simple"  # no released code to follow: 1 - Pearson + mean pairwise hinge

    def validate(self) -> None:
        super().validate()
        self.at_least(1, "hidden", "rating_dim")


@dataclass(frozen=True)
class SCMASettings(LoopSettings):
    """The Q-CLIP adapter (``qfeat train scma``), as its authors released it."""

    section = "scma"
    r: int = 128  # adapter bottleneck width
    epochs: int = 8
    batch_size: int = 12
    weight_decay: float = 5e-2  # 1e-4 for LSVQ, 5e-2 for small sets

    def validate(self) -> None:
        super().validate()
        self.at_least(1, "r")


@dataclass
class RsaRequest(TrainRequest):
    """``qfeat train rsa``'s own options (the ablation switches)."""

    attention: str = field(
        default="rsa",
        metadata=option(help="rsa (learned region weights), uniform or global (ablations)."),
    )
    use_text: bool = field(
        default=True, metadata=option("--no-text", help="Ablation: no descriptions.", invert=True)
    )
    use_ratings: bool = field(
        default=True,
        metadata=option("--no-ratings", help="Ablation: no distortion ratings.", invert=True),
    )


MODES = ("full", "projection")


@dataclass
class ScmaRequest(TrainRequest):
    """``qfeat train scma``'s own options."""

    init: str | None = field(default=None, metadata=option(help="Fine-tune from this earlier run."))
    mode: str = field(
        default="full", metadata=option(help="full (hidden states) or projection (pooled).")
    )
    # weights to start from instead of --init's run; with ``imported`` the release's state
    # dict (mapped onto the model built here) and no epoch is trained (`qfeat import qclip`)
    init_state: dict[str, Any] | None = None
    imported: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise OptionError(f"--mode must be {' or '.join(MODES)}")
        super().__post_init__()


def describe_settings(preset: str, why: str, tcfg: dict[str, Any], head: tuple[str, ...]) -> str:
    """The line a trainer prints first: which preset and head size it uses."""
    keys = (*head, "epochs", "lr", "batch_size")
    shown = ", ".join(f"{k} {tcfg[k]}" for k in keys if k in tcfg)
    return f"preset {preset} ({why}): {shown}"


def trainer_settings(
    cls: type[Settings], preset: str, sets: list[str] | None, epochs: int | None = None
) -> dict[str, Any]:
    """A trainer's resolved preset section (``[rsa]``, ``[scma]``, ``[probe]``, ...):
    defaults, preset, ``--set``, then ``--epochs`` (validated like the rest; only for
    settings with an ``epochs`` field)."""
    extra = [f"{cls.section}.epochs={epochs}"] if epochs is not None else []
    require_sections(preset, [cls.section])
    return apply_overrides(load_preset(preset), [*(sets or []), *extra], {cls.section: cls})[
        cls.section
    ]
