"""Tests of sync.writeback."""
