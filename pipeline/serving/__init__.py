"""The prediction service, fashion-serve: the model in use over HTTP, its traffic kept for the drift monitor.

Open app.py first: the routes. Around it: params (the serve section), uploads (a request's pictures, and the status
code of each way one can be wrong), pair (the model and its unfamiliarity scorer, loaded and swapped together),
batching (requests that arrive together predicted together), captures (what the service saw, in dated chunks the
drift monitor reads), metrics (Prometheus'), page.html (the upload page).
"""
