"""Fault injection for tests and benchmarks: a TCP proxy placed between two
services whose toxics (latency, reset, timeout, outage, HTTP errors) are
switched at run time, in the spirit of Toxiproxy."""

from bookvault.faults.proxy import FaultProxy
from bookvault.faults.toxics import HttpErrors, Latency, Outage, ResetPeer, Timeout, Toxic

__all__ = ["FaultProxy", "HttpErrors", "Latency", "Outage", "ResetPeer", "Timeout", "Toxic"]
