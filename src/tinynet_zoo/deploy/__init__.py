"""Deployment: verified ONNX/OpenVINO export, fast CPU runtimes, latency benchmarks and latency budgets.

Public entry points are re-exported lazily from `tinynet_zoo`: `export`, `runtime`, `for_latency`, `bench`.
"""
