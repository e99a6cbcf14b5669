"""The local stack: PostgreSQL primary + streaming replica, Redis, and BookVault's
own processes, started, supervised and stopped on one machine.

    prepare(settings)                  state dir + JWT key → (settings, paths)
    check_ports(settings, services)    fail early, one line, when a port is taken
    start_infrastructure(...)          PostgreSQL and Redis unless configured externally
    migrate(settings)                  one database per service, migrations applied
    start_services(...)                catalog, borrowing, accounts, gateway under granian
    Supervisor                         restarts crashed children, stops all in reverse order

Every expected failure is a `StackError` with a one-line message.
"""

from bookvault.stack.errors import StackError
from bookvault.stack.infra import check_ports, prepare, start_infrastructure
from bookvault.stack.migrate import migrate
from bookvault.stack.paths import StatePaths
from bookvault.stack.services import START_ORDER, ServiceSpec, service_component, start_services
from bookvault.stack.supervisor import Component, Supervisor

__all__ = [
    "START_ORDER",
    "Component",
    "ServiceSpec",
    "StackError",
    "StatePaths",
    "Supervisor",
    "check_ports",
    "migrate",
    "prepare",
    "service_component",
    "start_infrastructure",
    "start_services",
]
