"""PSViT search: a compact space of token numbers and sharing choices, a weight-sharing supernet, evolution."""
from .evolution import SearchResult, evolutionary_search
from .run import result_to_dict, resume_search, run_search
from .space import Arch, PSViTSearchSpace
from .config import SupernetConfig
from .supernet import SampledSubnets, SupernetTask, evaluate_member, sample_within_budget

__all__ = ['Arch', 'PSViTSearchSpace', 'SampledSubnets', 'SearchResult', 'SupernetConfig', 'SupernetTask',
           'evaluate_member', 'evolutionary_search', 'result_to_dict', 'resume_search', 'run_search',
           'sample_within_budget']
