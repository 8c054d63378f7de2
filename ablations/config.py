"""Typed schema of a search space and of one trial's config, validated once at the edge.

A search space YAML holds a base configuration (`data`, `model`, `train`), `factors` (config
keys -> levels), `seeds`, the `objective` and the `pruner`. Everything inside the package trusts
a validated `SpaceConfig`; every message raised here names the file, the key and the fix.
"""

from __future__ import annotations

import copy
import itertools
import re
import shlex
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from ablations import client
from ablations.errors import ConfigError
from ablations.plugins.imports import is_import_path
from ablations.pruners import PRUNERS, check_pruner_args

# The five core factors may be named by their short names in `factors:` and in `--set`.
SHORT_KEYS = {
    "norm": "model.norm",
    "init": "model.init",
    "activation": "model.activation",
    "dropout": "model.dropout",
    "depth": "model.depth",
}
OBJECTIVE_METRICS = ("val_acc", "val_loss", "train_acc", "train_loss")


def full_key(key: str) -> str:
    return SHORT_KEYS.get(key, key)


def short_key(key: str) -> str:
    """The name a factor is shown under: `norm` for `model.norm`, else the dotted key."""
    for short, full in SHORT_KEYS.items():
        if full == key:
            return short
    return key


def _datasets() -> Any:
    """The dataset table. It and the factor tables are filled by the torch modules that define the
    levels, so they are imported when a name is first checked, not with this module: commands
    that never validate a space (`--help`, `status`, `report`) start without torch."""
    from ablations.data import DATASETS

    return DATASETS


def _importable(value: str, key: str) -> str:
    from ablations.plugins.imports import PluginError, resolve

    try:
        resolve(value, key)
    except PluginError as err:
        raise ValueError(str(err).removeprefix(f"{key}: ")) from None
    return value


def _one_of(value: str, registry: Any) -> str:
    if value not in registry:
        raise ValueError(f"unknown {registry.kind} {value!r}; allowed: {', '.join(registry.names())}")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class Section(Strict):
    """A base-config section (`data`, `model`, `train`). Keys added after the first release dump
    only when set, so the grid fingerprints of studies made before them still match (a stored
    space validates either way; study.py's _same_grid also accepts it)."""

    ADDED: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        for key in self.ADDED:
            if getattr(self, key) == type(self).model_fields[key].get_default(call_default_factory=True):
                data.pop(key, None)
        return data


class DataConfig(Section):
    name: str = Field("digits", description="a dataset's name, or your function as 'package.module:callable'")
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of your dataset function")
    memory_limit_mb: float = Field(
        4096, gt=0, description="your Datasets larger than this are read per batch by a DataLoader"
    )
    root: str = Field("data", description="folder of the torchvision datasets (mnist, cifar10, ...)")
    download: bool = Field(False, description="download a missing torchvision dataset into root")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1, description="only for data without an official test set")
    split_seed: int = 0
    subset: int | float | None = Field(None, description="keep a fraction (0..1] or a count of the training set")
    normalize: Literal["train", "standard", "none"] = "train"
    # Augmentation of training batches, on the device.
    crop_padding: int = Field(0, ge=0, description="random crop after zero padding by this many pixels")
    flip: bool = False
    cutout: int = Field(0, ge=0, description="side of the square cutout (0: none)")
    # image_folder
    path: str | None = None
    image_size: int = Field(32, ge=1)
    in_memory: bool = True
    workers: int = Field(2, ge=0, description="DataLoader processes when in_memory is false")
    # synthetic
    synthetic_shape: tuple[int, int, int] = (3, 32, 32)
    synthetic_size: int = Field(2000, ge=2)
    synthetic_classes: int = Field(10, ge=2)
    # marked_pair (ablations/data/sequence.py), with synthetic_size sequences
    seq_length: int = Field(32, ge=2, description="marked_pair: steps per sequence")

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        return _importable(v, "data.name") if is_import_path(v) else _one_of(v, _datasets())

    @field_validator("subset")
    @classmethod
    def _subset(cls, v: int | float | None) -> int | float | None:
        if isinstance(v, float) and not 0 < v <= 1 or isinstance(v, int) and v < 1:
            raise ValueError(f"give a fraction in (0, 1] or a count >= 1 (got {v!r})")
        return v

    @field_validator("synthetic_shape")
    @classmethod
    def _shape(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if min(v) < 1:
            raise ValueError(f"give (channels, height, width), each >= 1 (got {list(v)})")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        if self.args and not is_import_path(self.name):
            raise ValueError(f"data.args: keyword arguments for your dataset function; {self.name} takes none")
        if self.name == "image_folder" and not self.path:
            raise ValueError("image_folder needs data.path, a folder with one subfolder of images per class")
        if is_import_path(self.name):
            if self.normalize == "standard":
                raise ValueError("normalize: standard: your dataset has no standard constants; use train or none")
            return self
        augments = bool(self.crop_padding or self.flip or self.cutout)
        if self.normalize != "standard" and self.in_memory and not augments:
            return self  # the checks below read the dataset's source, which loads the data code (torch)
        DATASETS = _datasets()  # noqa: N806 - the table, named as everywhere else
        source = DATASETS[self.name]
        if self.normalize == "standard" and source.standard is None:
            with_constants = [n for n in DATASETS.names() if DATASETS[n].standard is not None]
            raise ValueError(
                f"normalize: standard: {self.name} has no standard constants (those that do: "
                f"{', '.join(with_constants)}); use normalize: train"
            )
        if not self.in_memory and source.stream is None:
            raise ValueError(f"in_memory: false streams image folders only; {self.name} is always held in memory")
        if source.kind == "sequence" and augments:
            raise ValueError(
                f"{self.name} holds sequences (steps, features); crop_padding, flip and cutout augment "
                "images only: set them to 0 / false"
            )
        return self


class ModelConfig(Section):
    arch: str = Field("mlp", description="a built-in architecture, or your model as 'package.module:callable'")
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of your model callable")
    width: int = Field(64, ge=1, description="hidden units (mlp); channels of the first stage (cnn)")
    depth: int = Field(2, ge=1, description="hidden layers (mlp), conv layers (cnn), 6n+2 layers (resnet)")
    norm: str = "none"
    init: str = "default"
    activation: str = "relu"
    dropout: float = Field(0.0, ge=0, lt=1)
    # Options of single levels: each is read only by the level it names.
    residual: bool = False
    zero_init_residual: bool = False
    dropout_placement: Literal["blocks", "classifier"] = "blocks"
    alpha_dropout: bool = True
    norm_groups: int = Field(32, ge=1)
    leaky_relu_slope: float = Field(0.01, ge=0, lt=1)
    normal_std: float = Field(0.01, gt=0)
    lsuv_tolerance: float = Field(0.1, gt=0, lt=1)
    lsuv_max_iters: int = Field(10, ge=1)
    # Sequence models (ablations/models/transformer.py, rnn.py).
    heads: int = Field(4, ge=1, description="transformer: attention heads; must divide width")
    ff_mult: int = Field(4, ge=1, description="transformer: feed-forward units = ff_mult * width")
    norm_position: Literal["pre", "post"] = Field("pre", description="transformer: norm before or after the sum")
    positions: Literal["learned", "sinusoidal", "none"] = Field("learned", description="transformer")
    pooling: Literal["mean", "cls"] = Field("mean", description="transformer: mean over steps, or a class token")
    recurrent_norm: Literal["outputs", "gates"] = Field(
        "outputs", description="lstm/gru: norm each layer's outputs, or inside the cell (Ba et al. 2016)"
    )

    @field_validator("arch", "norm", "init", "activation")
    @classmethod
    def _registered(cls, v: str, info: ValidationInfo) -> str:
        if info.field_name == "arch" and is_import_path(v):
            return _importable(v, "model.arch")
        from ablations.models import ACTIVATIONS, ARCHITECTURES, INITS, NORMS  # see _datasets

        registries = {"arch": ARCHITECTURES, "norm": NORMS, "init": INITS, "activation": ACTIVATIONS}
        return _one_of(v, registries[info.field_name])

    @model_validator(mode="after")
    def _args_for_callables(self) -> ModelConfig:
        if self.args and not is_import_path(self.arch):
            raise ValueError(f"model.args: keyword arguments for your model callable; arch {self.arch} takes none")
        return self


class EarlyStoppingConfig(Strict):
    patience: int = Field(ge=1, description="epochs without improvement of the objective before stopping")
    min_delta: float = Field(0.0, ge=0, description="smallest change of the objective that counts as improvement")


class TrainConfig(Section):
    loop: str = Field("builtin", description="builtin, or your training function as 'package.module:callable'")
    args: dict[str, Any] = Field(default_factory=dict, description="settings of your own training function")
    # The recipe keys are read by the levels of ablations/recipe (README, "The training recipe").
    optimizer: str = "momentum"
    lr: float = Field(0.05, gt=0)
    momentum: float | None = Field(None, ge=0, lt=1, description="None: the optimizer's own (sgd 0, momentum 0.9)")
    weight_decay: float = Field(0.0, ge=0)
    rmsprop_alpha: float = Field(0.99, ge=0, lt=1)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    schedule: str = "constant"
    warmup_epochs: float = Field(0.0, ge=0)
    step_epochs: int = Field(30, ge=1)
    gamma: float = Field(0.1, gt=0, le=1)
    milestones: list[int] = Field(default_factory=list)
    milestones_unit: Literal["epochs", "steps"] = "epochs"
    min_lr: float = Field(0.0, ge=0)
    onecycle_pct_start: float = Field(0.3, gt=0, lt=1)
    l1: float = Field(0.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    grad_clip: float | None = Field(None, gt=0, description="max global gradient norm")
    early_stopping: EarlyStoppingConfig | None = None
    batch_size: int = Field(64, ge=1)
    epochs: int = Field(10, ge=1)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="autocast dtype of the forward pass")
    channels_last: bool = Field(False, description="NHWC memory format for conv nets (on CUDA)")

    @field_validator("optimizer", "schedule")
    @classmethod
    def _registered(cls, v: str, info: ValidationInfo) -> str:
        from ablations.recipe import OPTIMIZERS, SCHEDULES  # see _datasets

        return _one_of(v, {"optimizer": OPTIMIZERS, "schedule": SCHEDULES}[info.field_name])

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if any(m < 1 for m in v) or v != sorted(set(v)):
            raise ValueError(f"give increasing positive milestones, e.g. [30, 60] (got {v})")
        return v

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _stopping_rule(cls, v: Any) -> Any:
        if v is not None and not isinstance(v, EarlyStoppingConfig) and not (isinstance(v, dict) and "patience" in v):
            raise ValueError(f"give the rule as {{patience: EPOCHS, min_delta: 0.0}}, or null for none (got {v!r})")
        return v

    @model_validator(mode="after")
    def _schedule_options(self) -> TrainConfig:
        if self.schedule == "multistep" and not self.milestones:
            raise ValueError("schedule multistep needs train.milestones, e.g. [30, 60] (epochs) or steps")
        return self


TrainConfig.ADDED = (
    "rmsprop_alpha", "adam_betas", "eps", "schedule", "warmup_epochs", "step_epochs", "gamma", "milestones",
    "milestones_unit", "min_lr", "onecycle_pct_start", "l1", "label_smoothing", "grad_clip", "early_stopping",
    "max_steps", "loop", "args",
)  # fmt: skip
DataConfig.ADDED = ("args", "memory_limit_mb", "seq_length")
ModelConfig.ADDED = ("args", "heads", "ff_mult", "norm_position", "positions", "pooling", "recurrent_norm")


class TrialConfig(Strict):
    """Everything one trial needs: the base config with one cell's levels filled in."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()


class ObjectiveConfig(Strict):
    """The metric every trial is judged by. The built-in loop reports OBJECTIVE_METRICS; your own
    training function or script may report any name. A metric ending in `loss` or `error` is
    minimized unless `direction` says otherwise."""

    metric: str = Field("val_acc", pattern=r"^[A-Za-z_][\w./-]*$")
    direction: Literal["maximize", "minimize"] | None = None

    @model_validator(mode="after")
    def _default_direction(self) -> ObjectiveConfig:
        if self.direction is None:
            self.direction = "minimize" if self.metric.endswith(("loss", "error")) else "maximize"
        return self


class PrunerConfig(BaseModel):
    """`name` plus the keyword arguments of that Optuna pruner."""

    model_config = ConfigDict(extra="allow")
    name: str = "median"

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return _one_of(v, PRUNERS)

    @model_validator(mode="after")
    def _args(self) -> PrunerConfig:
        check_pruner_args(self.name, self.args)
        return self

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DesignConfig(Strict):
    """Which cells of the factors' grid run (the designs are registered in ablations/grid.py).

    `full`: every combination. `one_at_a_time`: the `baseline` cell (a level per factor; the first
    level where not named), then each other level of each factor alone. `random`: a seeded random
    `fraction` or `count` of the full grid's cells. In YAML either a name or a mapping, e.g.
    `design: {name: random, fraction: 0.1, seed: 0}`.
    """

    name: str = "full"
    baseline: dict[str, Any] | None = None
    fraction: float | None = Field(None, gt=0, le=1)
    count: int | None = Field(None, ge=1)
    seed: int = 0

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from ablations.grid import DESIGNS  # grid imports this module; the registry is ready by now

        return _one_of(v, DESIGNS)

    @model_validator(mode="after")
    def _options(self) -> DesignConfig:
        allowed = {"full": set(), "one_at_a_time": {"baseline"}, "random": {"fraction", "count", "seed"}}
        given = {k for k in ("baseline", "fraction", "count") if getattr(self, k) is not None}
        if self.seed != 0:
            given.add("seed")
        extra = given - allowed.get(self.name, given)
        if extra:
            keys = ", ".join(sorted(allowed[self.name])) or "none"
            raise ValueError(f"{', '.join(sorted(extra))} does not apply to design {self.name!r}; its keys: {keys}")
        if self.name == "random" and (self.fraction is None) == (self.count is None):
            raise ValueError("design 'random' needs exactly one of `fraction` (0-1] or `count` (cells)")
        return self

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> Any:
        # `full` with no options dumps as the plain name, so fingerprints of earlier studies still match.
        data = {k: v for k, v in handler(self).items() if v is not None}
        return self.name if data == {"name": "full", "seed": 0} else data

    def size(self, total: int) -> int:
        """Cells a random design draws from a grid of `total` cells."""
        return self.count if self.count is not None else max(1, round((self.fraction or 1.0) * total))


class SpaceConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    seeds: int = Field(1, ge=1)
    design: DesignConfig = DesignConfig()
    objective: ObjectiveConfig = ObjectiveConfig()
    pruner: PrunerConfig = PrunerConfig()
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    factors: dict[str, list[Any]] = Field(default_factory=dict)
    # Partial cells (factor -> level) whose matching cells are left out of the grid.
    exclude: list[dict[str, Any]] = Field(default_factory=list)
    # Per-layer activation and gradient statistics (ablations.diagnostics); they never change a result.
    diagnostics: bool = True

    def excluded(self, cell: dict[str, Any]) -> bool:
        """Whether a cell (full key -> level) matches one of the `exclude` rules."""
        return any(all(k in cell and cell[k] == v for k, v in rule.items()) for rule in self.exclude)

    def chosen_model_keys(self) -> set[str]:
        """The model keys this space chooses (a factor, or a base value other than the default): the
        ones applied to a user's model (ablations.plugins.user_model). Others keep the model's own."""
        defaults = ModelConfig.model_fields
        chosen = {k.split(".", 1)[1] for k in self.factors if k.startswith("model.")}
        chosen |= {
            k
            for k, f in defaults.items()
            if k != "args" and getattr(self.model, k) != f.get_default(call_default_factory=True)
        }
        return chosen

    @field_validator("design", mode="before")
    @classmethod
    def _design_name(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    def base(self) -> dict[str, Any]:
        return {"data": self.data.model_dump(), "model": self.model.model_dump(), "train": self.train.model_dump()}

    def trial_config(self, cell: dict[str, Any]) -> TrialConfig:
        config = self.base()
        for key, level in cell.items():
            _set_path(config, key, level)
        return TrialConfig.model_validate(config)


class ProgramTrialConfig(BaseModel):
    """One script-mode trial's config: the script's own sections, passed through as written."""

    data: dict[str, Any] = Field(default_factory=dict)
    model: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)


class ProgramSpaceConfig(SpaceConfig):
    """Script mode (ablations.program): `program` is run once per trial as a subprocess, which
    reads its config with ablations.config() and reports with ablations.report(). The data, model
    and train sections are the script's own: free-form, only passed through."""

    program: list[str]
    program_grace_seconds: float = Field(
        10.0, gt=0, description="after a pruned report, how long the script has to stop before SIGTERM/SIGKILL"
    )
    data: dict[str, Any] = Field(default_factory=dict)  # type: ignore[assignment]
    model: dict[str, Any] = Field(default_factory=dict)  # type: ignore[assignment]
    train: dict[str, Any] = Field(default_factory=dict)  # type: ignore[assignment]
    diagnostics: bool = False  # the suite never sees the script's model

    @field_validator("program", mode="before")
    @classmethod
    def _command(cls, v: Any) -> Any:
        command = shlex.split(v) if isinstance(v, str) else v
        if not isinstance(command, list) or not command or not all(isinstance(p, (str, int, float)) for p in command):
            raise ValueError("give a command, as a string (`python train.py --fast`) or a list of arguments")
        return [str(p) for p in command]

    def base(self) -> dict[str, Any]:
        return copy.deepcopy({"data": self.data, "model": self.model, "train": self.train})

    def trial_config(self, cell: dict[str, Any]) -> ProgramTrialConfig:  # type: ignore[override]
        config = self.base()
        for key, level in cell.items():
            _set_path(config, key, level)
        return ProgramTrialConfig.model_validate(config)


# ---------------------------------------------------------------- loading and overrides


def load_space(path: str | Path, overrides: list[str] = ()) -> SpaceConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such search space file (see search_spaces/ for examples)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}; fix the syntax") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a search space must be a YAML mapping with `name`, `factors`, ...")
    raw.setdefault("name", path.stem)
    return validate_space(with_overrides(raw, overrides), source=str(path))


def with_overrides(raw: dict[str, Any], overrides: list[str] = ()) -> dict[str, Any]:
    """A copy of a raw search space with `--set KEY=VALUE` items applied (see `_apply_override`)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        _apply_override(raw, item)
    return raw


def validate_space(raw: dict[str, Any], source: str = "<space>") -> SpaceConfig:
    raw = copy.deepcopy(raw)
    factors = raw.get("factors") or {}
    if not isinstance(factors, dict):
        raise ConfigError(f"{source}: `factors` must map config keys to lists of levels, e.g. `norm: [none, batch]`")
    raw["factors"] = {full_key(str(k)): v for k, v in factors.items()}
    exclude = raw.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(rule, dict) for rule in exclude):
        raise ConfigError(f"{source}: `exclude` must be a list of partial cells, e.g. `exclude: [{{norm: instance}}]`")
    raw["exclude"] = [{full_key(str(k)): v for k, v in rule.items()} for rule in exclude]
    kind = ProgramSpaceConfig if "program" in raw else SpaceConfig  # script mode: see ProgramSpaceConfig
    try:
        space = kind.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_describe(err, source)) from None
    for key, levels in space.factors.items():
        _check_factor(space, key, levels, source)
    _check_design(space, source)
    for i, rule in enumerate(space.exclude):
        _check_exclude_rule(space, i, rule, source)
    if isinstance(space, ProgramSpaceConfig):
        return space  # the script builds its own data, model and loop: nothing more to check here
    _check_compatible(space, source)
    _check_inputs(space, source)
    _check_objective(space, source)
    _check_user_models(space, source)
    return space


def _check_objective(space: SpaceConfig, source: str) -> None:
    """The built-in loop reports a fixed set of metrics; a user's loop may report any."""
    loops = {space.train.loop, *space.factors.get("train.loop", [])}
    if loops == {"builtin"} and (space.train.args or any(k.startswith("train.args.") for k in space.factors)):
        raise ConfigError(f"{source}: train.args: settings for your own train.loop; the built-in loop takes none")
    if loops == {"builtin"} and space.objective.metric not in OBJECTIVE_METRICS:
        raise ConfigError(
            f"{source}: objective.metric: the built-in training loop reports {', '.join(OBJECTIVE_METRICS)}, "
            f"not {space.objective.metric!r}; pick one of those, or report it from your own train.loop"
        )


def _check_user_models(space: SpaceConfig, source: str) -> None:
    """A user's model gets `depth`/`width` only if its callable takes them (they cannot be swapped
    in), and every `model.args` key must be one of its parameters."""
    from ablations.plugins.user_model import signature_of

    archs = {space.model.arch, *space.factors.get("model.arch", [])}
    arg_keys = set(space.model.args) | {k.split(".", 2)[2] for k in space.factors if k.startswith("model.args.")}
    for arch in sorted(a for a in archs if is_import_path(a)):
        names, var_kw = signature_of(arch)
        params = ", ".join(sorted(names)) or "(none)"
        for key in ("depth", "width"):  # a base value is simply not passed (`check` shows what is)
            if f"model.{key}" in space.factors and key not in names:
                raise ConfigError(
                    f"{source}: factors.{key}: {arch} does not take `{key}` (its parameters: {params}); {key} "
                    "cannot be swapped into a built model: add the parameter to your builder, or drop the factor"
                )
        unknown = sorted(k for k in arg_keys if k not in names) if not var_kw else []
        if unknown:
            raise ConfigError(
                f"{source}: model.args: {', '.join(unknown)} not accepted by {arch} (its parameters: {params})"
            )


def _check_inputs(space: SpaceConfig, source: str) -> None:
    """Refuse an architecture that cannot read the data (a conv net on sequences) unless excluded."""
    from ablations.models.compat import input_mismatch  # torch: loaded only when a space is checked

    DATASETS = _datasets()  # noqa: N806 - the table, named as everywhere else
    archs = space.factors.get("model.arch", [space.model.arch])
    names = space.factors.get("data.name", [space.data.name])
    for arch, name in itertools.product(archs, names):
        if name not in DATASETS:  # a user's data source: its kind is not declared
            continue
        problem = input_mismatch(arch, DATASETS[name].kind)
        if problem and not space.excluded({"model.arch": arch, "data.name": name}):
            raise ConfigError(f"{source}: model.arch: {problem} (data.name={name})")


def _check_design(space: SpaceConfig, source: str) -> None:
    """Checks that need the factors: a baseline names factors and their levels; a count fits the grid.
    Fills the baseline in (full keys, every factor) so the grid and the report read one form."""
    design = space.design
    if design.name == "one_at_a_time":
        baseline = {full_key(str(k)): v for k, v in (design.baseline or {}).items()}
        for key, level in baseline.items():
            if key not in space.factors:
                raise ConfigError(
                    f"{source}: design.baseline.{short_key(key)}: not a factor; the baseline names a level "
                    f"of each factor: {', '.join(short_key(k) for k in space.factors) or '(no factors)'}"
                )
            if level not in space.factors[key]:
                allowed = ", ".join(str(v) for v in space.factors[key])
                raise ConfigError(
                    f"{source}: design.baseline.{short_key(key)}: {level!r} is not one of its levels; "
                    f"allowed: {allowed}"
                )
        design.baseline = {k: baseline.get(k, levels[0]) for k, levels in space.factors.items()}
    if design.name == "random" and design.count is not None:
        total = 1
        for levels in space.factors.values():
            total *= len(levels)
        if design.count > total:
            raise ConfigError(
                f"{source}: design.count: {design.count} is more than the {total} cells of the full grid; "
                "lower it, or use `design: full`"
            )


def _check_exclude_rule(space: SpaceConfig, i: int, rule: dict[str, Any], source: str) -> None:
    if not rule:
        raise ConfigError(f"{source}: exclude[{i}]: an empty rule would exclude every cell; name factor levels")
    for key, level in rule.items():
        name = short_key(key)
        if key not in space.factors:
            factors = ", ".join(short_key(k) for k in space.factors) or "none"
            raise ConfigError(f"{source}: exclude[{i}].{name}: not a factor of this space; factors: {factors}")
        if level not in space.factors[key]:
            levels = ", ".join(str(v) for v in space.factors[key])
            raise ConfigError(f"{source}: exclude[{i}].{name}: {level!r} is not a level; levels: {levels}")


def incompatible_cells(space: SpaceConfig) -> list[tuple[dict[str, Any], dict[str, Any], str]]:
    """(model cell, partial cell to exclude, reason) for each combination of the `model.*` factors
    whose model makes no sense (models.incompatibilities), whether or not `exclude` drops it.
    Only the model factors are combined: whether a model makes sense depends on nothing else, and
    a random design may sample a grid far too large to list."""
    from ablations.models import incompatibilities  # see _datasets

    keys = [k for k in space.factors if k.startswith("model.")]
    found = []
    for combo in itertools.product(*(space.factors[k] for k in keys)):
        cell = dict(zip(keys, combo, strict=True))
        if isinstance(space, ProgramSpaceConfig):
            break  # the script builds its own model: nothing to check
        for rule_keys, reason in incompatibilities(space.trial_config(cell).model):
            found.append((cell, {k: cell[k] for k in rule_keys if k in cell}, reason))
    return found


def _check_compatible(space: SpaceConfig, source: str) -> None:
    """Refuse a grid holding a cell that makes no sense unless `exclude` drops it: it could only fail."""
    if isinstance(space, ProgramSpaceConfig):
        return  # the script builds its own model
    bad = [(cell, part, reason) for cell, part, reason in incompatible_cells(space) if not space.excluded(cell)]
    if not bad:
        return
    cell, part, reason = bad[0]
    if not part:
        raise ConfigError(f"{source}: model: {reason}; change the base config")
    rules = []
    for _, p, _ in bad:
        text = "{" + ", ".join(f"{short_key(k)}: {v}" for k, v in p.items()) + "}"
        if text not in rules:
            rules.append(text)
    label = " ".join(f"{short_key(k)}={v}" for k, v in cell.items())
    raise ConfigError(
        f"{source}: exclude: {len(bad)} cell(s) make no sense, e.g. {label}: {reason}; "
        f"leave them out with `exclude: [{', '.join(rules)}]`"
    )


def _check_factor(space: SpaceConfig, key: str, levels: list[Any], source: str) -> None:
    name = short_key(key)
    if isinstance(space, ProgramSpaceConfig):
        if not re.fullmatch(r"(data|model|train)(\.[A-Za-z_][\w-]*)+", key):
            raise ConfigError(
                f"{source}: factors.{name}: with `program:` a factor is a dotted key inside data, model or "
                "train (e.g. train.lr, model.hidden), or one of " + ", ".join(SHORT_KEYS)
            )
    elif not _is_leaf(key):
        raise ConfigError(
            f"{source}: factors.{name}: unknown config key; a factor is one of "
            f"{', '.join(SHORT_KEYS)} or a dotted key such as {', '.join(_leaf_keys()[:6])}, ..."
        )
    if not levels:
        raise ConfigError(f"{source}: factors.{name}: the list of levels is empty; give at least one level")
    if len({repr(v) for v in levels}) != len(levels):
        raise ConfigError(f"{source}: factors.{name}: a level is listed twice; list each level once")
    for level in levels:
        try:
            space.trial_config({key: level})
        except ValidationError as err:
            raise ConfigError(_describe(err, source, prefix=f"factors.{name}: level {level!r}")) from None


def _describe(err: ValidationError, source: str, prefix: str | None = None) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        section = ".".join(str(p) for p in first["loc"][:-1])
        message = f"unknown key; allowed here: {', '.join(_fields_at(section))}"
    elif first["type"] == "literal_error":
        message = message.replace("Input should be", "must be one of")
    elif "input" in first and first["type"] not in ("value_error", "missing"):
        message = f"{message} (got {first['input']!r})"
    where = prefix or key
    if prefix and key:
        where = f"{prefix} ({key})"
    return f"{source}: {where}: {message}"


def _fields_at(section: str) -> list[str]:
    model: type[BaseModel] = SpaceConfig
    for part in filter(None, section.split(".")):
        field = model.model_fields.get(part)
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return []
        model = field.annotation
    return list(model.model_fields)


def _leaf_keys() -> list[str]:
    return [f"{s}.{f}" for s in ("model", "train", "data") for f in TrialConfig.model_fields[s].annotation.model_fields]


def _is_leaf(key: str) -> bool:
    # Keys under model.args / data.args are the user's callable's own arguments: any name.
    return key in _leaf_keys() or bool(re.match(r"^(model|data|train)\.args\.[A-Za-z_]\w*$", key))


def _set_path(config: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


_OVERRIDE = re.compile(r"^([A-Za-z_][\w.]*)=(.*)$", re.S)


def _apply_override(raw: dict[str, Any], item: str) -> None:
    """`KEY=VALUE` sets the base config; `KEY=V1,V2` (or KEY=VALUE on a factor) sets levels."""
    match = _OVERRIDE.match(item)
    if not match:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.lr=0.1 or --set norm=none,batch")
    key, text = match.groups()
    values = [_parse_scalar(v) for v in text.split(",")] if "," in text else [_parse_scalar(text)]
    factors = raw.setdefault("factors", {}) or {}
    raw["factors"] = factors
    factor = next((k for k in factors if full_key(k) == full_key(key)), None)
    if factor is not None or len(values) > 1:
        factors[factor or key] = values
    elif key == "pruner.name":  # another pruner: the YAML's arguments were for the old one
        raw["pruner"] = {"name": values[0]}
    elif key in SHORT_KEYS:
        _set_path(raw, SHORT_KEYS[key], values[0])
    else:
        _set_path(raw, key, values[0])


def _parse_scalar(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # Only scalars come from YAML: `--set norm={a: 1}` or `--set x=null` stay the text typed.
    keep_text = isinstance(value, (dict, list)) or (value is None and text.strip())
    return text if keep_text else value


client.callable_module(__name__, client.config)  # `ablations.config()` stays callable once this module is imported
