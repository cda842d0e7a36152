"""After a classification: one typed result through an ordered list of stages."""

from .call import Calls
from .result import Result, Stage
from .run import Pipeline
from .stages import StageContext, build_stages

__all__ = ["Calls", "Pipeline", "Result", "Stage", "StageContext", "build_stages"]
