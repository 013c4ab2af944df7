"""Numerical precision switch.

mfgx enables 64-bit floats when imported, because equilibrium residuals, exploitability and
gradient checks are meaningful below 1e-7. Set the environment variable ``MFGX_X64=0`` before
importing mfgx to keep JAX's 32-bit default (faster on some accelerators).
"""

import os

import jax

X64 = os.environ.get("MFGX_X64", "1").lower() not in ("0", "false", "no")
if X64:
    jax.config.update("jax_enable_x64", True)
