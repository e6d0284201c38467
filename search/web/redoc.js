// /redoc: ReDoc over this server's OpenAPI document, its files served by this server (no CDN).
"use strict";

Redoc.init("openapi.json", { hideDownloadButton: false }, document.getElementById("redoc"));
