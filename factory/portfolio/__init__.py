"""Portfolio construction: point-in-time factor risk models and a cvxpy mean-variance optimiser.

``estimate_pca_model`` / ``estimate_fama_french_model`` give a ``FactorRiskModel`` as of a
time; ``MeanVarianceOptimizer`` turns expected returns, that model and the weights held now
into target weights, keeping the held weights when no trustworthy answer is found.
"""

from factory.portfolio.factors import (
    FAMA_FRENCH_FACTORS,
    TRADING_DAYS_PER_MONTH,
    estimate_fama_french_model,
    load_fama_french_factors,
)
from factory.portfolio.optimizer import (
    MeanVarianceOptimizer,
    PortfolioConstraints,
    PortfolioSolveError,
    RebalanceResult,
    portfolio_objective,
)
from factory.portfolio.risk_model import (
    FactorRiskModel,
    InsufficientHistoryError,
    estimate_pca_model,
)

__all__ = [
    "FAMA_FRENCH_FACTORS",
    "TRADING_DAYS_PER_MONTH",
    "FactorRiskModel",
    "InsufficientHistoryError",
    "MeanVarianceOptimizer",
    "PortfolioConstraints",
    "PortfolioSolveError",
    "RebalanceResult",
    "estimate_fama_french_model",
    "estimate_pca_model",
    "load_fama_french_factors",
    "portfolio_objective",
]
