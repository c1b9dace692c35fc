"""The report's sections, one function each: RunData in, a Section (or None when its input is absent) out.

Every section reads its input tolerantly (producers may add fields, and runs may be partial) and is
omitted when there is nothing to show. The order of ``SECTIONS`` is the order on the page: what a reader
asks first (did it train, how well) before how (data, tokenizer, optimisation) and the extras.
"""

from __future__ import annotations

from collections.abc import Callable

from pretrain.report.html import ImageSink, Section
from pretrain.report.rundata import RunData
from pretrain.report.sections.benchmarks import benchmarks
from pretrain.report.sections.data import funnel, mixture, tokenizer
from pretrain.report.sections.evaluation import (
    audits,
    bits_per_byte_of,
    heldout,
    heldout_parts,
    needle,
    samples,
    scaling,
)
from pretrain.report.sections.lineage import provenance
from pretrain.report.sections.reliability import goodput
from pretrain.report.sections.run import interventions, param_count, summary
from pretrain.report.sections.training import loss, moe, optimisation

SECTIONS: list[Callable[[RunData, ImageSink], Section | None]] = [
    summary, loss, benchmarks, heldout, funnel, tokenizer, mixture, optimisation, goodput, interventions, moe,
    needle, samples, audits, scaling, provenance,
]

__all__ = ["SECTIONS", "bits_per_byte_of", "heldout_parts", "param_count"]
