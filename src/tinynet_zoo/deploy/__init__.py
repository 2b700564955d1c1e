"""Deployment: verified ONNX, OpenVINO IR and ExecuTorch (.pte) export, CPU engines raced by `auto`, latency
benchmarks and latency budgets.

Public entry points are re-exported lazily from `tinynet_zoo`: `export`, `runtime`, `for_latency`, `bench`.
"""
