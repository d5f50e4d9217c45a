"""rankstudy: the rank of random networks' features under nonlinearities and expansion ratios (ReXNet, arXiv 2007.00992, §3 and Figure 1)."""

from .errors import StudyError
from .probing import probe
from .random_nets.config import KINDS, StudyConfig
from .random_nets.networks import build_features, rebuild_features
from .random_nets.nonlinearities import get_nonlinearity, list_nonlinearities, register_nonlinearity
from .random_nets.run import analyze, merge, run_study
from .random_nets.sampling import sample_networks
from .rank import metric_columns, numerical_rank, rank_metrics, singular_values
from .store import load_results

__all__ = [
    "KINDS",
    "StudyConfig",
    "StudyError",
    "analyze",
    "build_features",
    "get_nonlinearity",
    "list_nonlinearities",
    "load_results",
    "merge",
    "metric_columns",
    "numerical_rank",
    "probe",
    "rank_metrics",
    "rebuild_features",
    "register_nonlinearity",
    "run_study",
    "sample_networks",
    "singular_values",
]
