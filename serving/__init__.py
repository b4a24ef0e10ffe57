"""Serving a trained model: evaluation over checkpoints (eval.py), prediction into the Kaggle CSV
(inference.py), and the SavedModel that reads serialized records (export_model.py).
"""
