"""Linear models on flattened windows (scikit-learn, saved with skops).

:mod:`model_zoo.linear.svm` is support vector regression (linear, or RBF through a
Nystroem map); :mod:`model_zoo.linear.logistic_regression` classifies the sign of the
forward return and calibrates its probability to a return forecast.
"""
