"""External proposals: selective search (cached per image file), proposal
files (detectron2's pickle and detcore's npz), and the sources that attach
them to a dataset so every item carries ``target["proposals"]``.

The RPN dump of a trained detector is :func:`detcore.proposals.rpn.rpn_proposals`
(it needs PyTorch; this package alone needs numpy, and OpenCV's contrib module
for selective search: ``pip install 'detcore[classic]'``)."""

from .cache import ProposalCache
from .files import FORMATS, ProposalError, ProposalSet, read_proposals, write_proposals
from .selective import selective_search
from .source import SPEC_HELP, FileSource, SelectiveSearchSource, attach_proposals, parse_source

__all__ = [
    "ProposalCache", "FORMATS", "ProposalError", "ProposalSet", "read_proposals", "write_proposals",
    "selective_search", "SPEC_HELP", "FileSource", "SelectiveSearchSource", "attach_proposals", "parse_source",
]
