// Starts Swagger UI on the OpenAPI document this server serves (GET /docs).
// A file of its own, not an inline <script>: the page's Content-Security-Policy
// allows scripts from this origin only. Every URL is relative to the page, so
// the page works at /docs locally and at /<stage>/docs behind API Gateway.
"use strict";
window.ui = SwaggerUIBundle({
  // Absolute, so that Swagger UI resolves the document's relative server URL
  // (".": where the document is served) against it for "Try it out".
  url: new URL("openapi.json", document.baseURI).href,
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  deepLinking: true,
  displayOperationId: true,
  // The default sends the document to validator.swagger.io for a badge.
  validatorUrl: null,
});
