"""`swinir serve`: a local web app and HTTP API over the restore code path (FastAPI + uvicorn, the [serve] extra).

app (endpoints and the page), jobs (the bounded queue and its workers), limits (upload checks),
restore_call (the one adapter to the library's restore), server (uvicorn on a socket bound here).
"""
