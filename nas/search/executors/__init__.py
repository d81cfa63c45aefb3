"""Where trials run: in this process (Optuna's study.optimize) or on Ray Tune."""
