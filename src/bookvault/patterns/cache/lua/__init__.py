"""Lua scripts for the Redis backend, shipped as package data (one file per atomic step)."""
