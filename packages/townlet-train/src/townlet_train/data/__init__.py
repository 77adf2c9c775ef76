"""What the learners learn from: the collector (env + a learner's actions -> transitions) and the
buffers: PPO's rollout, DQN's n-step uniform or prioritized replay, DAgger's labels, and the
windows (with the memory state at each one's start) that a recurrent memory learns from."""
