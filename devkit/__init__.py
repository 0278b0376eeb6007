"""Development and test support: a throwaway PostgreSQL with the sample database and a throwaway PgBouncer.

Not part of the server (the image does not ship it): `make run`, the tests and the benchmarks use it.
"""
