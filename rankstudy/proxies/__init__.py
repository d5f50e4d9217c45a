"""Zero-cost proxies on NAS-Bench-201: do the study's rank measures predict trained accuracy?

A wing of rankstudy: `nb201` (the benchmark's network), `spaces` (search spaces: ids, networks, accuracies),
`inputs` (the seeded batch), `scores` (the registered proxies and the one harness), `run` (`rankstudy proxies`,
resumable) and `report` (`rankstudy proxies-report`). docs/proxies.md describes the definitions and choices.
"""

from .inputs import INPUTS, make_batch
from .nb201 import NB201Network, build_network, cell_string, parse_cell
from .report import analyze as analyze_proxies
from .report import write_report as write_proxies_report
from .run import ProxyStudyConfig, load_proxy_results, run_proxies
from .scores import Proxy, get_proxy, list_proxies, register_proxy, score_network
from .spaces import ACCURACY_COLUMNS, DATASETS, NB201Space, SearchSpace, get_space

__all__ = [
    "ACCURACY_COLUMNS",
    "DATASETS",
    "INPUTS",
    "NB201Network",
    "NB201Space",
    "Proxy",
    "ProxyStudyConfig",
    "SearchSpace",
    "analyze_proxies",
    "build_network",
    "cell_string",
    "get_proxy",
    "get_space",
    "list_proxies",
    "load_proxy_results",
    "make_batch",
    "parse_cell",
    "register_proxy",
    "run_proxies",
    "score_network",
    "write_proxies_report",
]
