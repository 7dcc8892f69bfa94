"""The console's ASGI app: HTML pages and the JSON API under ``/api/`` (docs/console.md).

Every route but ``/login`` and ``/static`` needs a token (``Authorization: Bearer`` or the
login cookie).  Handlers are plain ``def``: DuckDB and file reads run in the thread pool,
and a semaphore bounds how many SQL sandboxes run at once (memory stays bounded).
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, Field
from thinkforge.manifests.errors import (
    ForgeError,
    IntegrityError,
    NotFoundError,
    ResourceLimitError,
)
from thinkforge.manifests.store import StoreReader

from . import data
from . import runs as live_runs
from .tokens import Principal, TokenFile

COOKIE = "tf_token"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; "
                               "script-src 'self'; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
STATUS = {NotFoundError: 404, IntegrityError: 409, ResourceLimitError: 422}


class Unauthorized(Exception):
    pass


class SqlRequest(BaseModel):
    query: str = Field(description="one read-only SQL statement (as `thinkforge sql`)")
    offset: int = Field(0, ge=0)
    size: int = Field(100, ge=1, le=1000)


def principal(request: Request) -> Principal:
    """The token's owner (``Authorization: Bearer`` first, then the login cookie), or 401."""
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(COOKIE)
    who = request.app.state.tokens.lookup(token)
    if who is None:
        raise Unauthorized()
    return who


Who = Annotated[Principal, Depends(principal)]


def create_app(store_path: str | Path, token_file: str | Path, *, limits: data.Limits | None = None,
               reports_dir: str | Path | None = None, max_queries: int = 4) -> FastAPI:
    store = StoreReader(store_path)
    tokens = TokenFile(token_file)
    limits = limits or data.Limits()
    reports = Path(reports_dir) if reports_dir else None
    gate = threading.BoundedSemaphore(max_queries)
    env = Environment(loader=PackageLoader("thinkforge.console", "templates"),
                      autoescape=select_autoescape(["html"], default=True))
    app = FastAPI(title="thinkforge console", version="1", docs_url=None, redoc_url=None,
                  openapi_url=None, description="Read-only JSON API of a thinkforge store "
                  "(docs/console.md). Send `Authorization: Bearer <token>`.")
    app.state.tokens = tokens
    app.mount("/static", StaticFiles(packages=[("thinkforge.console", "static")]), name="static")

    def page(name: str, request: Request, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(name).render(request=request, qs=urlencode, **context)
        return HTMLResponse(html, status_code=status)

    @contextlib.contextmanager
    def sql_guard():
        if not gate.acquire(timeout=limits.timeout + 5):
            raise ResourceLimitError("the server is busy running other queries",
                                     hint="try again in a moment")
        try:
            yield
        finally:
            gate.release()

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(Unauthorized)
    def unauthorized(request: Request, exc: Unauthorized):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "a valid token is needed", "hint": "send Authorization: "
                                 "Bearer <token> (thinkforge serve token add NAME)"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return page("login.html", request, 401, error=None, next=request.url.path)

    @app.exception_handler(ForgeError)
    def forge_error(request: Request, exc: ForgeError):
        status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)
        message, _, hint = str(exc).partition("\n  hint: ")
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message, "hint": hint or None, "kind": type(exc).__name__},
                                status_code=status)
        return page("error.html", request, status, message=message, hint=hint, who=None)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return Response(status_code=204)  # none: browsers ask for it on every page

    # -- login --------------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/"):
        return page("login.html", request, error=None, next=next)

    @app.post("/login", include_in_schema=False)
    def login(request: Request, token: Annotated[str, Form()], next: Annotated[str, Form()] = "/"):
        if tokens.lookup(token.strip()) is None:
            return page("login.html", request, 401, error="unknown token", next=next)
        # a path on this site only: "//host" and "/\\host" are other sites to a browser
        target = next if re.fullmatch(r"/(?![/\\])[^\s]*", next) else "/"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
        return response

    @app.post("/logout", include_in_schema=False)
    def logout():
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # -- JSON API -----------------------------------------------------------------------------
    @app.get("/api/catalog", tags=["api"], summary="Every version the token can see")
    def api_catalog(who: Who, search: str = ""):
        return {"versions": data.catalog(store, who, search)}

    @app.get("/api/versions/{ref}", tags=["api"], summary="A version: schema, stats, provenance")
    def api_version(who: Who, ref: str):
        return data.version(store, who, ref, reports)

    @app.get("/api/versions/{ref}/verify", tags=["api"], summary="Full sha256 check of a version")
    def api_verify(who: Who, ref: str):
        return data.verify(store, who, ref)

    @app.get("/api/versions/{ref}/rows", tags=["api"], summary="A page of rows, filtered")
    def api_rows(who: Who, ref: str, offset: int = 0, size: int = 50, category: str | None = None,
                 mode: str | None = None, bucket: str | None = None, verified: str | None = None):
        with sql_guard():
            return data.rows(store, who, ref, limits, offset=offset, size=size, filters=dict(
                category=category, mode=mode, bucket=bucket, verified=verified))

    @app.get("/api/versions/{ref}/rejected", tags=["api"], summary="Rejected rows by reason")
    def api_rejected(who: Who, ref: str, examples: Annotated[int, Query(ge=1, le=20)] = 3):
        with sql_guard():
            return {"ref": ref, "reasons": data.rejected(store, who, ref, limits, examples)}

    @app.get("/api/versions/{ref}/pairs/{pair_id}", tags=["api"], summary="ON/OFF answers of a prompt")
    def api_pair(who: Who, ref: str, pair_id: str):
        with sql_guard():
            return data.pair(store, who, ref, pair_id, limits)

    @app.get("/api/versions/{ref}/lineage", tags=["api"], summary="Ancestors, descendants, runs")
    def api_lineage(who: Who, ref: str):
        return data.lineage(store, who, ref)

    @app.post("/api/sql", tags=["api"], summary="One page of a read-only query")
    def api_sql(who: Who, body: SqlRequest):
        with sql_guard():
            return data.sql(store, who, body.query, limits, offset=body.offset, size=body.size)

    @app.get("/api/sql/download", tags=["api"], summary="A query's result as CSV or Parquet")
    def api_sql_download(who: Who, q: str, format: Annotated[str, Query(pattern="^(csv|parquet)$")] = "csv"):
        with sql_guard():
            table = data.sql_table(store, who, q, limits)
        buffer = io.BytesIO()
        if format == "csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(_flat(table), buffer)
            media = "text/csv"
        else:
            import pyarrow.parquet as pq

            pq.write_table(table, buffer)
            media = "application/vnd.apache.parquet"
        return Response(buffer.getvalue(), media_type=media, headers={
            "Content-Disposition": f'attachment; filename="query.{format}"'})

    @app.get("/api/training-runs/{run_id}", tags=["api"], summary="A training run record in full")
    def api_training_run(who: Who, run_id: str):
        return data.training_run(store, who, run_id)

    @app.get("/api/runs", tags=["api"], summary="Generation runs, read live from checkpoints")
    def api_runs(who: Who):
        return {"runs": live_runs.runs(store, who)}

    @app.get("/api/runs/{run_id}", tags=["api"], summary="One generation run")
    def api_run(who: Who, run_id: str):
        return live_runs.run(store, who, run_id)

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi(who: Who):
        return app.openapi()

    # -- pages --------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def catalog_page(request: Request, who: Who, search: str = ""):
        return page("catalog.html", request, who=who, search=search,
                    versions=data.catalog(store, who, search))

    @app.get("/v/{ref}", response_class=HTMLResponse, include_in_schema=False)
    def version_page(request: Request, who: Who, ref: str, offset: int = 0, category: str = "",
                     mode: str = "", bucket: str = "", verified: str = ""):
        filters = {"category": category, "mode": mode, "bucket": bucket, "verified": verified}
        info = data.version(store, who, ref, reports)
        with sql_guard():
            table = data.rows(store, who, ref, limits, offset=offset, size=25, filters=filters)
            facets = data.facets(store, who, ref, limits)
            rejected = data.rejected(store, who, ref, limits)
        return page("version.html", request, who=who, v=info, table=table, facets=facets,
                    rejected=rejected, filters={k: v for k, v in filters.items() if v})

    @app.get("/v/{ref}/pair/{pair_id}", response_class=HTMLResponse, include_in_schema=False)
    def pair_page(request: Request, who: Who, ref: str, pair_id: str):
        with sql_guard():
            found = data.pair(store, who, ref, pair_id, limits)
        return page("pair.html", request, who=who, p=found)

    @app.get("/v/{ref}/lineage", response_class=HTMLResponse, include_in_schema=False)
    def lineage_page(request: Request, who: Who, ref: str):
        return page("lineage.html", request, who=who, lin=data.lineage(store, who, ref))

    @app.get("/training-runs/{run_id}", response_class=HTMLResponse, include_in_schema=False)
    def training_run_page(request: Request, who: Who, run_id: str):
        return page("training_run.html", request, who=who, r=data.training_run(store, who, run_id))

    @app.get("/v/{ref}/plots/{filename}", include_in_schema=False)
    def plot(who: Who, ref: str, filename: str):
        for path in data.report_plots(data.manifest(store, who, ref), reports):
            if path.name == filename:
                return Response(path.read_bytes(), media_type="image/png")
        raise NotFoundError(f"no plot {filename!r} for {ref}")

    @app.get("/sql", response_class=HTMLResponse, include_in_schema=False)
    def sql_page(request: Request, who: Who, q: str = "", offset: int = 0):
        result, error = None, None
        if q.strip():
            try:
                with sql_guard():
                    result = data.sql(store, who, q, limits, offset=offset, size=50)
            except ForgeError as exc:
                error = str(exc)
        return page("sql.html", request, who=who, q=q, result=result, error=error, limits=limits,
                    views=[v["ref"] for v in data.catalog(store, who) if v["is_latest"]])

    @app.get("/runs", response_class=HTMLResponse, include_in_schema=False)
    def runs_page(request: Request, who: Who):
        return page("runs.html", request, who=who, runs=live_runs.runs(store, who))

    @app.get("/api", response_class=HTMLResponse, include_in_schema=False)
    def api_page(request: Request, who: Who):
        return page("api.html", request, who=who, spec=app.openapi())

    return app


def _flat(table):
    """CSV has no nested values: lists and structs become their JSON text."""
    import json

    import pyarrow as pa

    columns = []
    for column in table.columns:
        if pa.types.is_nested(column.type):
            column = pa.array([None if v is None else json.dumps(data.jsonable(v))
                               for v in column.to_pylist()], pa.string())
        columns.append(column)
    return pa.table(columns, names=table.column_names)
