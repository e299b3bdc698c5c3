"""Curriculum samplers: which examples fill each optimizer step (docs/CURRICULUM.md)."""

from curiosity_sft.curriculum.build import build_sampler, curriculum_data, describe, encode_kept
from curiosity_sft.curriculum.data import CurriculumData
from curiosity_sft.curriculum.samplers import Sampler

__all__ = ["CurriculumData", "Sampler", "build_sampler", "curriculum_data", "describe", "encode_kept"]
