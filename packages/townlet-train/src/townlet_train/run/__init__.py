"""The parts of a training run around the learners: the evaluation callback (more to come here:
see docs/architecture.md)."""
