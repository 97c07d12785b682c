"""The training config: a YAML file validated by pydantic (see trainer/configs/example.yaml)."""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from pipeline import storage
from pipeline.errors import BadInput, NotFound

# A local path (a Path) or an object-store URL (a string: Path would fold "s3://" into "s3:/"). After the
# union (a Path, or any string as given), so that a JSON round trip gives the same value.
Location = Annotated[str | Path, AfterValidator(storage.as_location)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetEntry(_Strict):
    name: str
    ratio: float = Field(default=1.0, gt=0, description="share of each batch, relative to the others")
    split: str = "training"
    supervision: Literal["dense", "coarse"] | None = Field(
        default=None, description="override the shards' supervision for pixel labels (ablations: L_HD vs L_LD)")
    max_samples: int | None = Field(
        default=None, ge=1, description="train on a seeded subset of about this many of the split's samples "
        "(the paper: ~700K of OpenImages, ~1M of Objects365); needs the split's manifest")
    fraction: float | None = Field(default=None, gt=0, le=1, description="or: this share of the split's samples")
    subsample_seed: int = Field(default=0, description="which subset max_samples / fraction keep (trainer/data/subsample.py)")

    @model_validator(mode="after")
    def _one_subset(self) -> DatasetEntry:
        if self.max_samples is not None and self.fraction is not None:
            raise ValueError(f"{self.name}: give max_samples or fraction, not both")
        return self


class Corruption(_Strict):
    """Image corruption (the paper's noise, blur, compression and the like): with probability
    `prob`, one kind drawn uniformly at a severity drawn from `severity` (1..5)."""

    prob: float = Field(default=0.0, ge=0, le=1)
    kinds: list[Literal["gaussian_noise", "gaussian_blur", "jpeg", "pixelate", "motion_blur"]] = Field(
        default_factory=lambda: ["gaussian_noise", "gaussian_blur", "jpeg", "pixelate", "motion_blur"])
    severity: tuple[int, int] = (1, 3)

    @model_validator(mode="after")
    def _check(self) -> Corruption:
        lo, hi = self.severity
        if not 1 <= lo <= hi <= 5:
            raise ValueError(f"severity {self.severity} must be a range within 1..5")
        if self.prob > 0 and not self.kinds:
            raise ValueError("prob > 0 but no kinds")
        return self


class TrainConfig(_Strict):
    corpus: str | None = Field(
        default=None, description="a built corpus: the corpus.json `ssiw corpus build` wrote beside its shards (a "
        "file or its folder, local or s3://); its shards, table, taxonomies and training datasets fill in "
        "`shards`, `table`, `taxonomies` and `datasets` when the config leaves them out (corpus_defaults)")
    name: str = Field(default="run", pattern=r"^[A-Za-z0-9._-]+$", description="run folder name under out_dir")
    out_dir: Location = Field(
        default=Path("runs"), description="folder of the run folders, or s3://bucket/prefix (checkpoints are "
        "uploaded whole, logs from a local spool: see trainer/run_log.py)")
    # A string, not a Path: Path would fold "s3://" into "s3:/". Paths given in code are accepted.
    shards: Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, PurePath) else v)] = Field(
        description="folder or s3://bucket/prefix holding <dataset>/<split>-NNNNNN.tar")
    datasets: list[DatasetEntry] = Field(min_length=1)
    table: Path | None = Field(default=None, description="embedding table parquet (pipeline.embed.table)")
    taxonomies: Path | list[Path] | None = Field(
        default=None, description="taxonomy folder(s) layered over the shipped set, later ones win (pipeline/taxonomy/load.py)")
    held_out_labels: list[str] = Field(
        default_factory=list, description="registry label keys never trained on: their pixels become ignore and "
        "their boxes are dropped in every training dataset, and they leave the softmax (zero-shot tests)")

    model: Literal["segformer-b5", "hrnet-w48", "resnet18", "tiny"] = "segformer-b5"
    weights: Literal["random"] | Path | None = Field(
        default=None, description="local pretrained backbone weights, or `random` for a randomly initialised "
        "backbone; a config file must say which (see PRETRAINED_HOWTO)")
    init: Location | None = Field(
        default=None, description="start the whole network from this ssiw run folder or checkpoint, local or "
        "s3:// (fine-tuning)")
    width: int = Field(default=32, ge=4, description="channel width of the tiny / resnet18 heads")
    sync_bn: bool = Field(default=True, description="synchronise batch norm across processes (several processes)")

    crop: tuple[int, int] = (640, 640)
    short_edge: int = Field(default=1080, ge=16)
    scale: tuple[float, float] = Field(
        default=(0.5, 2.0), description="random rescale on top of the short-edge resize: ours, not the paper's")
    flip: bool = True
    jitter: float = Field(default=0.3, ge=0, lt=1)
    blur_prob: float = Field(default=0.2, ge=0, le=1)
    corruption: Corruption = Field(default_factory=Corruption)
    box_min_visible: float = Field(
        default=0.5, ge=0, le=1, description="L_WD keeps a box only when this share of its area is in the crop")
    box_targets: Literal["any", "image"] = Field(
        default="any", description="image: every box sample must carry CLIP image embeddings of its boxes (the "
        "paper's L_WD target; convert with --box-embeddings), else the run stops; any: fall back to the box "
        "class's text embedding")

    batch_size: int = Field(default=8, ge=1, description="per process, before accumulation")
    accumulate: int = Field(default=1, ge=1)
    steps: int = Field(default=160_000, ge=1, description="optimizer steps")
    epoch_samples: int = Field(default=20_000, ge=1, description="samples per epoch, over all processes")
    epochs: int | None = Field(
        default=None, ge=1, description="passes over the data instead of steps: an epoch is every (kept) sample "
        "of the listed splits (their manifests' counts), steps = epochs x that / global batch")
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(default=6e-5, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1, description="SGD only")
    weight_decay: float = Field(default=0.01, ge=0, description="not applied to the temperature, norms and biases")
    poly_power: float = Field(default=1.0, gt=0)
    warmup_steps: int = Field(default=0, ge=0)

    softmax_over: Literal["all", "own"] = Field(
        default="all", description="all: every label of every training dataset (paper); own: the sample's dataset")
    tau: float = Field(default=0.07, gt=0, description="initial temperature (learned as log tau)")
    ld_quantile: float = Field(default=0.7, gt=0, le=1)
    loss_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    box_dim: int | None = Field(default=None, description="dimension of KEY.boxemb.npy targets (default: C)")
    roi_size: int = Field(default=7, ge=1)
    loss_chunk_pixels: int | None = Field(
        default=None, ge=1024, description="label scores are upsampled and scored this many (label x pixel) "
        "values at a time, recomputed in the backward pass: memory stays bounded with 700+ labels. Default: "
        "4M on CPU, 256M on a GPU (trainer/losses.py: default_chunk)")

    seed: int = 0
    device: Literal["auto", "cpu"] = Field(
        default="auto", description="auto: each process its own GPU (the LOCAL_RANK-th) when the node has GPUs, "
        "else the CPU; cpu: the CPU even where GPUs exist (several processes then talk over gloo)")
    amp: bool = True
    workers: int = Field(default=4, ge=0)
    shuffle_buffer: int = Field(
        default=1024, ge=0, description="raw samples buffered per dataset per loader worker (see trainer/stream.py)")
    resampled: bool = True
    checkpoint_every: int = Field(default=2000, ge=1)
    log_every: int = Field(default=10, ge=1)
    log_upload_every_s: float = Field(
        default=60, ge=0, description="with an s3:// out_dir: the logs are uploaded at the first log step this "
        "many seconds after the last upload (and before every checkpoint and at the end); a crash loses the "
        "rows since the last upload")
    dist_timeout_s: float = Field(
        default=600, gt=0, description="seconds a rank waits in a collective for the others (torch.distributed "
        "process-group timeout) before the run stops; torch's own default is 30 minutes")
    max_bad_fraction: float = Field(
        default=0.001, ge=0, le=1, description="stop with an error once the samples skipped as unreadable exceed "
        "this share of the samples read (the first one never stops a run)")

    @model_validator(mode="before")
    @classmethod
    def _from_corpus(cls, raw: object) -> object:
        # Only when something is left to fill: a config saved in a checkpoint or sent to Ray workers has
        # every field already, and a worker need not see the corpus.json.
        wanting = isinstance(raw, dict) and raw.get("corpus") and not {"shards", "table", "datasets"} <= set(raw)
        return corpus_defaults(raw) if wanting else raw

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ValueError(f"datasets listed twice: {sorted({n for n in names if names.count(n) > 1})}")
        if self.init is not None and self.weights is not None:
            raise ValueError("give either `init:` (a whole ssiw network) or `weights:` (a backbone), not both")
        if self.scale[0] > self.scale[1]:
            raise ValueError(f"scale range {self.scale} is reversed")
        if self.epochs is not None and {"steps", "epoch_samples"} & self.model_fields_set:
            raise ValueError("`epochs:` sets steps and epoch_samples from the data; give it or them, not both")
        return self

    @property
    def run_dir(self) -> Path | str:
        """The run folder: a Path, or an s3:// URL string when out_dir is one."""
        return storage.join(self.out_dir, self.name)

    @property
    def backbone_weights(self) -> Path | None:
        """The pretrained backbone file or folder to load; None for a random start."""
        return None if self.weights in (None, "random") else Path(self.weights)


def corpus_defaults(raw: dict) -> dict:
    """`raw` with the fields a config left out taken from its `corpus:`: the shards, the sentence table,
    the taxonomy folders, and every training dataset on its first "train*" split at ratio 1 (the paper:
    "each dataset accounts for almost equal ratio"). Fields the config gives win; `ssiw train --check`
    compares them with the corpus."""
    from pipeline.corpus.summary import read_summary

    corpus = read_summary(str(raw["corpus"]))
    filled = dict(raw)
    filled.setdefault("shards", corpus.shards)
    filled.setdefault("table", corpus.default_table())
    if corpus.taxonomies:
        filled.setdefault("taxonomies", corpus.taxonomies)
    filled.setdefault("datasets", [{"name": name, "split": split} for name, split in corpus.training_datasets()])
    return filled


# How to get each model's pretrained backbone (the paper starts from ImageNet weights); `tiny` has none.
PRETRAINED_HOWTO = {
    "segformer-b5": "a transformers folder: `huggingface-cli download nvidia/mit-b5 --local-dir pretrained/mit-b5`",
    "hrnet-w48": "a timm state dict: `python -c \"import timm, torch; torch.save(timm.create_model('hrnet_w48', "
                 "pretrained=True).state_dict(), 'pretrained/hrnet_w48.pth')\"`",
    "resnet18": "a timm state dict: `python -c \"import timm, torch; torch.save(timm.create_model('resnet18', "
                "pretrained=True).state_dict(), 'pretrained/resnet18.pth')\"`",
}
PRETRAINED_BACKBONES = tuple(PRETRAINED_HOWTO)


def pretrained_howto(model: str) -> str:
    return (f"point `weights:` at {PRETRAINED_HOWTO[model]}, "
            "or write `weights: random` to train the backbone from scratch")


def _check_weights_choice(path: Path, raw: dict, cfg: TrainConfig) -> None:
    """A config file says which backbone it starts from: a random start is never the silent default."""
    if cfg.model in PRETRAINED_BACKBONES and cfg.init is None and raw.get("weights") is None:
        said = "is null" if "weights" in raw else "is missing"
        raise BadInput(f"{path}: weights: {said} for model {cfg.model!r}; {pretrained_howto(cfg.model)}")


def config_default(field: str, model: type[BaseModel] = TrainConfig):
    """A field's default, for code that needs it without a config: augmentation built in code, a
    checkpoint whose saved config lacks the field. The defaults live in the models above only."""
    return model.model_fields[field].get_default(call_default_factory=True)


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a YAML config; errors name the file and each bad field."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise NotFound(f"{p}: config file not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise BadInput(f"{p}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise BadInput(f"{p}: expected a mapping of config fields")
    try:
        cfg = TrainConfig.model_validate(raw)
    except ValidationError as e:
        lines = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise BadInput(f"{p}: {lines}") from e
    _check_weights_choice(p, raw, cfg)
    # Relative paths in the file are relative to the current directory, like every CLI path.
    return cfg
