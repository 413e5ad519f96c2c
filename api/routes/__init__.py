"""The API's resources, one module each; `api.app.create_app` includes their routers."""
