"""TRL reward-model and DPO trainers (training issue); heavy imports (torch, trl) stay inside functions."""
