"""The console's pages, one module per page kind (the API's own routes are api.routes)."""
