"""Drills: scripted scenarios run on simulated time against an isolated copy of the data.

A drill reads a scenario (:mod:`drills.scenario`), creates its own PostgreSQL schema from the same
migrations (:mod:`drills.isolation`), and drives the same engine, domain and storage code as live
operation with a simulated clock (:mod:`drills.runner`), while seeded simulated responders answer
the offers (:mod:`drills.responders`). It ends with an after-action report
(:mod:`drills.metrics`, :mod:`drills.report`); :mod:`drills.compare` sets two reports side by side.
"""
