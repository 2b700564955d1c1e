"""Shrink a trained network to a budget for your data: teacher, tiny-formula student, inheritance by channel
importance, distillation, export and a report card. `tinynet_zoo.shrink(...)` runs it; `tinynet-zoo shrink` too."""
