"""Tests of townlet_train."""
