"""After a classification: one typed result through an ordered list of stages."""

from .call import Calls, Classifier
from .result import Result, Stage
from .run import Pipeline
from .stages import StageContext, build_stages

__all__ = ["Calls", "Classifier", "Pipeline", "Result", "Stage", "StageContext", "build_stages"]
