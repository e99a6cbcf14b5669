"""PostgreSQL plumbing shared by the services: pools and migrations."""
