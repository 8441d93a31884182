"""The flywheel back into the worker: SFT/DPO/distillation exports, reward functions, the dataset
card and the worker plan (one base model, a LoRA adapter per skill)."""

from __future__ import annotations
