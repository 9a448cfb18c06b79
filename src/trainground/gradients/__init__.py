"""Gradient transforms and the Guard: clipping, accumulation, AMP, spike handling."""
