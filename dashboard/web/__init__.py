"""The web side: the app factory (``app``), sign-in and permissions (``auth``), sessions,
headers and socket guards (``security``), request bodies (``bodies``), readiness and metrics
(``ops``)."""
