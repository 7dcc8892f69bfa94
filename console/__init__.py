"""The web console (``thinkforge serve``): browse versions, read ON/OFF pairs, follow lineage,
run read-only SQL and watch generation runs, behind tokens (docs/console.md).

It reads the store only (the SQL sandbox of ``thinkforge.manifests.sql``, manifests, run
records and generation checkpoints) and never writes it.  Layering: it imports manifests
(and nothing above); only the CLI imports it.  FastAPI, uvicorn and Jinja2 come with the
``serve`` extra.
"""
