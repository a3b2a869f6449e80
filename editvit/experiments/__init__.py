"""Reproductions of the paper's claims: model variants at equal size, balanced data subsets or whole data sets,
one training + sink-analysis run as one JSON row, aggregation over seeds, plots, and the `editvit demo`.

    from editvit.experiments import Budget, make_subset, run_experiment, append_row, aggregate
    subset = make_subset('cifar10', '~/data/cifar10', 'work/cifar10-500', train_per_class=500, test_per_class=100)
    result = run_experiment('edit', subset, seed=0, budget=Budget(epochs=2), output='runs/edit-s0')
    append_row('results.jsonl', result.row)
"""
from .aggregate import aggregate, compare, format_table
from .budget import Budget
from .demo import DEMO_BUDGET, run_demo
from .full import FullRun, run_full
from .locate_cifar10 import MissingDataError, locate_data
from ..threads import idle_cores  # the one rule for threads, used by the demo and every command
from .machine import describe_machine
from .results import append_row, read_rows, write_rows
from .run import RunResult, remeasure_sink, run_experiment
from .subset import Subset, make_subset
from .variants import VARIANTS, variant_model
from .whole import WholeDataSet, whole_dataset

__all__ = ['Budget', 'DEMO_BUDGET', 'FullRun', 'MissingDataError', 'RunResult', 'Subset', 'VARIANTS', 'aggregate',
           'append_row', 'compare', 'describe_machine', 'format_table', 'idle_cores', 'locate_data', 'make_subset',
           'read_rows', 'remeasure_sink', 'run_demo', 'run_experiment', 'run_full', 'variant_model', 'WholeDataSet',
           'whole_dataset', 'write_rows']
