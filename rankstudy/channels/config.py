"""What defines a channel study (paper §4, CVPR Table 3): its settings (`ChannelStudyConfig`), the fixed parts of
every network, and the names of its tables' columns and files, shared by the runner, the report and the plots."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..errors import StudyError

FAMILIES = ("linear", "piecewise", "stagewise")
STEM_CHANNELS = 16
PENULTIMATE_CHANNELS = 320
EXPANSION = 6  # the paper fixes the expansion ratio of the inverted bottlenecks while it searches the widths
MIN_WIDTH = 8
MAX_DRAWS = 20  # draws of a profile before a config whose MACs cannot hit the budget is given up
PROXY_RTOL = 1e-2
PROXIES = ("proxy_rank_rtol_1e-2", "proxy_effective_rank")
SCHEMA = "rankstudy.channels/1"
SCHEDULES, ROWS = "schedules.parquet", "rows"
SCHEDULE_COLUMNS = (
    "config_id",
    "family",
    "pieces",
    "draws",
    "widths",
    "scale",
    "params",
    "macs",
    "slope",
    "growth",
    "linearity_r2",
)
RESULT_COLUMNS = ("seed", "top1", "top5", "test_loss", "train_loss", "train_top1", *PROXIES, "proxy_s", "train_s")
TIMING_COLUMNS = ("proxy_s", "train_s")  # the only columns that differ between identical runs


@dataclass(frozen=True)
class ChannelStudyConfig:
    """What defines a channel study (saved in its manifest; a rerun must match it to resume)."""

    n: int = 120  # sampled schedules, assigned to FAMILIES in turn
    macs: int = 10_000_000  # budget per network (multiply-accumulates of one image)
    blocks: int = 9
    data: str = "fashion-mnist"
    img_size: int = 32
    epochs: int = 1
    train_limit: int | None = 10_000  # fixed random subset of the training set; the test set is always full
    seeds: int = 1  # training seeds 0..seeds-1 for every config
    noise_configs: int = 6  # the first this many configs also run with seeds 0..noise_seeds-1
    noise_seeds: int = 3
    max_growth: float = 8.0  # largest c_last / c_first drawn
    batch_size: int = 64
    lr: float = 0.1
    probe_images: int = 128
    seed: int = 0  # schedule sampling seed

    def validate(self) -> None:
        """Raises StudyError naming the first bad setting and its fix."""

        def need(cond: bool, problem: str) -> None:
            if not cond:
                raise StudyError(problem)

        need(self.n >= 1, f"--n must be >= 1, got {self.n}")
        need(self.macs > 0, f"--macs must be positive, got {self.macs}")
        need(self.blocks >= 4, f"--blocks must be >= 4 (three stride-2 blocks and one more), got {self.blocks}")
        need(self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}")
        need(
            self.train_limit is None or self.train_limit >= self.batch_size,
            f"--train-limit {self.train_limit} is below one batch ({self.batch_size}); raise it",
        )
        need(self.seeds >= 1 and self.noise_seeds >= 1, "--seeds and --noise-seeds must be >= 1")
        need(0 <= self.noise_configs <= self.n, f"--noise-configs must be in 0..n ({self.n}), got {self.noise_configs}")
        need(self.max_growth >= 1, f"--max-growth must be >= 1, got {self.max_growth}")
        need(self.img_size >= 16, f"--img-size must be >= 16 (four downsamplings), got {self.img_size}")
        need(
            self.batch_size >= 1 and self.lr > 0 and self.probe_images >= 1,
            "--batch-size, --lr and --probe-images must be positive",
        )

    def to_dict(self) -> dict:
        """Returns the settings as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ChannelStudyConfig:
        """Returns the config a manifest holds (unknown keys rejected)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise StudyError(
                f"channel-study manifest has unknown settings {unknown}; it was written by another "
                "version: choose another --out"
            )
        return cls(**data)

    def seeds_of(self, config_id: int) -> range:
        """Returns the training seeds of one config (more for the seed-noise configs)."""
        return range(max(self.seeds, self.noise_seeds) if config_id < self.noise_configs else self.seeds)


def parse_widths(widths: str) -> list[int]:
    """Returns the widths of a schedule written as '24-33-42'."""
    return [int(w) for w in widths.split("-")]
