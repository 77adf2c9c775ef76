"""The training run around the learners: the one loop (loop.py: collect -> learn -> callbacks),
episode accounting, metrics and TensorBoard, the curriculum, checkpoints and their schedule,
resume, the run lock, memory checks, interrupts, progress, the observer hook, the evaluation
callback, and behaviour cloning's run (bc.py). See docs/architecture.md."""
