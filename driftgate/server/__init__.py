"""The composition root: builds every component from the settings (`wiring`), runs the background
loops (`loops`) and owns start-up and shutdown (`Server`); `app` is the FastAPI application that serves
the routes of `driftgate.api` over it. Nothing below imports this package."""
