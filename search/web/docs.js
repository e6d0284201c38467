// /docs: Swagger UI over this server's OpenAPI document, with its files served by this server
// (no CDN) and no inline script (the page's Content-Security-Policy allows none).
"use strict";

window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null, // the default badge asks validator.swagger.io about the schema
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
