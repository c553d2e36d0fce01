"""`o2o`: placeholder for offline-to-online fine-tuning (SPOT, SSAR, IQL), filled by the
offline-to-online issue.

A job here is an offline run followed by online fine-tuning, which suite cells cannot
express yet, so the suite declares only its table (rows: the locomotion datasets;
columns: offline score -> online score per method, as CORL's offline-to-online tables)
and no jobs; `shiftrl bench o2o` says so.
"""

from shiftrl.bench.suites.common import ENVS, LEVELS, PAPER_1M, QUICK_100K
from shiftrl.bench.suites.spec import Suite, TableLayout

SUITE = Suite(
    name="o2o",
    description="Offline-to-online fine-tuning.",
    cells=(),
    profiles={"paper": PAPER_1M, "quick": QUICK_100K},
    layout=TableLayout(
        title="Offline-to-online: offline score -> online score",
        rows=tuple(f"{r}-{lvl}" for r in ENVS for lvl in LEVELS),
        columns=("IQL", "SPOT", "TD3+BC+SSAR", "CQL+SSAR"),
    ),
    placeholder="offline-then-online jobs are not expressible as suite cells yet: no jobs",
    references=("Tarasov et al., CORL (offline-to-online tables), NeurIPS 2023 D&B",),
)
