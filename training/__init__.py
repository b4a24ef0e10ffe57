"""Training: the one loop (trainer), the tasks it runs (supervised, the paper's distillation
phases), the distillation losses, the optimizer and schedule, checkpoint-and-stop on preemption,
progress lines and summaries, and the input that feeds the loop.
"""
