"""Evaluation: fusion metrics, classical baselines, the evaluation tool and its reports, model cost."""
