"""The HTTP API under ``/api/v1``: reads (``read``), writes (``write``) and its OpenAPI document
(``openapi``)."""
