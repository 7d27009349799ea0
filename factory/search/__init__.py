"""``factory run --search optuna``: a TPE search per architecture instead of the full grid.

Plain Python (Optuna, no Prefect, no MLflow): ``space`` (what a trial draws and the RunSpec it
stands for, by the grid's own rules), ``study`` (trials trained, pruned fold by fold and
recorded; the best refit), ``plan`` (one study per architecture) and ``storage`` (the
studies' database). ``flows/search_flow.py`` runs the studies in worker processes and logs
their trials to MLflow from the flow's process.
"""

from factory.search.plan import describe_search, plan_studies, search_summary_lines
from factory.search.space import SearchSpace, build_space, searched_architectures
from factory.search.storage import open_storage, redacted, storage_url
from factory.search.study import StudyPlan, StudyReport, TrialRecord, run_study, study_name

__all__ = ["SearchSpace", "StudyPlan", "StudyReport", "TrialRecord", "build_space",
           "describe_search", "open_storage", "plan_studies", "redacted", "run_study",
           "search_summary_lines", "searched_architectures", "storage_url", "study_name"]
